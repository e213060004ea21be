"""A pid the kernel hands out again is a new process (a security review's
finding): a user's process exits and root starts the same program under the
same pid between two ticks. The index kept the old process's uid for up to
ten ticks (it re-reads a known pid only when its executable changes), so the
user was shown root's process and its traffic as theirs, and their own rule
kept root's process tagged. Real processes and /proc; the pid is reused for
real (the kernel's ns_last_pid); recording stand-ins for the kernel ports."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from chadthrottle.contract import BackendInfo, Direction
from chadthrottle.helper.engine.api import SetLimit
from chadthrottle.helper.identity.index import ApplicationIndex
from chadthrottle.helper.identity.processes import read_start

from tests.helper.engine.admin_engine import AdminEngine
from tests.helper.engine.recording_ports import RecordingDatapath, RecordingShaper, Traffic
from tests.support.requirements import require_program, require_root
from tests.support.reused_pids import start_at, stop, wait_for_exec

NOBODY = 65534


def _start(pid: int) -> int:
    start = read_start(pid)
    assert start is not None, f"pid {pid} is gone"
    return start


def test_a_users_process_replaced_by_roots_under_its_pid_is_roots(program: Path) -> None:
    require_root()
    setpriv = [
        require_program("setpriv"),
        f"--reuid={NOBODY}",
        f"--regid={NOBODY}",
        "--clear-groups",
    ]
    datapath = RecordingDatapath()
    engine = AdminEngine(datapath, RecordingShaper(), ApplicationIndex(),
                         lambda active: [BackendInfo("tc", True, "", ())])  # fmt: skip
    app_id = f"exe:{program}"
    users = subprocess.Popen([*setpriv, str(program), "600"])
    roots: subprocess.Popen[bytes] | None = None
    try:
        pid = users.pid
        wait_for_exec(pid, program)
        engine.tick()
        assert [row.pid for row in engine.list_processes(app_id, NOBODY)] == [pid]
        (outcome,) = engine.apply_changes([SetLimit(app_id, Direction.DOWN, 100_000, 0, NOBODY)])
        assert not isinstance(outcome, Exception), outcome
        assert datapath.process_slots.get(pid), "the user's own rule tags their process"
        # what the user's process moved (its sockets' tags name it: pid and start)
        datapath.traffic.append(Traffic(pid, 1_000_000, owner_start=_start(pid)))
        engine.tick()

        users.kill()
        users.wait()
        roots = start_at(pid, [str(program), "600"])  # the same program, root's
        wait_for_exec(pid, program)
        engine.tick()

        assert [row.pid for row in engine.list_processes(app_id, NOBODY)] == [], (
            "root's process is listed as the user's"
        )
        assert [row.pid for row in engine.list_processes(app_id, 0)] == [pid]
        assert datapath.traffic == [], "the old process's counters were not retired"
        assert not datapath.process_slots.get(pid), "the user's rule still tags root's process"
    finally:
        for process in (users, roots):
            if process is not None:
                process.kill()
                process.wait()


def test_a_new_process_under_a_reused_pid_has_its_own_bytes(program: Path) -> None:
    """Another program's process gets an exited process's pid and moves
    bytes before the next tick, and its first socket is announced before
    that tick too. The counters are the process's (the datapath keys them
    by pid and start): the old process's bytes stay its application's, the
    new one's are the new application's, none of either goes to the other.
    Before, both were one pid's counters: retired together, to whichever
    application the pid was last announced for (the old one lost its bytes,
    or the new one's went to it)."""
    require_root()
    other = program.with_name("nap")
    shutil.copy(program, other)
    datapath = RecordingDatapath()
    engine = AdminEngine(datapath, RecordingShaper(), ApplicationIndex(),
                         lambda active: [BackendInfo("tc", True, "", ())])  # fmt: skip
    first = subprocess.Popen([str(program), "600"])
    second: subprocess.Popen[bytes] | None = None
    try:
        pid = first.pid
        wait_for_exec(pid, program)
        old_start = _start(pid)
        engine.tick()
        datapath.traffic.append(Traffic(pid, 1_000_000, owner_start=old_start))
        engine.tick()

        first.kill()
        first.wait()
        time.sleep(0.02)  # another clock tick of /proc's start times: the kernel's count is finer
        second = start_at(pid, [str(other), "600"])
        wait_for_exec(pid, other)
        new_start = _start(pid)
        assert new_start != old_start
        # within the tick: the old process's last bytes, the new one's first socket and bytes
        datapath.traffic = [
            Traffic(pid, 1_000_300, owner_start=old_start),
            Traffic(pid, 5_000, owner_start=new_start),
        ]
        engine.note_new_owner(pid, 0, new_start)
        engine.tick()
        engine.tick()

        totals = {app.id: app.rx_bytes for app in engine.list_applications()}
        assert totals.get(f"exe:{program}") == 1_000_300
        assert totals.get(f"exe:{other}") == 5_000
        assert datapath.traffic == [Traffic(pid, 5_000, owner_start=new_start)], (
            "only the old process's counters are retired"
        )
        assert [row.pid for row in engine.list_processes(f"exe:{other}")] == [pid]
    finally:
        stop(first, second)


@pytest.mark.parametrize("announced", [True, False])
def test_a_limited_programs_new_process_under_its_old_pid_is_tagged_afresh(
    program: Path, announced: bool
) -> None:
    """The datapath gives a pid's slot only to the process it was written for
    (struct owned_slot's start), so a new process of the same limited program
    under the old one's pid must be tagged again: at once when its first
    socket announces it, else at the next tick. Before, the engine took the
    pid as tagged already and never wrote its slot again: the new process ran
    unlimited."""
    require_root()
    datapath = RecordingDatapath()
    engine = AdminEngine(datapath, RecordingShaper(), ApplicationIndex(),
                         lambda active: [BackendInfo("tc", True, "", ())])  # fmt: skip
    app_id = f"exe:{program}"
    first = subprocess.Popen([str(program), "600"])
    second: subprocess.Popen[bytes] | None = None
    try:
        pid = first.pid
        wait_for_exec(pid, program)
        engine.tick()
        (outcome,) = engine.apply_changes([SetLimit(app_id, Direction.DOWN, 100_000, 0)])
        assert not isinstance(outcome, Exception), outcome
        slot = datapath.process_slots[pid]
        first.kill()
        first.wait()
        time.sleep(0.02)  # another clock tick of /proc's start times
        second = start_at(pid, [str(program), "600"])
        wait_for_exec(pid, program)
        datapath.events.clear()
        if announced:
            engine.note_new_owner(pid, 0, _start(pid))
        else:
            engine.tick()
        assert ("tag", pid, slot) in datapath.events, datapath.events
        assert datapath.process_slots.get(pid) == slot
    finally:
        stop(first, second)
