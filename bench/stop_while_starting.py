"""How long a real helper told to stop while it compiles its BPF programs (a
cold start) takes to exit: systemd's stop or restart waits that long.

Each round starts the helper on a private system bus with an empty cache
directory (tests/support/compiling_helper.py), waits until its build child
has bcc loaded (mid-compile), sends SIGTERM to the helper alone or to its
whole process group (as systemd's KillMode=control-group does), and times
from the signal to the helper's exit (the wait returning). A round counts only
if the helper exited 0, said it stopped while compiling, and left nothing
(build child, stored programs, datapath record or journal). Rounds alternate
the two kinds. tests/helper/test_stop_while_starting.py proves the stop; this
says its time, which the test no longer bounds (a 1.5 s bound failed at load 6).

    python bench/stop_while_starting.py              # 10 rounds
    python bench/stop_while_starting.py --rounds 20

Reference (docs/helper.md): 0.06-0.12 s at load 2.3-2.5 (2026-12-04); before
the stop points, 1.0-7.7 s (the stop waited out the compile).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chadthrottle.helper.standalone import PrivateSystemBus

from tests.support.compiling_helper import (
    COMPILE_START_GUARD_S,
    compiler_loaded,
    helper_compiling,
    left_behind,
    wait_until,
)

EXIT_GUARD_S = 120.0


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def one_round(bus: PrivateSystemBus, whole_group: bool) -> float:
    """Seconds from SIGTERM to exit; raises if the stop was not clean."""
    with (
        tempfile.TemporaryDirectory(prefix="ct-stopbench-") as directory,
        helper_compiling(bus, Path(directory)) as starting,
    ):
        if not wait_until(lambda: compiler_loaded(starting.child), COMPILE_START_GUARD_S):
            raise RuntimeError("the build child never loaded bcc")
        send = os.killpg if whole_group else os.kill
        began = time.monotonic()
        send(starting.process.pid, signal.SIGTERM)
        status = starting.process.wait(EXIT_GUARD_S)
        took = time.monotonic() - began
        log = starting.log.read_text()
        if status != 0 or "stopped while compiling the BPF programs" not in log:
            raise RuntimeError(f"exit {status}, not a stop mid-compile:\n{log}")
        left = left_behind(starting)
        if left:
            raise RuntimeError(f"left behind: {left}")
        return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (a private system bus, the helper's BPF compile)")
    times: dict[str, list[float]] = {"helper": [], "whole-group": []}
    with PrivateSystemBus() as bus:
        for index in range(args.rounds):
            kind = "whole-group" if index % 2 else "helper"
            load = _load()
            took = one_round(bus, kind == "whole-group")
            times[kind].append(took)
            print(
                f"round {index + 1:2d} {kind:11s} {took * 1000:7.1f} ms  (load {load})", flush=True
            )
    for kind, values in times.items():
        if values:
            print(f"{kind:11s} n={len(values)} median {statistics.median(values) * 1000:.1f} ms, "
                  f"min {min(values) * 1000:.1f}, max {max(values) * 1000:.1f}")  # fmt: skip
    print(f"load at the end: {_load()}")


if __name__ == "__main__":
    main()
