"""A limit set while the process the engine identified under a pid has
exited and another runs under that pid, on the real datapath: the engine
knows the pid's process only as of its last tick (and a tag held back for a
clsact graft's losses is written up to GRAFT_WAIT_MAX_S later, off the tick),
so the tag must be of the process it identified, not of whichever runs under
the pid when it is written. The pid is reused for real (ns_last_pid)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from chadthrottle.contract import ADMIN_OWNER, BackendInfo, Direction
from chadthrottle.helper.engine.api import SetLimit
from chadthrottle.helper.identity.index import ApplicationIndex
from chadthrottle.helper.identity.processes import read_start
from chadthrottle.helper.kernel.datapath import Datapath

from tests.helper.engine.admin_engine import AdminEngine
from tests.helper.engine.recording_ports import RecordingShaper
from tests.helper.kernel.test_process_keys import SOCKET_MAKER, _slot_of
from tests.support.reused_pids import start_at, stop, wait_for_exec


def _made_socket(process: subprocess.Popen[str]) -> int:
    """Has the SOCKET_MAKER make one more socket; its fd."""
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write("\n")
    process.stdin.flush()
    return int(process.stdout.readline())


def test_a_limit_set_after_the_pid_went_to_another_process_is_not_its(
    kernel_ready: Path, program: Path
) -> None:
    """The limited program's process exited after the tick and another
    program (root's, here) got its pid; a limit on the first program set
    before the next tick must neither tag the other's open socket nor give
    its new ones the slot. Before, the datapath wrote slot_by_tgid with the
    start of whatever ran under the pid when written: the other program's
    new sockets were limited as the first one's, and its open ones re-tagged
    (they stayed so after the next tick forgot the pid)."""
    datapath = Datapath(cache_dir=kernel_ready)
    datapath.open()
    engine = AdminEngine(datapath, RecordingShaper(), ApplicationIndex(),
                         lambda active: [BackendInfo("tc", True, "", ())])  # fmt: skip
    first = subprocess.Popen([str(program), "600"])
    second: subprocess.Popen[str] | None = None
    try:
        pid = first.pid
        wait_for_exec(pid, program)
        engine.tick()
        old_start = read_start(pid)
        first.kill()
        first.wait()
        second = start_at(pid, [sys.executable, "-c", SOCKET_MAKER], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True)  # type: ignore[assignment]  # fmt: skip
        assert second is not None and read_start(pid) != old_start
        open_fd = _made_socket(second)

        (outcome,) = engine.apply_changes(
            [SetLimit(f"exe:{program}", Direction.DOWN, 100_000, 0, ADMIN_OWNER)]
        )
        assert not isinstance(outcome, Exception), outcome

        assert _slot_of(datapath, pid, open_fd) == 0, "another program's open socket was tagged"
        assert _slot_of(datapath, pid, _made_socket(second)) == 0, (
            "another program's new socket got the limit's slot"
        )
    finally:
        stop(first, second)
        datapath.close()
