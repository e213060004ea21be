"""A network namespace a user made (`unshare -rn`, a rootless container) is
that user's: its devices and filters come and go at the user's will. Until
2026-12-06 the helper shaped there as in any other namespace: it hooked
every device up in it, under its engine lock, for a limit of the user's own.
With 300 veth devices made in 3 s a SetLimit of the user's took 20 s, the
ticks stopped, every gate's lease lapsed and an administrator's block on
another application let 17 MB through; with 600 the call failed after
minutes (rights28). Now such a namespace is not entered: the policer holds
the limit there, and the listing says so.

The real helper, the real polkitd granting limit-own to nobody's client,
and a namespace nobody makes with a few devices in it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import MiB, Stack
from tests.support.helper_calls import call_helper
from tests.support.other_users import ClientAs, granted
from tests.support.requirements import require_program
from tests.support.waiting import eventually

NOBODY = 65534
PAIRS = 4  # veth pairs in the user's namespace, all up: 8 devices a shaper would hook
HOLDER = "import socket, time\nsocket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nprint('ready', flush=True)\ntime.sleep(600)\n"
# Made in the user's namespace by the user, then the holder: a process with a
# socket there, named script:<its path> (not the client's python).
MAKE = ('for i in $(seq 1 "$1"); do echo "link add a$i type veth peer name b$i"; echo "link set a$i up"; '
        'echo "link set b$i up"; done | ip -batch - && ip link set lo up && exec "$2" "$3"')  # fmt: skip


@pytest.fixture
def nobody(stack: Stack) -> Iterator[ClientAs]:
    client = ClientAs(stack.bus_address, NOBODY)
    try:
        with granted(client):
            yield client
    finally:
        client.close()


@pytest.fixture
def holder() -> Iterator[subprocess.Popen[str]]:
    """nobody's process in a network namespace nobody made, with PAIRS veth pairs up."""
    for program in ("setpriv", "unshare", "ip"):
        require_program(program)
    folder = Path(tempfile.mkdtemp(prefix="ct-user-netns-"))
    folder.chmod(0o755)
    script = folder / "holder.py"
    script.write_text(HOLDER)
    script.chmod(0o644)
    argv = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "unshare", "-rn",
            "sh", "-c", MAKE, "sh", str(PAIRS), sys.executable, str(script)]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        yield process
    finally:
        process.kill()  # its namespaces, and the devices in them, go with it
        process.wait()
        if process.stdout is not None:
            process.stdout.close()
        shutil.rmtree(folder)


def _in_namespace_of(pid: int, *argv: str) -> str:
    return subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", *argv],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip


def test_a_limit_in_a_namespace_a_user_made_is_policed_and_adds_nothing_there(
    stack: Stack, nobody: ClientAs, holder: subprocess.Popen[str]
) -> None:
    require_program("nsenter")
    namespace = os.readlink(f"/proc/{holder.pid}/ns/net")
    answer = nobody.ask("set", f"pid:{holder.pid}", "up", MiB, "own")
    assert "ok" in answer, answer
    app_id = answer["ok"]
    try:
        assert app_id.startswith("script:")

        def reach() -> str:
            apps = call_helper(stack.bus_address, lambda c: c.list_applications())
            return next((a.up_limit_reach for a in apps if a.id == app_id), "")

        assert eventually(lambda: f"policed, not shaped in namespace {namespace}: a user made it" in reach(), 10), (
            f"the limit's reach reads {reach()!r}"
        )  # fmt: skip
        # Nothing of the helper's on the user's devices: no hook, no IFB.
        assert "clsact" not in _in_namespace_of(holder.pid, "tc", "qdisc", "show")
        assert "ifb" not in _in_namespace_of(holder.pid, "ip", "-d", "link", "show")
        assert f"uid {NOBODY} set up limit of {app_id} (own)" in stack.helper.log_text()
    finally:
        assert nobody.ask("clear", app_id, "own") == {"ok": app_id}
