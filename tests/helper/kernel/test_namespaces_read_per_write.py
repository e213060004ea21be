"""A write call reads the network namespaces of the processes it adds, not
of every limited process (NamespaceShapers.shape_namespaces_of, restat=False:
snap35); the tick reads them all again, so a process that moved is followed
within a tick. Real processes in a real second namespace, real tc shapers."""

from __future__ import annotations

import os
import sys

from chadthrottle.contract import Direction
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.htb import ClassSpec
from chadthrottle.helper.kernel.namespace_shapers import NamespaceShapers, NoPacing
from chadthrottle.helper.kernel.tc_shaper import TcShaper

from tests.support.netns import NetnsPair, nsenter_argv, spawn
from tests.support.own_names import JOURNAL_INSTANCE

LIMIT = ClassSpec(rate_bps=1_000_000, burst_bytes=131072)
SLOT, OTHER_SLOT = 4, 5


def test_a_write_reads_only_its_new_processes_namespaces_and_the_tick_reads_all(
    pair: NetnsPair, shaper: TcShaper, datapath: Datapath
) -> None:
    program = "import time; print(1, flush=True); time.sleep(30)"
    here = spawn([sys.executable, "-c", program], None)  # in the shapers' own namespace
    there = spawn(nsenter_argv(pair.peer_ns, [sys.executable, "-c", program]), None)
    shapers = NamespaceShapers(
        shaper,
        lambda ipr: TcShaper(ipr, datapath.tc_program, NoPacing(), instance=JOURNAL_INSTANCE),
        linger_s=0.0,
    )
    try:
        for process in (here, there):
            assert process.stdout is not None and process.stdout.readline().strip() == "1"
        peer_inode = os.stat(f"/proc/{there.pid}/ns/net").st_ino  # once nsenter has entered
        limited = {os.getpid(): SLOT, here.pid: SLOT}
        shapers.shape_namespaces_of(limited)  # a tick: every one read
        assert shapers.namespaces_read == 2
        shapers.reconcile({Direction.UP: {SLOT: LIMIT}})
        assert not shapers._elsewhere

        # a write limits a process in the peer namespace: its namespace alone
        # is read, and it is shaped there at once
        limited[there.pid] = OTHER_SLOT
        shapers.shape_namespaces_of(limited, restat=False)
        assert shapers.namespaces_read == 3, "a write read the namespaces of every limited process"
        shapers.reconcile({Direction.UP: {SLOT: LIMIT, OTHER_SLOT: LIMIT}})
        assert set(shapers._elsewhere) == {peer_inode}

        # another write (a rate changed): nothing new, nothing read
        shapers.shape_namespaces_of(limited, restat=False)
        assert shapers.namespaces_read == 3
        # one gone by the write: forgotten without a read
        del limited[here.pid]
        shapers.shape_namespaces_of(limited, restat=False)
        assert shapers.namespaces_read == 3
        assert shapers._inode_of.keys() == {os.getpid(), there.pid}

        # the tick reads every one again
        shapers.shape_namespaces_of(limited)
        assert shapers.namespaces_read == 5
        shapers.reconcile({Direction.UP: {SLOT: LIMIT, OTHER_SLOT: LIMIT}})
        assert set(shapers._elsewhere) == {peer_inode}
    finally:
        for process in (here, there):
            process.kill()
            process.wait(10)
        shapers.reconcile({})  # the other namespace's shaper goes with the last limit there
    assert not shapers._elsewhere
