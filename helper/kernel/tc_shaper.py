"""Shaping with HTB: uploads on each uplink's root, downloads on an IFB.

Upload: an HTB root (handle HTB_MAJOR:) on every uplink; the cgroup egress
program puts packets of limited applications straight into their class by
writing skb->priority, and tells TCP to back off (congestion notices) before
the class queue overflows. Download: the uplink's ingress hook runs the
cls_bpf program chadt_tc_in (chadt_tc_in_l3 where packets carry no Ethernet
header: VPNs, PPP), which matches packets for limited sockets only;
its mirred action redirects them to an IFB (one per uplink) whose HTB shapes
them.

The shaper is declarative: reconcile() takes the classes wanted per direction
and makes every uplink match, creating the qdiscs with the first limit and
removing them after the last. It never replaces a root qdisc somebody else
configured: it refuses with a clear message instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from chadthrottle.contract import Direction
from chadthrottle.helper.errors import BackendUnavailable, KernelError
from chadthrottle.helper.kernel import interfaces
from chadthrottle.helper.kernel.htb import RETIRE_AFTER_S, ROOT_HANDLE, Classes, HtbHierarchy, cn_queue_ns, tc_call
from chadthrottle.helper.kernel.htb_change import ClassChanger
from chadthrottle.helper.kernel.layout import HTB_MAJOR

log = logging.getLogger("chadthrottle.kernel.tc")

INGRESS_PARENT = 0xFFFF0000  # the ingress qdisc ffff:
CLSACT_INGRESS_PARENT = 0xFFFFFFF2
FILTER_PRIORITY = 0xC7AD
LINKS_MAX_AGE_S = 0.5


class UploadPacer(Protocol):
    def set_upload_pacing(self, app_slot: int, rate_bps: int, cn_queue_ns: int) -> None: ...


@dataclass
class _IngressHook:
    uplink_index: int
    ifb: HtbHierarchy
    parent: int
    created_qdisc: bool


class TcShaper:
    queues = True  # HTB leaf queues
    def __init__(
        self,
        ipr: IPRoute,
        tc_program: Callable[[bool], tuple[int, str]],
        pacer: UploadPacer,
        retire_after_s: float = RETIRE_AFTER_S,
    ) -> None:
        self._ipr = ipr
        self._tc_program = tc_program
        self._pacer = pacer
        self._retire_after_s = retire_after_s
        self._paced: Classes = {}  # upload slots with congestion notices on
        self._egress: dict[int, HtbHierarchy] = {}  # uplink ifindex -> our root
        self._ingress: dict[int, _IngressHook] = {}  # uplink ifindex -> hook + IFB
        self._links: tuple[float, list[interfaces.Link]] = (float("-inf"), [])
        self._changer = ClassChanger.beside(ipr.fileno())
        if self._changer is None:
            log.warning("rate changes go through pyroute2 (slower): no netlink socket beside it")

    def active_directions(self) -> set[Direction]:
        active = set()
        if any(h.classes for h in self._egress.values()):
            active.add(Direction.UP)
        if any(h.ifb.classes for h in self._ingress.values()):
            active.add(Direction.DOWN)
        return active

    def sent_up_bytes(self) -> dict[int, int]:
        """L3 bytes each limited application's uploads have sent through the
        shaper, over all uplinks: what left, not what was handed to the queue."""
        sent: dict[int, int] = {}
        for hierarchy in self._egress.values():
            for slot, sent_bytes in hierarchy.sent_l3_bytes().items():
                sent[slot] = sent.get(slot, 0) + sent_bytes
        return sent

    def reconcile(self, wanted: dict[Direction, Classes]) -> None:
        """Make every uplink carry the wanted classes; a class no longer wanted
        drains first and goes a second later, its qdiscs with the last one."""
        self._reconcile(wanted, self._retire_after_s)

    def close(self) -> None:
        """Remove everything this shaper created, now; interfaces end as found."""
        self._links = (float("-inf"), [])  # list them afresh
        try:
            self._reconcile({}, 0.0)
        finally:
            if self._changer is not None:
                self._changer.close()

    def _uplinks(self) -> list[interfaces.Link]:
        """The uplinks, listed at most every LINKS_MAX_AGE_S: listing every link
        over netlink is half the cost of a limit change, and the engine's tick
        reconciles often enough to follow interfaces that come and go."""
        listed_at, links = self._links
        if time.monotonic() - listed_at > LINKS_MAX_AGE_S:
            links = interfaces.uplinks(self._ipr)
            self._links = (time.monotonic(), links)
        return links

    def _reconcile(self, wanted: dict[Direction, Classes], retire_after_s: float) -> None:
        uplinks = {link.index: link for link in self._uplinks()}
        self._forget_vanished(set(uplinks))
        up, down = wanted.get(Direction.UP, {}), wanted.get(Direction.DOWN, {})
        self._sync_pacing(up)  # before the classes: notices stop with the limit
        for index, link in uplinks.items():
            if up and index not in self._egress:
                self._egress[index] = self._create_root(link)
            if down and index not in self._ingress:
                self._ingress[index] = self._create_ingress(link)
            if index in self._egress:
                hierarchy = self._egress[index]
                hierarchy.sync(up, retire_after_s)
                if hierarchy.idle:
                    self._egress.pop(index).delete()
            if index in self._ingress:
                hook = self._ingress[index]
                hook.ifb.sync(down, retire_after_s)
                if hook.ifb.idle:
                    self._remove_ingress(self._ingress.pop(index))

    def _sync_pacing(self, up: Classes) -> None:
        for slot in set(self._paced) - set(up):
            self._pacer.set_upload_pacing(slot, 0, 0)
            del self._paced[slot]
        for slot, spec in up.items():
            if self._paced.get(slot) != spec:
                self._pacer.set_upload_pacing(slot, spec.rate_bps, cn_queue_ns(spec.rate_bps))
                self._paced[slot] = spec

    def _create_root(self, link: interfaces.Link) -> HtbHierarchy:
        ifindex, name = link.index, link.name
        root = interfaces.root_qdisc(self._ipr, ifindex)
        if root is not None and root.handle == ROOT_HANDLE and root.kind == "htb":
            log.info("replacing an HTB root an earlier helper left on %s", name)
            HtbHierarchy(self._ipr, ifindex, Direction.UP).delete()
        elif root is not None and not root.is_default:
            raise BackendUnavailable(
                f"{name} already has a root qdisc ({root.kind} {root.handle >> 16:x}:) that "
                "ChadThrottle did not create; it is left untouched, so uploads on it cannot be "
                "limited by the tc backend"
            )
        hierarchy = HtbHierarchy(self._ipr, ifindex, Direction.UP, l3_to_l2=link.l3_to_l2, changer=self._changer)
        hierarchy.create()
        log.info("created HTB root %x: on %s", HTB_MAJOR, name)
        return hierarchy

    def _create_ingress(self, link: interfaces.Link) -> _IngressHook:
        uplink_index, name = link.index, link.name
        # mirred hands the IFB the frame with the uplink's link-layer header
        ifb = HtbHierarchy(
            self._ipr, interfaces.create_ifb(self._ipr, uplink_index), Direction.DOWN, l3_to_l2=link.l3_to_l2,
            changer=self._changer,
        )
        hook_kind = interfaces.ingress_hook(self._ipr, uplink_index)
        parent = CLSACT_INGRESS_PARENT if hook_kind == "clsact" else INGRESS_PARENT
        hook = _IngressHook(uplink_index, ifb, parent, created_qdisc=hook_kind is None)
        try:
            ifb.create()
            if hook.created_qdisc:
                tc_call(self._ipr, "add", "ingress", uplink_index, INGRESS_PARENT)
            prog_fd, prog_name = self._tc_program(link.ethernet)
            tc_call(
                self._ipr, "add-filter", "bpf", uplink_index, ":1", parent=parent, prio=FILTER_PRIORITY,
                fd=prog_fd, name=prog_name,
                action={"kind": "mirred", "direction": "egress", "action": "redirect", "ifindex": ifb.ifindex},
            )
        except KernelError:
            self._remove_ingress(hook)
            raise
        log.info("download shaping on %s through IFB %d", name, ifb.ifindex)
        return hook

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
