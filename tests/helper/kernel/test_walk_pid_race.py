"""A walk of a process's open sockets checks the process (its start) and
then opens it (pidfd_open): if it exits between the two and its pid goes to
another process, the walk borrows that other's descriptors and writes its
sockets' tags and caps (review33b). The race is made here for real (the pid
handed out again through ns_last_pid), at the one instant the check passed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import chadthrottle.helper.kernel.datapath as datapath_module
import pytest
from chadthrottle.helper.identity.processes import read_start
from chadthrottle.helper.kernel.datapath import Datapath

from tests.helper.kernel.test_process_keys import SLOT, SOCKET_MAKER, _slot_of
from tests.support.reused_pids import start_at, stop


def test_a_walk_whose_process_exits_after_its_check_touches_not_the_pids_next_process(
    kernel_ready: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    datapath = Datapath(cache_dir=kernel_ready)
    datapath.open()
    maker = [sys.executable, "-c", SOCKET_MAKER, "now"]
    first = subprocess.Popen(maker, stdout=subprocess.PIPE, text=True)
    taken: list[subprocess.Popen[str]] = []
    try:
        assert first.stdout is not None
        fd = int(first.stdout.readline())
        pid, start = first.pid, read_start(first.pid)
        assert start is not None
        datapath.set_process_slot(pid, SLOT, start, later=True)
        real = datapath_module.read_start

        def exits_after_the_check(of: int) -> int | None:
            seen = real(of)
            if of == pid and not taken:  # the walk's check passed: now it exits
                first.kill()
                first.wait()
                taken.append(start_at(pid, maker, stdout=subprocess.PIPE, text=True))  # type: ignore[arg-type]
                assert taken[0].stdout is not None
                assert int(taken[0].stdout.readline()) == fd
            return seen

        monkeypatch.setattr(datapath_module, "read_start", exits_after_the_check)
        datapath.walk_pending()
        assert taken, "the walk did not check its process"
        assert _slot_of(datapath, pid, fd) == 0, "the pid's next process's socket got the slot"
    finally:
        stop(first, *taken)
        datapath.close()
