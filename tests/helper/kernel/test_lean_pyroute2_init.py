"""The installed pyroute2's package __init__ must do nothing but import.

helper/kernel/lean_pyroute2.py registers the package without running its
__init__ (the helper's start saves its 163 imports). That is safe only while
the __init__ does nothing the helper's submodules rely on: a later pyroute2
(pyproject allows any >= 0.9) whose __init__ set configuration, logging
handlers or patches would leave the helper silently running without them.
This reads the __init__'s syntax tree and fails on any statement but imports,
try/except around imports, the Windows-only `if`, and the `modules`/`__all__`/
`__version__` bookkeeping 0.9 has; the second test shows each kind of state
being set is caught.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from chadthrottle.helper.kernel.lean_pyroute2 import PACKAGE

BOOKKEEPING = {"modules", "__all__", "__version__"}  # names an __init__ may set for itself
LIST_METHODS = {"append", "extend"}  # on BOOKKEEPING lists


def _is_bookkeeping_value(node: ast.expr) -> bool:
    """A constant, a name, or a list/tuple of them: nothing is called or changed."""
    if isinstance(node, (ast.List, ast.Tuple)):
        return all(_is_bookkeeping_value(element) for element in node.elts)
    return isinstance(node, (ast.Constant, ast.Name))


def _is_windows_test(node: ast.expr) -> bool:
    """`sys.platform.startswith('win')`, the guard of 0.9's win_inet_pton import."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "startswith"
        and ast.unparse(node.func.value) == "sys.platform"
        and [ast.unparse(a) for a in node.args] == ["'win'"]
    )


def _only_imports(body: list[ast.stmt]) -> bool:
    return all(isinstance(s, (ast.Import, ast.ImportFrom)) for s in body)


def not_only_imports(tree: ast.Module) -> list[str]:
    """The __init__'s statements that do more than import: empty when it is safe to skip."""
    offending = []
    for statement in tree.body:
        if _allowed(statement, docstring=statement is tree.body[0]):
            continue
        offending.append(f"line {statement.lineno}: {ast.unparse(statement).splitlines()[0]}")
    return offending


def _allowed(statement: ast.stmt, docstring: bool) -> bool:
    if isinstance(statement, (ast.Import, ast.ImportFrom)):
        return True
    if isinstance(statement, ast.Try):  # try: import X except ImportError: X = constant
        return (
            _only_imports(statement.body)
            and not statement.orelse
            and not statement.finalbody
            and all(
                all(_allowed(s, docstring=False) for s in handler.body)
                for handler in statement.handlers
            )
        )
    if isinstance(statement, ast.If):
        return _is_windows_test(statement.test) and _only_imports(statement.body)
    if isinstance(statement, (ast.Assign, ast.AnnAssign)):
        targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
        return (
            all(isinstance(t, ast.Name) and t.id in BOOKKEEPING for t in targets)
            and statement.value is not None
            and _is_bookkeeping_value(statement.value)
        )
    if isinstance(statement, ast.Expr):
        value = statement.value
        if docstring and isinstance(value, ast.Constant) and isinstance(value.value, str):
            return True
        return (  # __all__.extend(modules)
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.Attribute)
            and value.func.attr in LIST_METHODS
            and isinstance(value.func.value, ast.Name)
            and value.func.value.id in BOOKKEEPING
            and all(_is_bookkeeping_value(a) for a in value.args)
            and not value.keywords
        )
    return False


def test_the_installed_pyroute2_init_only_imports() -> None:
    spec = importlib.util.find_spec(PACKAGE)
    assert spec is not None and spec.origin is not None, "pyroute2 is a dependency"
    tree = ast.parse(Path(spec.origin).read_text(), spec.origin)
    assert not_only_imports(tree) == [], (
        f"{spec.origin} does more than import: helper/kernel/lean_pyroute2.py skips it at "
        "the helper's start, so the helper would run without what these set"
    )


ZERO_NINE = """\
'''doc'''
try:
    from pyroute2.config.version import __version__
except ImportError:
    __version__ = 'unknown'
import sys
from pyroute2.iproute import IPRoute
if sys.platform.startswith('win'):  # noqa: E402
    import win_inet_pton  # noqa: F401
modules = [IPRoute]
__all__ = []
__all__.extend(modules)
"""


def test_the_0_9_shape_passes() -> None:
    assert not_only_imports(ast.parse(ZERO_NINE)) == []


@pytest.mark.parametrize(
    "extra",
    [
        "config.async_qsize = 4",  # configuration set at import
        "log.setLevel(10)",  # a logging handler or level
        "import socket\nsocket.socket = object",  # a patch
        "modules = make_modules()",  # bookkeeping computed by a call
        "__all__.extend(register())",
        "if sys.platform.startswith('linux'):\n    import x",  # another platform's branch
        "if sys.platform.startswith('win'):\n    patch()",
        "try:\n    import x\nexcept ImportError:\n    fallback()",
        "try:\n    import x\nfinally:\n    done = True",
        "def f():\n    pass",
        "sys.modules['pyroute2.x'] = None",
        "'''a string that is not the docstring'''",
    ],
)
def test_an_init_that_sets_state_is_caught(extra: str) -> None:
    offending = not_only_imports(ast.parse(ZERO_NINE + extra + "\n"))
    assert len(offending) == 1, offending


# What the helper's start leaves out by skipping 0.9.7's __init__, each read: pyroute2's
# user-facing classes (nothing set at import) and two that do set something:
# pyroute2.config.log gives the "pyroute2" logger a NullHandler (without it a pyroute2
# warning with no handler anywhere would reach logging's last resort, stderr: the
# journal), and config.version only reads the version. win_inet_pton: Windows only.
REVIEWED_SKIPPED = frozenset({
    "pyroute2.config.log", "pyroute2.config.version", "pyroute2.conntrack", "pyroute2.devlink",
    "pyroute2.ethtool.ethtool", "pyroute2.ipdb", "pyroute2.ipset", "pyroute2.ipvs",
    "pyroute2.iwutil", "pyroute2.ndb.main", "pyroute2.netlink.connector.cn_proc",
    "pyroute2.netlink.devlink", "pyroute2.netlink.diag", "pyroute2.netlink.diag.ss2",
    "pyroute2.netlink.event", "pyroute2.netlink.event.acpi_event",
    "pyroute2.netlink.event.dquot", "pyroute2.netlink.event.thermal", "pyroute2.netlink.generic",
    "pyroute2.netlink.generic.ethtool", "pyroute2.netlink.generic.ipvs",
    "pyroute2.netlink.generic.l2tp", "pyroute2.netlink.generic.mptcp",
    "pyroute2.netlink.generic.wireguard", "pyroute2.netlink.ipq",
    "pyroute2.netlink.nfnetlink.nfctsocket", "pyroute2.netlink.nfnetlink.nftsocket",
    "pyroute2.netlink.nl80211", "pyroute2.netlink.taskstats", "pyroute2.netlink.uevent",
    "pyroute2.nslink.nspopen", "pyroute2.plan9.client", "pyroute2.plan9.server",
    "pyroute2.wiset", "win_inet_pton",
})  # fmt: skip

SKIPPED_BY_THE_START = """
import ast, contextlib, importlib.util, io, sys
from chadthrottle.helper.main import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
    main(['--help'])
import chadthrottle.helper.engine.factory, chadthrottle.helper.kernel.tc_shaper
import chadthrottle.helper.kernel.namespace_shapers, pyroute2.iproute
loaded = set(sys.modules)
names = set()
for node in ast.walk(ast.parse(open(importlib.util.find_spec('pyroute2').origin).read())):
    if isinstance(node, ast.Import):
        names |= {alias.name for alias in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module:
        names.add(node.module)
        for alias in node.names:
            with contextlib.suppress(ImportError, ValueError):
                if importlib.util.find_spec(f'{node.module}.{alias.name}') is not None:
                    names.add(f'{node.module}.{alias.name}')
print(sorted(names - loaded))
"""


def test_every_module_the_start_leaves_out_was_reviewed() -> None:
    """The imports the __init__ makes are skipped too (review8 on bae5501): a later
    pyroute2 whose __init__ imports a module the helper's own imports do not, one that
    might configure or patch, fails here until it is read and added above. Not caught:
    a module already in REVIEWED_SKIPPED that starts setting state in a later release."""
    done = subprocess.run(
        [sys.executable, "-c", SKIPPED_BY_THE_START], capture_output=True, text=True, check=True
    )
    skipped = set(ast.literal_eval(done.stdout.strip().splitlines()[-1]))
    assert skipped - REVIEWED_SKIPPED == set(), "read these, then add them to REVIEWED_SKIPPED"
