"""Shaping with HTB: uploads on each uplink's root, downloads on an IFB.

Upload: an HTB root (handle HTB_MAJOR:) on every uplink; the cgroup egress
program puts packets of limited applications straight into their class by
writing skb->priority, everything else goes out through HTB's direct queue.
Download: the uplink's ingress hook runs the cls_bpf program chadt_tc_in,
which matches packets for limited sockets only; its mirred action redirects
them to an IFB (one per uplink) whose HTB shapes them.

The shaper is declarative: reconcile() takes the classes wanted per direction
and makes every uplink match, creating the qdiscs with the first limit and
removing them with the last. It never replaces a root qdisc somebody else
configured: it refuses with a clear message instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from chadthrottle.contract import Direction
from chadthrottle.helper.errors import BackendUnavailable, KernelError
from chadthrottle.helper.kernel import interfaces
from chadthrottle.helper.kernel.layout import HTB_MAJOR, class_id

log = logging.getLogger("chadthrottle.kernel.tc")

ROOT_HANDLE = HTB_MAJOR << 16
INGRESS_PARENT = 0xFFFF0000  # the ingress qdisc ffff:, also clsact's ingress hook base
CLSACT_INGRESS_PARENT = 0xFFFFFFF2
FILTER_PRIORITY = 0xC7AD
# Unlimited traffic goes to a default class, not HTB's direct queue: the direct
# queue is served before every class, so a saturating bystander would starve
# the limited applications below their rate. The default class is fast enough
# never to be the bottleneck and yields to limited classes (lower priority).
DEFAULT_MINOR = 0xFFFF
DEFAULT_CLASS_RATE = "100gbit"
DEFAULT_CLASS_BURST_BYTES = 1 << 20
LIMITED_PRIORITY, DEFAULT_PRIORITY = 0, 1
LEAF_QUEUE_SECONDS = 0.1  # a leaf bfifo holds this much of the class rate
MIN_LEAF_QUEUE_BYTES = 256 * 1024  # at least a few 64 KB GSO/GRO super-packets


@dataclass(frozen=True)
class ClassSpec:
    """One application's limit in one direction."""

    rate_bps: int
    burst_bytes: int


Classes = dict[int, ClassSpec]  # app slot -> limit


@dataclass
class _Hierarchy:
    """An HTB root we created on one device and the classes now in it."""

    ifindex: int
    classes: Classes = field(default_factory=dict)


@dataclass
class _IngressHook:
    uplink_index: int
    ifb: _Hierarchy
    parent: int
    created_qdisc: bool


class TcShaper:
    def __init__(self, ipr: IPRoute, tc_program: Callable[[], tuple[int, str]]) -> None:
        self._ipr = ipr
        self._tc_program = tc_program
        self._egress: dict[int, _Hierarchy] = {}  # uplink ifindex -> our root
        self._ingress: dict[int, _IngressHook] = {}  # uplink ifindex -> hook + IFB

    def active_directions(self) -> set[Direction]:
        active = set()
        if any(h.classes for h in self._egress.values()):
            active.add(Direction.UP)
        if any(h.ifb.classes for h in self._ingress.values()):
            active.add(Direction.DOWN)
        return active

    def reconcile(self, wanted: dict[Direction, Classes]) -> None:
        """Make every uplink carry exactly the wanted classes (none: no qdiscs)."""
        uplinks = {link.index: link for link in interfaces.uplinks(self._ipr)}
        self._forget_vanished(set(uplinks))
        up, down = wanted.get(Direction.UP, {}), wanted.get(Direction.DOWN, {})
        for index, link in uplinks.items():
            if up:
                hierarchy = self._egress.get(index) or self._create_root(index, link.name)
                self._egress[index] = hierarchy
                self._sync_classes(hierarchy, up)
            elif index in self._egress:
                self._delete_root(self._egress.pop(index).ifindex)
            if down:
                hook = self._ingress.get(index) or self._create_ingress(index, link.name)
                self._ingress[index] = hook
                self._sync_classes(hook.ifb, down)
            elif index in self._ingress:
                self._remove_ingress(self._ingress.pop(index))

    def close(self) -> None:
        """Remove everything this shaper created; interfaces end as found."""
        self.reconcile({})

    # --- egress -----------------------------------------------------------------

    def _create_root(self, ifindex: int, name: str) -> _Hierarchy:
        root = interfaces.root_qdisc(self._ipr, ifindex)
        if root is not None and root.handle == ROOT_HANDLE and root.kind == "htb":
            log.info("re-using our HTB root on %s", name)
            self._delete_root(ifindex)  # left by a killed helper: start clean
        elif root is not None and not root.is_default:
            raise BackendUnavailable(
                f"{name} already has a root qdisc ({root.kind} {root.handle >> 16:x}:) that "
                "ChadThrottle did not create; it is left untouched, so uploads on it cannot be "
                "limited by the tc backend"
            )
        self._create_htb(ifindex)
        log.info("created HTB root %x: on %s", HTB_MAJOR, name)
        return _Hierarchy(ifindex)

    def _create_htb(self, ifindex: int) -> None:
        self._call("add", "htb", ifindex, ROOT_HANDLE, default=DEFAULT_MINOR)
        self._call(
            "add-class", "htb", ifindex, ROOT_HANDLE | DEFAULT_MINOR, parent=ROOT_HANDLE,
            rate=DEFAULT_CLASS_RATE, ceil=DEFAULT_CLASS_RATE, burst=DEFAULT_CLASS_BURST_BYTES,
            cburst=DEFAULT_CLASS_BURST_BYTES, prio=DEFAULT_PRIORITY,
        )

    def _delete_root(self, ifindex: int) -> None:
        try:
            self._ipr.tc("del", "htb", ifindex, ROOT_HANDLE)
        except NetlinkError as error:
            log.debug("HTB root on %d already gone: %s", ifindex, error)

    # --- classes ----------------------------------------------------------------

    def _sync_classes(self, hierarchy: _Hierarchy, wanted: Classes) -> None:
        for slot in set(hierarchy.classes) - set(wanted):
            self._call("del-class", "htb", hierarchy.ifindex, class_id(slot), parent=ROOT_HANDLE)
            del hierarchy.classes[slot]
        for slot, spec in wanted.items():
            if hierarchy.classes.get(slot) == spec:
                continue
            command = "change-class" if slot in hierarchy.classes else "add-class"
            rate = f"{spec.rate_bps * 8}bit"
            self._call(
                command, "htb", hierarchy.ifindex, class_id(slot), parent=ROOT_HANDLE,
                rate=rate, ceil=rate, burst=spec.burst_bytes, cburst=spec.burst_bytes, prio=LIMITED_PRIORITY,
                quantum=max(1514, min(spec.rate_bps // 10, 200_000)),
            )
            queue_bytes = max(MIN_LEAF_QUEUE_BYTES, int(spec.rate_bps * LEAF_QUEUE_SECONDS))
            leaf = (slot & 0xFFFF) << 16  # leaf handle <slot>: under class <major>:<slot>
            self._call("replace", "bfifo", hierarchy.ifindex, leaf, parent=class_id(slot), limit=queue_bytes)
            hierarchy.classes[slot] = spec

    # --- ingress ----------------------------------------------------------------

    def _create_ingress(self, uplink_index: int, name: str) -> _IngressHook:
        ifb_index = interfaces.create_ifb(self._ipr, uplink_index)
        ifb = _Hierarchy(ifb_index)
        self._create_htb(ifb_index)
        hook_kind = interfaces.ingress_hook(self._ipr, uplink_index)
        created = hook_kind is None
        if created:
            self._call("add", "ingress", uplink_index, INGRESS_PARENT)
        parent = CLSACT_INGRESS_PARENT if hook_kind == "clsact" else INGRESS_PARENT
        prog_fd, prog_name = self._tc_program()
        try:
            self._call(
                "add-filter", "bpf", uplink_index, ":1", parent=parent, prio=FILTER_PRIORITY,
                fd=prog_fd, name=prog_name,
                action={"kind": "mirred", "direction": "egress", "action": "redirect", "ifindex": ifb_index},
            )
        except KernelError:
            self._remove_ingress(_IngressHook(uplink_index, ifb, parent, created))
            raise
        log.info("download shaping on %s through IFB %d", name, ifb_index)
        return _IngressHook(uplink_index, ifb, parent, created)

    def _remove_ingress(self, hook: _IngressHook) -> None:
        interfaces.delete_our_filters(self._ipr, hook.uplink_index, hook.parent, FILTER_PRIORITY)
        if hook.created_qdisc:
            try:
                self._ipr.tc("del", "ingress", hook.uplink_index, INGRESS_PARENT)
            except NetlinkError as error:
                log.debug("ingress qdisc on %d already gone: %s", hook.uplink_index, error)
        interfaces.delete_link(self._ipr, hook.ifb.ifindex)

    def _forget_vanished(self, present: set[int]) -> None:
        for index in set(self._egress) - present:
            del self._egress[index]  # the kernel removed its qdiscs with it
        for index in set(self._ingress) - present:
            interfaces.delete_link(self._ipr, self._ingress.pop(index).ifb.ifindex)

    def _call(self, *args: object, **kwargs: object) -> None:
        try:
            self._ipr.tc(*args, **kwargs)
        except NetlinkError as error:
            raise KernelError(f"tc {args[0]} {args[1]} on interface {args[2]} failed: {error}") from error


def remove_leftovers(ipr: IPRoute) -> int:
    """Remove what a killed helper left: our HTB roots, filters and IFBs."""
    removed = 0
    for link in interfaces.all_links(ipr):
        if link.name.startswith(interfaces.IFB_PREFIX):
            interfaces.delete_link(ipr, link.index)
            removed += 1
            continue
        root = interfaces.root_qdisc(ipr, link.index)
        if root is not None and root.handle == ROOT_HANDLE:
            ipr.tc("del", root.kind, link.index, ROOT_HANDLE)
            removed += 1
        hook_kind = interfaces.ingress_hook(ipr, link.index)
        if hook_kind is None:
            continue
        parent = CLSACT_INGRESS_PARENT if hook_kind == "clsact" else INGRESS_PARENT
        if interfaces.delete_our_filters(ipr, link.index, parent, FILTER_PRIORITY):
            removed += 1
            # An ingress qdisc left empty by removing our filter was ours: we add
            # one only where none exists. A clsact is never ours.
            if hook_kind == "ingress" and not list(ipr.get_filters(index=link.index, parent=parent)):
                ipr.tc("del", "ingress", link.index, INGRESS_PARENT)
    if removed:
        log.warning("removed %d tc objects left behind by an earlier helper", removed)
    return removed
