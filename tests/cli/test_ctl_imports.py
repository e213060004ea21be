"""chadthrottle-ctl imports only what a verb needs (issue 19: a call costs
little more than the interpreter). A module that pulls in asyncio, dbus-fast,
typing, shutil or inspect again would cost every call milliseconds: this names it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# Each is 2-40 ms of CPU at import on the development machine (docs/benchmarks.md, "CLI start-up").
# ast, dis and tokenize come with inspect, which dataclasses imports and
# cli/deferred_imports.py leaves unloaded unless something uses it.
# weakref comes with copy, which dataclasses imports for asdict and deepcopy (deferred too).
NOT_FOR_THE_CLI = ("asyncio", "dbus_fast", "typing", "shutil", "socket", "selectors", "ast", "dis", "tokenize",
                   "weakref", "PySide6", "psutil", "pyroute2", "bcc")  # fmt: skip
PROBE = """
import sys
before = set(sys.modules)
from chadthrottle.cli import ctl
try:
    ctl.main(sys.argv[1:])
except SystemExit:
    pass
heavy = sorted(name for name in set(sys.modules) - before if name.split(".")[0] in {names})
print("imported:" + ",".join(heavy), file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["--help"], ["list", "--json"], ["list"], ["limit", "pid:1", "--up", "1M"],
                                  ["watch", "--json", "--count", "1"], ["backends"], ["priority", "pid:1", "high"],
                                  ["capacity"]])  # fmt: skip
def test_a_call_imports_nothing_heavy(args: list[str], tmp_path: os.PathLike[str]) -> None:
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={tmp_path}/no-bus"}
    probe = PROBE.replace("{names}", repr(set(NOT_FOR_THE_CLI)))
    result = subprocess.run(
        [sys.executable, "-c", probe, *args], capture_output=True, text=True, env=env, timeout=60
    )
    marker = [line for line in result.stderr.splitlines() if line.startswith("imported:")]
    assert marker == ["imported:"], f"{args}: {result.stderr}"
