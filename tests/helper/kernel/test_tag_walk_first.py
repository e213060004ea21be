"""A new rule's process gets its open sockets tagged at the first bounded
walk after it is tagged, even when sweeps of a whole user's processes wait
(walk34). A process exiting before its untag walk ended queues a sweep of
every process of its user (rights30), and a slot let go a sweep of every
process (vet): for root, hundreds of tables. The new rule's tag walk was
queued behind them, oldest first within the user, so a root app's open
download went unlimited for seconds after SetLimit's reply (flake34a: 6 of 44
landings, two not held within 10 s). A sweep only drains an old slot; a tag
walk is what makes a limit hold: within a user they now go in turn, tag walks
first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from chadthrottle.helper.identity.processes import read_start
from chadthrottle.helper.kernel.datapath import Datapath

from tests.helper.kernel.test_process_keys import SLOT, _slot_of

NEW_SLOT = SLOT + 1
# Root processes holding this many descriptors each: their sweep takes
# several bounded calls (about 8 us a descriptor: rights28), whatever the load.
HOLDERS, DESCRIPTORS = 12, 4000
HOLDER = (
    "import os, sys\n"
    "fds = [os.open('/dev/null', os.O_RDONLY) for _ in range(int(sys.argv[1]))]\n"
    "print('ready', flush=True)\n"
    "sys.stdin.readline()\n"
)
SOCKET_HOLDER = (
    "import socket, sys\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "print(s.fileno(), flush=True)\n"
    "sys.stdin.readline()\n"
)


def _python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code, *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip


def _line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    return process.stdout.readline().strip()


def test_a_new_rules_tag_walk_goes_before_a_gone_processes_sweep(kernel_ready: Path) -> None:
    datapath = Datapath(cache_dir=kernel_ready)
    datapath.open()
    datapath.walk_budget_s = 0.05
    holders = [_python(HOLDER, str(DESCRIPTORS)) for _ in range(HOLDERS)]
    gone = _python(SOCKET_HOLDER)
    app = _python(SOCKET_HOLDER)
    try:
        assert all(_line(holder) == "ready" for holder in holders)
        gone_start = read_start(gone.pid)
        assert gone_start is not None
        int(_line(gone))
        datapath.set_process_slot(gone.pid, SLOT, gone_start)  # tagged now, whole
        datapath.set_process_slot(gone.pid, 0, gone_start, later=True)  # its rule cleared
        gone.kill()
        gone.wait()
        datapath.walk_pending()  # gone before its walk: every root process swept for SLOT
        assert SLOT in datapath.draining_slots(), "no sweep waits: the test proves nothing"
        fd = int(_line(app))
        app_start = read_start(app.pid)
        assert app_start is not None
        datapath.set_process_slot(app.pid, NEW_SLOT, app_start, later=True)  # a new rule
        datapath.walk_pending()  # the write's own call, before its reply
        waiting = len(datapath.pending_walks())
        assert _slot_of(datapath, app.pid, fd) == NEW_SLOT, (
            f"the new rule's open socket is not tagged after a bounded walk: "
            f"{waiting} walks still wait ahead of or beside it"
        )
        assert waiting > 0, "the sweep ended within the call: the test proves nothing"
        calls = 0
        while datapath.walk_pending():
            assert calls < 500, f"{calls} calls and the sweep goes on"
            calls += 1
        assert datapath.draining_slots() == set()
    finally:
        for process in [*holders, gone, app]:
            process.kill()
            process.communicate()  # reaped, its pipes closed
        datapath.close()
