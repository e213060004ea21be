"""A pid handed out again, for real: a process started under the pid of
one that exited (the kernel's next pid set through ns_last_pid, root only)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

NS_LAST_PID = "/proc/sys/kernel/ns_last_pid"
# Another process on the machine may take the pid first: any fork between the
# write of ns_last_pid and ours, and it may hold the pid a while. A hang guard,
# not a count of tries: beside fork loops a try lost up to 16 times in a row at
# load 2.6 (the pid's taker /bin/true or bash), and 200 in a row once at load 5
# (test_pid_reuse[False] failed so in a full run, "pid N was taken first 200
# times"; reproduced 1 in 82 beside two fork loops, 2026-12-06;
# tests/test_reused_pids.py).
START_GUARD_S = 120.0


def wait_for_exec(pid: int, program: Path) -> None:
    """Until the process runs the program (setpriv, or the fork, has exec'd it)."""
    deadline = time.monotonic() + 10
    while os.readlink(f"/proc/{pid}/exe") != str(program):
        assert time.monotonic() < deadline, f"pid {pid} did not exec {program}"
        time.sleep(0.005)


def start_at(pid: int, argv: list[str], **popen: Any) -> subprocess.Popen[bytes]:
    """argv started under this very pid (the kernel's next pid is set, as
    checkpoint/restore tools do, under their flock); popen: Popen's other arguments.
    Started one clock tick after the call at least: /proc counts starts in
    ticks (10 ms), so a process started under the pid in the tick its last
    one started in would have its start too, and tell apart from it by
    nothing (a real pid comes round after a full wrap, never within a tick)."""
    _wait_for_the_next_tick()
    fd = os.open(NS_LAST_PID, os.O_RDWR)
    tries, deadline = 0, time.monotonic() + START_GUARD_S
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        while time.monotonic() < deadline:
            if _taken(pid):  # by whoever forked in between: a try now cannot have it
                time.sleep(0.001)
                continue
            tries += 1
            os.pwrite(fd, str(pid - 1).encode(), 0)
            process = subprocess.Popen(argv, **popen)
            if process.pid == pid:
                return process
            process.kill()
            process.wait()
    finally:
        os.close(fd)
    pytest.fail(f"pid {pid} was taken first {tries} times in {START_GUARD_S:.0f} s")


def _taken(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def _wait_for_the_next_tick() -> None:
    """Until boot time, in /proc's clock ticks, is past what it is now."""
    hertz = os.sysconf("SC_CLK_TCK")
    now = int(time.clock_gettime(time.CLOCK_BOOTTIME) * hertz)
    while int(time.clock_gettime(time.CLOCK_BOOTTIME) * hertz) <= now:
        time.sleep(0.001)


def stop(*processes: subprocess.Popen[Any] | None) -> None:
    """Kill and reap each process a test started (None: not started)."""
    for process in processes:
        if process is not None:
            process.kill()
            process.wait()
