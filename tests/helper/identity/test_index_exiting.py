"""A process read while it exits (a zombie, or one whose memory is gone) has
no executable and no command line left: that read names no application. The
index keeps whose it was (departed_identity), for the forked children a
held-up helper comes to after both exited (docs/benchmarks/flakes.md, flake30:
the BurstBare flake of CI m2, 76 of 200 children on the interface only)."""

from __future__ import annotations

import dataclasses

import pytest
from chadthrottle.helper.identity.index import ApplicationIndex
from chadthrottle.helper.identity.processes import ProcessInfo

SCRIPT = "/opt/tools/burst.py"
APP = f"script:{SCRIPT}"
START = 500  # the parent's start, in clock ticks after boot


class Proc:
    """A fake /proc: processes by pid, each with its start; the clock in ticks."""

    def __init__(self) -> None:
        self.processes: dict[int, ProcessInfo] = {}
        self.starts: dict[int, int] = {}
        self.ticks = START + 100
        self.now = 1000.0

    def spawn(self, pid: int, start: int = START) -> None:
        argv = ("/usr/bin/python3", SCRIPT)
        self.processes[pid] = ProcessInfo(pid, 1, 1000, "/usr/bin/python3", argv, "python3", "/")
        self.starts[pid] = start

    def exit(self, pid: int) -> None:
        """A zombie: still listed, with its start, no executable, no command line."""
        self.processes[pid] = dataclasses.replace(self.processes[pid], exe="", argv=())

    def reap(self, pid: int) -> None:
        del self.processes[pid], self.starts[pid]

    def index(self) -> ApplicationIndex:
        return ApplicationIndex(
            list_pids=lambda: list(self.processes), read=self.processes.get,
            read_exe=lambda pid: self.processes[pid].exe or None if pid in self.processes else None,
            clock=lambda: self.now, stamp=lambda pid: 7 if pid in self.processes else None,
            read_start=self.starts.get, boot_ticks=lambda: self.ticks,
            read_cgroup=lambda pid: "/" if pid in self.processes else None,
        )  # fmt: skip


@pytest.mark.parametrize("read_by", ["tick", "lookup"])
def test_a_process_read_as_a_zombie_stays_whose_it_was_for_its_children(read_by: str) -> None:
    """read_by: the tick's scan, or one process read alone (update_process: a
    "pid:N" lookup, the young processes' check)."""
    proc = Proc()
    proc.spawn(1)
    index = proc.index()
    index.refresh()
    proc.spawn(40)
    index.refresh()
    assert getattr(index.identity_of(40), "app_id", None) == APP
    proc.ticks += 50
    proc.exit(40)
    if read_by == "tick":
        index.refresh()  # read with no executable
    else:
        index.update_process(proc.processes[40])
    assert index.identity_of(40) is None  # not listed as running any more
    child_start = START + 120  # forked before the read, announced after it
    assert getattr(index.departed_identity(40, child_start), "app_id", None) == APP
    proc.reap(40)
    proc.ticks += 50
    index.refresh()  # seen gone: the zombie's read keeps nothing, the record stays
    assert getattr(index.departed_identity(40, child_start), "app_id", None) == APP
    assert index.departed_identity(40, proc.ticks + 1) is None  # forked after: another parent


def test_a_kernel_thread_is_no_departure() -> None:
    """No executable ever: nothing to keep (it named no application)."""
    proc = Proc()
    proc.spawn(1)
    proc.processes[2] = ProcessInfo(2, 0, 0, "", (), "kthreadd", "/")
    proc.starts[2] = 1
    index = proc.index()
    index.refresh()
    index.refresh()
    assert index.departed_identity(2, 10) is None
