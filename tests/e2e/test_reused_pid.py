"""A pid the kernel hands out again is a new process, seen at the next tick.

A user's process exits and root starts the same program under the same pid:
the helper kept the user's uid on it until its next full read of /proc (up to
10 s), so the user was shown root's process as theirs (docs/helper.md,
"Nothing over another user's processes"). Real helper, real polkitd, a real
second uid; the pid reused for real (the kernel's ns_last_pid). The
deterministic check of the same is tests/helper/engine/test_pid_reuse.py."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from chadthrottle.contract import ErrorName

from tests.e2e.conftest import Stack
from tests.support.other_users import ClientAs, client_as, granted
from tests.support.requirements import require_program
from tests.support.reused_pids import start_at, wait_for_exec
from tests.support.waiting import eventually

NOBODY = 65534


@pytest.fixture
def nobody(stack: Stack) -> Iterator[ClientAs]:
    with client_as(stack.bus_address, NOBODY) as client, granted(client):
        yield client


def test_roots_process_under_a_users_old_pid_is_not_listed_as_theirs(
    stack: Stack, nobody: ClientAs
) -> None:
    directory = Path(tempfile.mkdtemp(prefix="ct-reuse-e2e-"))
    directory.chmod(0o755)
    program = directory / "sleep"
    shutil.copy("/bin/sleep", program)
    app_id = f"exe:{program}"
    setpriv = [
        require_program("setpriv"),
        f"--reuid={NOBODY}",
        f"--regid={NOBODY}",
        "--clear-groups",
    ]
    users = subprocess.Popen([*setpriv, str(program), "600"])
    roots = None
    try:
        pid = users.pid
        wait_for_exec(pid, program)
        assert eventually(lambda: nobody.ask("processes", app_id) == {"ok": [pid]}, 5.0)
        users.kill()
        users.wait()
        roots = start_at(pid, [str(program), "600"])
        wait_for_exec(pid, program)
        # the next tick (one a second) sees it; before, up to the next full read (10 s)
        not_theirs = ({"ok": []}, {"error": ErrorName.NO_SUCH_APPLICATION.value})
        assert eventually(lambda: nobody.ask("processes", app_id) in not_theirs, 2.5), (
            f"root's process {pid} is listed as uid {NOBODY}'s: {nobody.ask('processes', app_id)}"
        )
    finally:
        for process in (users, roots):
            if process is not None:
                process.kill()
                process.wait()
        shutil.rmtree(directory)
