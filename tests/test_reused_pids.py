"""tests/support/reused_pids.start_at, which the pid-reuse tests start their
second process with, gets its pid however long another process holds it.

It used to try 200 times, each write of ns_last_pid followed by a fork that
any other fork on the machine could beat: test_pid_reuse[False] failed once
in a full run ("pid N was taken first 200 times", load ~5; reproduced 1 in 82
runs beside two fork loops). Here a process holds the pid for longer than
200 tries take (0.2-0.6 s here): start_at must wait it out, not give up.
"""

from __future__ import annotations

import subprocess
import threading

from tests.support.requirements import require_root
from tests.support.reused_pids import start_at, stop

HOLD_S = "2"  # the holder's own life (sleep 2): longer than 200 tries, far below the guard


def test_start_at_waits_for_the_process_holding_its_pid() -> None:
    require_root()
    holder = subprocess.Popen(["/bin/sleep", HOLD_S])
    reaper = threading.Thread(target=holder.wait)  # reaped once it exits: a zombie holds the pid
    reaper.start()
    second: subprocess.Popen[bytes] | None = None
    try:
        second = start_at(holder.pid, ["/bin/sleep", "600"])
        assert second.pid == holder.pid
        reaper.join()
        assert holder.returncode == 0, "the holder was ended, not waited for"
    finally:
        if holder.poll() is None:
            holder.kill()
        reaper.join()
        stop(second)
