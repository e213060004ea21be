"""What the helper's start imports is CPU it spends before it can answer
(docs/benchmarks.md, *Helper warm start*): modules it never uses stay out."""

from __future__ import annotations

import subprocess
import sys
from xml.sax.saxutils import quoteattr as standard_quoteattr

import pytest
from chadthrottle.helper.adapter.introspection import quoteattr

UNUSED = ("urllib.request", "http.client", "email.parser")


def test_the_helpers_start_imports_no_http_or_email() -> None:
    """xml.sax.saxutils (for quoteattr) imported urllib.request, and with it
    http.client and email: 9 ms of every start."""
    code = (
        "import sys, chadthrottle.helper.main, chadthrottle.helper.engine.factory\n"
        f"print(sorted(name for name in {UNUSED!r} if name in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout


@pytest.mark.parametrize("text", ["plain", 'a"b', "a'b", "a\"b'c", "<&>\n\r\t", "", "&quot;"])
def test_quoteattr_gives_the_standard_librarys_text(text: str) -> None:
    assert quoteattr(text) == standard_quoteattr(text)


# Modules only pyroute2's package __init__ imports: none of them is the helper's.
PYROUTE2_UNUSED = (
    "pyroute2.ndb.main",
    "pyroute2.ipdb",
    "pyroute2.conntrack",
    "pyroute2.plan9.client",
)


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


def test_the_helpers_start_imports_pyroute2_without_its_package_init() -> None:
    """pyroute2/__init__.py imports all of pyroute2: about 0.1 s of every
    start (helper/kernel/lean_pyroute2.py). The start's main() registers the
    package first; the engine's and the takeover's imports follow it."""
    code = (
        "import contextlib, io, sys\n"
        "from chadthrottle.helper.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['--help'])\n"
        "import chadthrottle.helper.engine.factory, chadthrottle.helper.kernel.tc_shaper\n"
        "import chadthrottle.helper.kernel.namespace_shapers, pyroute2.iproute\n"
        f"print(sorted(name for name in {PYROUTE2_UNUSED!r} if name in sys.modules))"
    )
    assert _run(code) == "[]"


def test_a_lean_pyroute2_still_gives_every_name() -> None:
    """A submodule asked of the package comes alone; any other name runs the
    package's __init__, after which the package is as imported normally."""
    code = (
        "import sys\n"
        "from chadthrottle.helper.kernel import lean_pyroute2\n"
        "assert lean_pyroute2.register() and not lean_pyroute2.register()\n"
        "from pyroute2 import config\n"
        "from pyroute2.iproute import IPRoute as Submodules\n"
        "alone = 'pyroute2.ndb.main' not in sys.modules\n"
        "import pyroute2\n"
        "from pyroute2 import NDB, IPRoute\n"
        "print(alone, IPRoute is Submodules, 'pyroute2.ndb.main' in sys.modules,\n"
        "      pyroute2.__version__ != 'unknown', len(pyroute2.__all__) > 50)"
    )
    assert _run(code) == "True True True True True"
