"""Where the tc backend catches an uplink's limited traffic: a cls_bpf filter
(our program, our priority) on the uplink's ingress hook (downloads) or
clsact egress hook (uploads), whose mirred action redirects the packet to
the namespace's IFB of that direction. Every uplink of a namespace redirects
to the same IFB, so one HTB class there holds an application's traffic over
all of them together (with an HTB per uplink, two uplinks passed the whole
limit each).

The qdisc that carries the hooks is a clsact, which has both; the shaper adds
one where the uplink has none and removes it with its last filter there. A
clsact is ChadThrottle's when a shaper's journal records adding it (the entry
is written before the add): then every shaper that hooks on it, another
helper's too, removes it with the last filter there, whichever leaves last
(clsact_of_a_shaper). Before, the helper that added it left it for another
helper's filter on its other hook and forgot it, and that helper never removed
a clsact it had not added: an empty clsact stayed (clsact34, on the machine's
eth0 after two test helpers limited applications of the root namespace). A
clsact no journal records is somebody else's and stays. (The kernel check is
only that a clsact is there: one recorded, removed by someone and added again
is taken for ours, as for a single helper.) A
device with an `ingress` qdisc (somebody else's, or one a helper before
2026-12-03 added) has an ingress hook but no egress one: downloads use it,
uploads on that uplink cannot be caught (hook_point says so).
"""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass

from chadthrottle.contract import Direction
from chadthrottle.helper.errors import KernelError
from chadthrottle.helper.kernel import catch_all, interfaces
from chadthrottle.helper.kernel.htb import HtbHierarchy, tc_call
from chadthrottle.helper.kernel.ownership import recorded_entries
from chadthrottle.helper.kernel.tc_ownership import (
    FILTER_HANDLE,
    FILTER_PRIORITY,
    HOOK_KINDS,
    JOURNAL_KIND,
    HookEntry,
    our_filter,
    our_ifb,
    same_device,
)
from pyroute2.iproute import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

log = logging.getLogger("chadthrottle.kernel.tc")

INGRESS_PARENT = 0xFFFF0000  # an ingress qdisc's hook, ffff:
CLSACT_PARENTS = {
    Direction.DOWN: 0xFFFFFFF2,
    Direction.UP: 0xFFFFFFF3,
}  # clsact's ingress and egress hooks
HOOK_QDISC_HANDLE = 0xFFFF0000


@dataclass
class Hook:
    """One uplink's redirect of one direction's limited traffic to the
    namespace's IFB of that direction (shared by every uplink's hook)."""

    direction: Direction
    uplink_index: int
    ifb: HtbHierarchy
    parent: int
    created_qdisc: bool  # the clsact (or ingress) qdisc is ours: it goes with our last filter on it
    old_program: bool = False  # adopted: its filter still runs a killed helper's program
    ifb_name: str = ""
    catch_all: bool = (
        False  # under a link: every other packet of the direction redirected too (catch_all.py)
    )


class NoHookPoint(Exception):
    """The uplink has no hook for this direction that the shaper may use."""


# Our filter's place (its priority) on the hook holds a filter this shaper did
# not make: another ChadThrottle helper's, whose rule reaches an application
# here (a helper of another system bus: a container's, or another test
# session's). tc would refuse ours ("File exists"); it is left alone.
PLACE_TAKEN = (
    f"a filter this helper did not create holds ChadThrottle's place on it (prio {FILTER_PRIORITY:#x}; "
    "another ChadThrottle helper's?); it is left untouched"
)


def hook_point(ipr: IPRoute, uplink: int, direction: Direction) -> tuple[int, bool]:
    """(parent of our filter, whether a clsact must be added first)."""
    kind = interfaces.ingress_hook(ipr, uplink)
    if kind is None:
        return CLSACT_PARENTS[direction], True
    if kind == "clsact" or direction is Direction.DOWN:
        parent = CLSACT_PARENTS[direction] if kind == "clsact" else INGRESS_PARENT
        if interfaces.filters_at(ipr, uplink, parent, FILTER_PRIORITY):
            raise NoHookPoint(PLACE_TAKEN)
        return parent, False
    raise NoHookPoint(
        "an ingress qdisc ChadThrottle did not create is on it, which has no egress hook (a clsact "
        "would have); it is left untouched"
    )


def clsact_of_a_shaper(netns: int, uplink: int, uplink_name: str) -> bool:
    """Whether a ChadThrottle shaper, any helper's, live or killed, recorded
    adding the clsact on this uplink of this namespace (netns: its cookie):
    a hook put on it then removes it with the last filter there too."""
    return any(
        entry.get("netns") == netns
        and str(entry.get("key", "")).split(":")[0] in HOOK_KINDS
        and entry.get("uplink") == uplink
        and entry.get("uplink_name") == uplink_name
        and entry.get("created_qdisc") is True
        and entry.get("parent") in CLSACT_PARENTS.values()
        for entry in recorded_entries(JOURNAL_KIND)
    )


def add_filter(ipr: IPRoute, hook: Hook, program: tuple[int, str]) -> None:
    """Add our filter; a filter put at its place since hook_point looked
    (another helper's) is reported like one found there."""
    try:
        set_filter(ipr, hook, program, "add-filter")
    except KernelError as error:
        if error.errno == errno.EEXIST:
            raise NoHookPoint(PLACE_TAKEN) from error
        raise


def add_hook_qdisc(ipr: IPRoute, uplink: int) -> bool:
    """Add a clsact; whether its graft dropped what the uplink sent meanwhile
    (the uplink's tx_dropped rose, or cannot be read) or what its root qdisc
    held (packets queued there before the add, or unknown): the kernel grafts
    it like a root qdisc, deactivating the device, so for an RCU grace period
    every packet sent meets the noop qdisc, and resets the device's own
    qdiscs, which drops what they held queued and counts it nowhere
    (dev_deactivate_many; docs/backends.md, "Adding a clsact drops the
    uplink's packets for a moment"). A slow uplink with a sender over its
    rate always holds some (TCP small queues keep about a millisecond)."""
    before = _tx_dropped(ipr, uplink)
    queued = _root_queued(ipr, uplink)
    tc_call(ipr, "add", "clsact", uplink)
    return before is None or queued != 0 or _tx_dropped(ipr, uplink) != before


def _root_queued(ipr: IPRoute, uplink: int) -> int | None:
    """Packets the uplink's root qdisc holds (None: unknown)."""
    try:
        qdiscs = list(ipr.get_qdiscs(index=uplink))
    except NetlinkError:
        return None
    queued = 0
    for qdisc in qdiscs:
        stats = qdisc.get_attr("TCA_STATS2")
        queue = stats.get_attr("TCA_STATS_QUEUE") if stats is not None else None
        if qdisc["parent"] == interfaces.TC_H_ROOT and queue is not None:
            queued += int(queue["qlen"])
    return queued


def _tx_dropped(ipr: IPRoute, uplink: int) -> int | None:
    try:
        stats = ipr.get_links(uplink)[0].get_attr("IFLA_STATS64")
    except (NetlinkError, IndexError):
        return None
    return int(stats["tx_dropped"]) if stats else None


def set_filter(ipr: IPRoute, hook: Hook, program: tuple[int, str], command: str) -> None:
    """Add our filter, or ("replace-filter") swap its program in place."""
    prog_fd, prog_name = program
    tc_call(
        ipr,
        command,
        "bpf",
        hook.uplink_index,
        FILTER_HANDLE,
        parent=hook.parent,
        prio=FILTER_PRIORITY,
        fd=prog_fd,
        name=prog_name,
        action={
            "kind": "mirred",
            "direction": "egress",
            "action": "redirect",
            "ifindex": hook.ifb.ifindex,
        },
    )


def _has_any_filter(ipr: IPRoute, uplink: int) -> bool:
    parents = (INGRESS_PARENT, *CLSACT_PARENTS.values())
    return any(interfaces.has_filters(ipr, uplink, parent) for parent in parents)


def remove_filter_and_qdisc(ipr: IPRoute, uplink: int, parent: int, created_qdisc: bool,
                            ifb_index: int | None) -> None:  # fmt: skip
    """Our filter under parent (redirecting to ifb_index; None, the IFB is
    gone: to any IFB), our catch-all after it (None: ours to a missing
    device), and the hook qdisc if we added it and no filter is left on it."""
    catch_all.remove(ipr, uplink, parent, ifb_index)
    found = our_filter(ipr, uplink, parent, ifb_index)
    if found is not None:
        interfaces.delete_filter(ipr, uplink, parent, FILTER_PRIORITY, found)
    kind = interfaces.ingress_hook(ipr, uplink) if created_qdisc else None
    if kind is not None and not _has_any_filter(ipr, uplink):
        try:
            ipr.tc("del", kind, uplink, HOOK_QDISC_HANDLE)
        except NetlinkError as error:
            log.debug("%s qdisc on %d already gone: %s", kind, uplink, error)


def remove_hook_remains(ipr: IPRoute, entry: HookEntry, keep_ifb: bool = False) -> None:
    """Remove what of a recorded IFB and hook is still there and ours (the IFB
    not when keep_ifb: another uplink's hook uses it)."""
    uplink = same_device(ipr, entry.uplink, entry.uplink_name)
    ifb = our_ifb(ipr, entry.ifb_name, entry.direction)
    if uplink is not None and entry.hook_parent is not None:  # None: the IFB is gone
        remove_filter_and_qdisc(ipr, entry.uplink, entry.hook_parent, entry.created_qdisc,
                                ifb.index if ifb is not None else None)  # fmt: skip
    if ifb is not None and not keep_ifb:
        interfaces.delete_link(ipr, ifb.index)
