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
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from chadthrottle.contract import BackendInfo, Direction
from chadthrottle.helper.engine.api import SetLimit
from chadthrottle.helper.identity.index import ApplicationIndex

from tests.helper.engine.admin_engine import AdminEngine
from tests.helper.engine.recording_ports import RecordingDatapath, RecordingShaper, Traffic
from tests.support.requirements import require_program, require_root
from tests.support.reused_pids import start_at, wait_for_exec

NOBODY = 65534


@pytest.fixture
def program() -> Iterator[Path]:
    """A copy of sleep under a name no other test runs (its own application)."""
    directory = Path(tempfile.mkdtemp(prefix="ct-reuse-"))
    try:
        directory.chmod(0o755)  # run by nobody too
        shutil.copy("/bin/sleep", directory / "sleep")
        yield directory / "sleep"
    finally:
        shutil.rmtree(directory)


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
        datapath.traffic.append(Traffic(pid, 1_000_000))  # what the user's process moved
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
        assert pid in datapath.forgotten_owners, "the old process's exit was not seen"
        assert datapath.traffic == [], "the old process's counters were not retired"
        assert not datapath.process_slots.get(pid), "the user's rule still tags root's process"
    finally:
        for process in (users, roots):
            if process is not None:
                process.kill()
                process.wait()
