"""The BPF build child and a stop's signals. Under systemd a stop signals every
process of the unit: the build child used to die of it, maybe before the
helper's own handler had said "stopping", and a wait of up to 1 s told a stop
from a failed compile (also what any other death cost). Now the child starts
with the stop's signals blocked and only the helper ends it on a stop
(tests/helper/test_stop_while_starting.py); a child that dies of a signal is a
failed build. A real child process; no compile."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

from chadthrottle.helper.kernel.program_cache import CHILD_BLOCKED_SIGNALS, _run_build

from tests.support.waiting import eventually

# Says its pid (the file at argv[1]), then ends once the file at argv[2] exists.
_CHILD = """
import os, sys, time
ready, go = sys.argv[1], sys.argv[2]
with open(ready + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(ready + ".tmp", ready)
while not os.path.exists(go):
    time.sleep(0.01)
print("done")
"""


def _pending(pid: int, signum: int) -> bool | None:
    """Whether signum waits, blocked, for the process (None: it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    if fields.get("State", "").startswith(("Z", "X")):
        return None
    mask = int(fields["SigPnd"], 16) | int(fields["ShdPnd"], 16)
    return bool(mask & 1 << (signum - 1))


def test_a_stops_signals_to_the_whole_unit_leave_the_build_child_to_the_helper(
    tmp_path: Path,
) -> None:
    """SIGTERM and SIGINT to the child, as systemd's stop (or a terminal's
    Ctrl-C) sends them beside the helper's: held, the child lives on, and the
    build ends as the child does. Before: it died of the SIGTERM (-15)."""
    ready, go = tmp_path / "ready", tmp_path / "go"
    command = [sys.executable, "-c", _CHILD, str(ready), str(go)]
    result: list[tuple[int, bytes, bytes]] = []
    build = threading.Thread(
        target=lambda: result.append(_run_build(command, dict(os.environ), None))
    )
    build.start()
    try:
        assert eventually(ready.exists, 30.0, 0.01), "the child did not start"
        pid = int(ready.read_text())
        for signum in sorted(CHILD_BLOCKED_SIGNALS):
            os.kill(pid, signum)
            assert eventually(lambda s=signum: _pending(pid, s) is not False, 30.0, 0.01)
            assert _pending(pid, signum), f"the child died of {signal.Signals(signum).name}"
    finally:
        go.touch()
        build.join()
    assert result == [(0, b"done\n", b"")]
    assert signal.pthread_sigmask(signal.SIG_BLOCK, set()) == set(), "the helper's own mask changed"
