"""The priority tree built by the helper's kernel layer, classified as the
helper classifies: the "tagged" case of bench/priorities.py.

Unlike bench/priority_model.py (u32 filters on the call's UDP port), here
the helper's own pieces do it: the datapath's programs tag the call's
sockets by its app scope (Datapath.set_cgroup_slot, as the engine does for
an application's scope), and TcShaper, given a link capacity per direction
(set_link), carries the tree on the namespace's two IFBs, the call in a
critical class of its own, every other packet through the catch-all into
the default class. What is still missing is the engine: the contract's
SetPriority and capacity, the rules that hold them (issue 16).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from chadthrottle.contract import Direction
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.htb import ClassSpec
from chadthrottle.helper.kernel.priority_classes import LinkShaping
from chadthrottle.helper.kernel.tc_shaper import TcShaper
from chadthrottle.priority import Priority
from pyroute2 import IPRoute

from tests.support import own_names
from tests.support.netns import NetnsPair, entered_netns

CALL_SLOT = 1
DOWNLOAD_SLOT = 2  # the bulk download, with --tag-download
CACHE_DIR = Path("/var/cache/chadthrottle")
ETHERNET_L3_TO_L2 = 1514 / 1500  # the modem counts frames; a capacity is at L3


@contextlib.contextmanager
def shaped_by_the_helpers_kernel(
    pair: NetnsPair,
    down_bps: int,
    up_bps: int,
    priority: Priority = Priority.CRITICAL,
) -> Iterator[Callable[[Path, int], None]]:
    """The tree on the host namespace's IFBs under the link (L2 bytes/s, as
    the modem counts), a class for the call (CALL_SLOT, `priority`) and one
    at normal priority for DOWNLOAD_SLOT; yields tag(scope, slot): that app
    scope's new sockets are that application's (a scope nobody tags is in
    the default class). Everything goes when the block ends."""
    datapath = Datapath(cache_dir=CACHE_DIR)
    datapath.open()
    tagged: list[int] = []
    try:
        with entered_netns(pair.host_ns):
            ipr = IPRoute()
        shaper = TcShaper(ipr, datapath.tc_program, datapath, instance=own_names.JOURNAL_INSTANCE)
        try:
            for direction, capacity in ((Direction.DOWN, down_bps), (Direction.UP, up_bps)):
                shaper.set_link(direction, LinkShaping(round(capacity / ETHERNET_L3_TO_L2)))
            # rate 0: no limit, a class for the priority
            classes = {
                CALL_SLOT: ClassSpec(0, 0, priority),
                DOWNLOAD_SLOT: ClassSpec(0, 0, Priority.NORMAL),
            }
            shaper.reconcile({direction: dict(classes) for direction in Direction})

            def tag(scope: Path, slot: int) -> None:
                cgroup_id = os.stat(scope).st_ino
                datapath.set_cgroup_slot(cgroup_id, slot)
                tagged.append(cgroup_id)

            yield tag
        finally:
            shaper.close()
            ipr.close()
    finally:
        for cgroup_id in tagged:
            with contextlib.suppress(Exception):
                datapath.set_cgroup_slot(cgroup_id, 0)
        datapath.close()
