"""An untag's walk waits (bounded per call): the slot drains until the walk
ends or its process is gone. A process that forks meanwhile and exits before
its walk leaves its child holding the very sockets, tagged with the old slot:
the slot must not drain away then (review33b: it went to another rule while
the child's socket carried it). Now the gone walk's user's processes are
swept (rights30): only sockets carrying the slot are retagged, the slot
draining until then."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from chadthrottle.helper.identity.processes import read_start
from chadthrottle.helper.kernel.datapath import Datapath

from tests.helper.kernel.test_process_keys import SLOT, _slot_of

FORKER = (
    "import os, socket, sys, time\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "print(s.fileno(), flush=True)\n"
    "sys.stdin.readline()\n"
    "child = os.fork()\n"
    "if child == 0:\n"
    "    time.sleep(600)\n"
    "    os._exit(0)\n"
    "print(child, flush=True)\n"
    "os._exit(0)\n"
)


def test_a_process_forking_and_exiting_before_its_untag_walk_keeps_the_slot_draining(
    kernel_ready: Path,
) -> None:
    datapath = Datapath(cache_dir=kernel_ready)
    datapath.open()
    parent = subprocess.Popen([sys.executable, "-c", FORKER], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    child = 0
    try:
        assert parent.stdin is not None and parent.stdout is not None
        fd = int(parent.stdout.readline())
        start = read_start(parent.pid)
        assert start is not None
        datapath.set_process_slot(parent.pid, SLOT, start)  # tagged now, whole
        assert _slot_of(datapath, parent.pid, fd) == SLOT
        datapath.set_process_slot(parent.pid, 0, start, later=True)  # the rule cleared
        parent.stdin.write("\n")
        parent.stdin.flush()
        child = int(parent.stdout.readline())
        assert parent.wait(10) == 0
        datapath.walk_pending()
        carried = _slot_of(datapath, child, fd)
        assert carried == 0 or SLOT in datapath.draining_slots(), (
            f"the child's socket carries slot {carried}; draining: {datapath.draining_slots()}"
        )
        calls = 0  # the sweep: each of root's processes, only sockets carrying the slot
        while datapath.walk_pending():
            assert calls < 500, f"{calls} calls and the sweep goes on"
            calls += 1
        assert _slot_of(datapath, child, fd) == 0, "the child's socket still carries the slot"
        assert datapath.draining_slots() == set()
    finally:
        if child:
            os.kill(child, 9)
        parent.kill()
        parent.wait()
        datapath.close()
