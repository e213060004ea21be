"""The engine's seams (docs/architecture.md, "Engine"), read from its imports:
the plan step stays pure, and /proc is read only by the parts named for it.
Cheap: it parses the modules, runs nothing."""

from __future__ import annotations

import ast
from pathlib import Path

import chadthrottle.helper.engine as engine_package

ENGINE = Path(engine_package.__file__).parent
# What reads the machine as it is now: /proc, sockets, files, the clock.
PROC_READERS = {
    "chadthrottle.helper.identity.processes",
    "chadthrottle.helper.identity.connections",
}
IMPURE = PROC_READERS | {"os", "time", "socket", "subprocess", "pyroute2"}


def imported(module: str) -> set[str]:
    """The modules a file of helper/engine imports (from-imports by their module)."""
    tree = ast.parse((ENGINE / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_the_plan_step_reads_nothing() -> None:
    for module in ("plan", "rule_listing", "overshoot", "link_plan", "rule_edits", "ports"):
        assert not imported(module) & IMPURE, module


def test_proc_is_read_by_the_parts_named_for_it() -> None:
    """Not by the engine itself (engine.py, core.py) nor the apply step's
    planning: by tracking (processes, new socket owners), the listings of
    connections and round-trip times, the kernel hold (an app scope's cgroup
    id) and the start-up wiring (factory.py: sockets open before the start)."""
    readers = {path.stem for path in ENGINE.glob("*.py") if imported(path.stem) & PROC_READERS}
    assert readers == {"tracking", "observed", "rtt", "kernel_hold", "factory"}
