"""A user's limited program cannot make root's calls wait by the number of
descriptors its processes hold.

The attack (rights28): nobody limits their own program, which holds 19,000
descriptors and forks a child every 50 ms (each child inherits them and
lives a second). The helper tags every new process of a limited program by
walking its descriptor table, under the engine's lock: the tick held it
2-2.4 s, and root's ListApplications waited up to 2.4 s. First tags' walks
now take at most a budget per tick (helper/kernel/pending_walks.py), the
rest at the next ticks. The real helper and polkitd; nobody's client granted
monitor and limit-own; root's ListApplications timed for 8 s."""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Stack
from tests.support.helper_calls import call_helper
from tests.support.other_users import ClientAs, client_as, granted
from tests.support.requirements import require_program
from tests.support.waiting import eventually

NOBODY = 65534
DESCRIPTORS = 19_000
CHILD_LIFE_S = 1.0
FORKER = (
    "import os, socket, sys, time\n"
    "null = os.open('/dev/null', os.O_RDONLY)\n"
    "held = [os.dup(null) for _ in range(int(sys.argv[1]))]\n"
    "sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "print('ready', flush=True)\n"
    "while True:\n"
    "    if os.fork() == 0:\n"
    "        time.sleep(float(sys.argv[2]))\n"
    "        os._exit(0)\n"
    "    time.sleep(0.05)\n"
    "    try:\n"
    "        while os.waitpid(-1, os.WNOHANG)[0]:\n"
    "            pass\n"
    "    except ChildProcessError:\n"
    "        pass\n"
)
WATCH_S = 8.0
# Root's longest wait. Before: 1.05-1.09 s here (2.2-2.4 s in rights28); after 0.13 s: the
# walks' budget (0.1 s) and a tick's own work, with other tests beside (docs/benchmarks/helper-calls.md).
LONGEST_WAIT_S = 0.5


@pytest.fixture
def forker() -> Iterator[tuple[str, int]]:
    """nobody's program, forking; its application id and pid."""
    folder = Path(tempfile.mkdtemp(prefix="ct-forker-"))
    folder.chmod(0o755)
    script = folder / "forker.py"
    script.write_text(FORKER)
    script.chmod(0o644)
    argv = [require_program("setpriv"), f"--reuid={NOBODY}", f"--regid={NOBODY}",
            "--clear-groups", sys.executable, str(script), str(DESCRIPTORS), str(CHILD_LIFE_S)]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        yield f"script:{script}", process.pid
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # its session: the children too
        process.wait()
        if process.stdout is not None:
            process.stdout.close()
        gone = lambda: not _session_of(process.pid)  # noqa: E731
        assert eventually(gone, 10), "the forker's children outlived it"
        shutil.rmtree(folder)


def _session_of(sid: int) -> list[int]:
    """The processes still in session sid."""
    found = []
    for name in os.listdir("/proc"):
        try:
            if name.isdigit() and os.getsid(int(name)) == sid:
                found.append(int(name))
        except ProcessLookupError:
            continue
    return found


@pytest.fixture
def nobody(stack: Stack) -> Iterator[ClientAs]:
    with client_as(stack.bus_address, NOBODY) as client, granted(client):
        yield client


def test_a_users_forking_program_of_many_descriptors_holds_up_no_root_call(
    stack: Stack, nobody: ClientAs, forker: tuple[str, int]
) -> None:
    app_id, pid = forker
    assert nobody.ask("set", f"pid:{pid}", "up", 1_000_000) == {"ok": app_id}
    try:
        waits: list[float] = []
        until = time.monotonic() + WATCH_S
        while time.monotonic() < until:
            started = time.monotonic()
            call_helper(stack.bus_address, lambda c: c.list_applications())
            waits.append(time.monotonic() - started)
            time.sleep(0.2)
        load = os.getloadavg()[0]
        print(f"root's ListApplications: {len(waits)} calls, median {statistics.median(waits):.3f} s, "
              f"longest {max(waits):.3f} s (load {load:.1f})")  # fmt: skip
        assert max(waits) < LONGEST_WAIT_S, f"root waited {max(waits):.2f} s (load {load:.1f})"
    finally:
        assert nobody.ask("clear", app_id) == {"ok": app_id}
