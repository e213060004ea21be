"""The process events connector: forks and execs of real processes."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest
from chadthrottle.helper.kernel import proc_events
from chadthrottle.helper.kernel.proc_events import ProcessLineage, open_proc_events

from tests.support.requirements import require, require_root


def test_forked_children_name_their_parent_and_execd_ones_do_not() -> None:
    require_root()
    events = open_proc_events()
    require(events is not None, "needs the process events connector (CONFIG_PROC_EVENTS)")
    assert events is not None
    try:
        child = os.fork()
        if child == 0:
            os._exit(0)
        os.waitpid(child, 0)
        execd = subprocess.Popen(["true"])  # fork + exec: runs another program
        execd.wait()
        assert events.same_program_parent(child) == os.getpid()
        assert events.same_program_parent(execd.pid) is None
    finally:
        events.close()


def test_lineage_forgets_the_oldest_first() -> None:
    lineage = ProcessLineage(capacity=2)
    lineage.forked(1, 10)
    lineage.forked(1, 11)
    lineage.execd(11)
    lineage.forked(10, 12)
    assert (
        lineage.same_program_parent(10),
        lineage.same_program_parent(11),
        lineage.same_program_parent(12),
    ) == (None, None, 10)


def test_after_lost_events_a_child_forked_before_is_not_vouched_for() -> None:
    """The connector's socket filled (a held-up helper; a stock rmem_max caps
    its buffer near 500 events): the kernel drops what comes next, a child's
    exec among them, and the child that ran another program (a shell's curl)
    was named by its parent's program. Once events were lost, a child forked
    before is not vouched for; one forked after is."""
    require_root()
    events = open_proc_events()
    require(events is not None, "needs the process events connector (CONFIG_PROC_EVENTS)")
    assert events is not None
    try:
        events._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)  # a few dozen
        events.drain()
        release, hold = os.pipe()
        child = os.fork()
        if child == 0:  # waits, then runs another program
            os.close(hold)
            os.read(release, 1)
            os.execv("/bin/true", ["true"])
        os.close(release)
        flood = []
        for _ in range(400):  # fills the socket: the child's exec below is dropped
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)
            flood.append(pid)
        os.write(hold, b"x")
        os.close(hold)
        os.waitpid(child, 0)
        events.drain()
        # preconditions (private: what the kernel kept): the child's fork
        # arrived, and later events were lost
        assert child in events.lineage._parent, "the child's fork was dropped too: run again"
        assert not all(pid in events.lineage._parent for pid in flood), "nothing was lost"
        assert events.same_program_parent(child) is None, "an exec'd child named by its parent"
        after = os.fork()
        if after == 0:
            os._exit(0)
        os.waitpid(after, 0)
        assert events.same_program_parent(after) == os.getpid()
    finally:
        events.close()


def test_the_buffer_asked_for_is_had_past_the_machines_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """SO_RCVBUF is capped by net.core.rmem_max (212,992 bytes on a stock
    machine: about 500 events, and a helper held up a moment lost them); the
    helper is root, and asks past it. Asked for more than this machine's cap."""
    require_root()
    cap = int(Path("/proc/sys/net/core/rmem_max").read_text())
    monkeypatch.setattr(proc_events, "RECEIVE_BUFFER_BYTES", 2 * cap)
    events = open_proc_events()
    require(events is not None, "needs the process events connector (CONFIG_PROC_EVENTS)")
    assert events is not None
    try:  # the kernel doubles what it is asked for (its own overhead)
        assert events._sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 4 * cap
    finally:
        events.close()
