"""A pid the kernel hands out again is a new process, seen at the next tick.

A user's process exits and root starts the same program under the same pid:
the helper kept the user's uid on it until its next full read of /proc (up to
10 s), so the user was shown root's process as theirs (docs/helper.md,
"Nothing over another user's processes"). And the bytes a new process under
an old pid moves are its own from the first, though the helper sees the old
one exit only at its next tick (docs/accounting.md). Real helper, real
polkitd, a real second uid; the pid reused for real (the kernel's
ns_last_pid). The deterministic checks of the same are
tests/helper/engine/test_pid_reuse.py and tests/helper/kernel/test_process_keys.py."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from chadthrottle.contract import ErrorName

from tests.e2e.conftest import Stack
from tests.support.helper_calls import call_helper
from tests.support.netns import nsenter_argv
from tests.support.other_users import ClientAs, client_as, granted
from tests.support.requirements import require_program
from tests.support.reused_pids import start_at, wait_for_exec
from tests.support.waiting import eventually

NOBODY = 65534
# Sends COUNT datagrams of 512 bytes to ADDRESS:PORT, says so, waits to be killed.
SENDER = """import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(int(sys.argv[3])):
    s.sendto(b"x" * 512, (sys.argv[1], int(sys.argv[2])))
print("sent", flush=True)
time.sleep(600)
"""
DATAGRAM_L3 = 512 + 8 + 20  # with its UDP and IPv4 headers


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


def test_a_new_process_under_an_old_pid_is_counted_apart_from_the_old_one(
    stack: Stack, tmp_path: Path
) -> None:
    """One program sends three datagrams and is killed; another starts at once
    under its pid and sends two, most often before the helper's next tick
    (once a second). Each application keeps exactly its own process's bytes.
    Before, the second process's socket was not announced (the datapath had
    announced that pid) and its bytes were the old pid's counters: retired
    with the old process's, to the first program, and the second was never
    listed with any."""
    tmp_path.chmod(0o755)
    first, second = tmp_path / "first_sender.py", tmp_path / "second_sender.py"
    for script in (first, second):
        script.write_text(SENDER)
    pair = stack.pair

    def argv(script: Path, count: int) -> list[str]:
        return nsenter_argv(
            pair.host_ns, [sys.executable, str(script), pair.peer_addr, "9", str(count)]
        )

    def sent() -> dict[str, int]:
        apps = call_helper(stack.bus_address, lambda client: client.list_applications())
        return {
            app.id.rsplit("/", 1)[-1]: app.tx_bytes for app in apps if app.id.endswith("_sender.py")
        }

    old = subprocess.Popen(argv(first, 3), stdout=subprocess.PIPE, text=True)
    new = None
    try:
        assert old.stdout is not None and old.stdout.readline() == "sent\n"
        wanted = {first.name: 3 * DATAGRAM_L3}
        assert eventually(lambda: sent() == wanted, 5.0), f"{sent()}, not {wanted}"
        old.kill()
        old.wait()
        new = start_at(old.pid, argv(second, 2))
        wanted = {first.name: 3 * DATAGRAM_L3, second.name: 2 * DATAGRAM_L3}
        assert eventually(lambda: sent() == wanted, 5.0), f"{sent()}, not {wanted}"
        new.kill()
        new.wait()
        new = None

        def second_exited() -> bool:
            apps = call_helper(stack.bus_address, lambda client: client.list_applications())
            return any(app.id.endswith(second.name) and not app.running for app in apps)

        assert eventually(second_exited, 5.0)
        assert sent() == wanted, "retired to another application"
    finally:
        for process in (old, new):
            if process is not None:
                process.kill()
                process.wait()
