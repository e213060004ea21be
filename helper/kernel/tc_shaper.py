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

What is ours comes from the shaper's journal (tc_ownership.py), never from a
handle or a name. A new shaper adopts what a killed one left in its network
namespace and keeps it where it matches what is wanted, so limits hold across
a restart: the old filter keeps running the old program (whose socket tags
are still valid) until the reconcile after the first one, when the new
helper has tagged the sockets; then the program is swapped in place. An
uplink that goes down keeps its objects (the kernel keeps them too); only an
uplink that vanishes loses them.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from chadthrottle.contract import Direction
from chadthrottle.helper.errors import BackendUnavailable, KernelError
from chadthrottle.helper.kernel import interfaces, tc_ownership
from chadthrottle.helper.kernel import foreign_filters
from chadthrottle.helper.kernel.htb import RETIRE_AFTER_S, ROOT_HANDLE, Classes, HtbHierarchy, cn_queue_ns, tc_call
from chadthrottle.helper.kernel.htb_change import ClassChanger
from chadthrottle.helper.kernel.layout import HTB_MAJOR
from chadthrottle.helper.kernel.ownership import recorded_entries
from chadthrottle.helper.kernel.tc_ownership import (
    FILTER_HANDLE, FILTER_PRIORITY, IFB_ALIAS, IngressEntry, TcJournal, is_our_root, new_ifb_name, our_filter,
    our_ifb, same_device,
)

log = logging.getLogger("chadthrottle.kernel.tc")

INGRESS_PARENT = 0xFFFF0000  # the ingress qdisc ffff:
CLSACT_INGRESS_PARENT = 0xFFFFFFF2
LINKS_MAX_AGE_S = 0.5


class UploadPacer(Protocol):
    def set_upload_pacing(self, app_slot: int, rate_bps: int, cn_queue_ns: int) -> None: ...


@dataclass
class _IngressHook:
    """One uplink's redirect of limited downloads to the namespace's IFB. Every
    uplink of a namespace shares one IFB, so one HTB class holds an
    application's downloads over all of them together (with an IFB each, two
    uplinks passed the whole limit each)."""

    uplink_index: int
    ifb: HtbHierarchy
    parent: int
    created_qdisc: bool
    old_program: bool = False  # adopted: its filter still runs a killed helper's program
    ifb_name: str = ""


def _device_vanished(error: KernelError | NetlinkError) -> bool:
    """The kernel's "No such device": the device went while we worked on it."""
    code = error.code if isinstance(error, NetlinkError) else error.errno
    return code == errno.ENODEV


class TcShaper:
    queues = True  # HTB leaf queues
    GAPS_MAX_AGE_S = 1.0
    _gaps: tuple[float, object, dict[Direction, list[str]]] = (float("-inf"), None, {})  # read at, hooks, gaps
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
        self._lost_hooks: set[int] = set()  # uplinks whose download filter someone removed
        self._changer = ClassChanger.beside(ipr.fileno())
        if self._changer is None:
            log.warning("rate changes go through pyroute2 (slower): no netlink socket beside it")
        self._journal = TcJournal(ipr)
        self._reconciled = 0
        self._takeover_pending = self._adopt()

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

    def enforcement_gaps(self) -> dict[Direction, list[str]]:
        """Per direction, why limits do not hold on some uplink: a filter or tcx
        program ChadThrottle did not create can take packets before its own, or
        its filter is gone (foreign_filters.py; they are never touched). Read
        at most every GAPS_MAX_AGE_S (the engine asks every second), and at
        once when the hooks changed."""
        hooks = ({index: (hook.parent, hook.ifb.ifindex) for index, hook in self._ingress.items()},
                 sorted(self._egress))
        read_at, read_hooks, gaps = self._gaps
        if hooks != read_hooks or time.monotonic() - read_at >= self.GAPS_MAX_AGE_S:
            names = {link.index: link.name for link in self._uplinks()}
            gaps = foreign_filters.enforcement_gaps(self._ipr, names, hooks[0], hooks[1], FILTER_PRIORITY)
            for reason in {r for rs in gaps.values() for r in rs} - {r for rs in self._gaps[2].values() for r in rs}:
                log.warning("%s", reason)
            self._gaps = (time.monotonic(), hooks, gaps)
            lost = {index for index in hooks[0] if names.get(index) and any(
                reason.startswith(f"{names[index]}: {foreign_filters.OUR_FILTER_GONE}") for reason in gaps.get(Direction.DOWN, []))}
            self._lost_hooks |= lost  # put back at the next reconcile
        return {direction: list(reasons) for direction, reasons in gaps.items()}

    def reconcile(self, wanted: dict[Direction, Classes]) -> None:
        """Make every uplink carry the wanted classes; a class no longer wanted
        drains first and goes a second later, its qdiscs with the last one."""
        self._reconcile(wanted, self._retire_after_s)

    def close(self) -> None:
        """Remove everything this shaper created (or adopted), now; interfaces
        end as found. What could not be removed stays in the journal, for the
        next start."""
        self._links = (float("-inf"), [])  # list them afresh
        removed = False
        try:
            self._reconcile({}, 0.0)
            removed = not self._egress and not self._ingress
        finally:
            if self._changer is not None:
                self._changer.close()
            if removed:
                self._journal.close()
            else:
                self._journal.release()

    def _all_links(self) -> list[interfaces.Link]:
        """Every link, listed at most every LINKS_MAX_AGE_S: listing every link
        over netlink is half the cost of a limit change, and the engine's tick
        reconciles often enough to follow interfaces that come and go."""
        listed_at, links = self._links
        if time.monotonic() - listed_at > LINKS_MAX_AGE_S:
            links = interfaces.all_links(self._ipr)
            self._links = (time.monotonic(), links)
        return links

    def _uplinks(self) -> list[interfaces.Link]:
        """Devices traffic leaves by now: up, not loopback, not an IFB."""
        return [link for link in self._all_links() if link.up and not link.loopback and link.kind != "ifb"]

    def _reconcile(self, wanted: dict[Direction, Classes], retire_after_s: float) -> None:
        present = {link.index: link for link in self._all_links()}
        self._forget_vanished(set(present))
        # A hook whose filter someone removed (with their ingress qdisc, say):
        # forget it, IFB and all, so it is made again below.
        self._forget_vanished(set(present) - (self._lost_hooks & set(self._ingress)))
        self._lost_hooks.clear()
        if self._takeover_pending and self._reconciled and retire_after_s > 0:
            self._finish_takeover()
        self._reconciled += 1
        uplinks = {link.index: link for link in self._uplinks()}
        up, down = wanted.get(Direction.UP, {}), wanted.get(Direction.DOWN, {})
        self._sync_pacing(up)  # before the classes: notices stop with the limit
        # A device that went down keeps its qdiscs and filters (so do we): when
        # it comes back, traffic finds them as they were.
        for index in sorted(set(uplinks) | set(self._egress) | set(self._ingress)):
            try:
                self._reconcile_device(present[index], index in uplinks, up, down, retire_after_s)
            except (KernelError, NetlinkError) as error:
                if not _device_vanished(error):
                    raise
                # Gone since the links were listed (they are cached briefly): as
                # if it had not been listed; the next listing will not have it.
                self._links = (float("-inf"), [])
                self._forget_vanished(set(present) - {index})

    def _reconcile_device(self, link: interfaces.Link, uplink: bool, up: Classes, down: Classes,
                          retire_after_s: float) -> None:  # fmt: skip
        """One device's share of _reconcile."""
        index = link.index
        if up and index not in self._egress and uplink:
            self._egress[index] = self._create_root(link)
        if down and index not in self._ingress and uplink:
            self._ingress[index] = self._create_ingress(link)
        if index in self._egress:
            hierarchy = self._egress[index]
            hierarchy.sync(up, retire_after_s)
            if hierarchy.idle:
                self._egress.pop(index).delete()
                self._journal.forget_root(index)
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
        if root is not None and not root.is_default:
            raise BackendUnavailable(
                f"{name} already has a root qdisc ({root.kind} {root.handle >> 16:x}:) that "
                "ChadThrottle did not create; it is left untouched, so uploads on it cannot be "
                "limited by the tc backend"
            )
        hierarchy = HtbHierarchy(self._ipr, ifindex, Direction.UP, l3_to_l2=link.l3_to_l2, changer=self._changer)
        self._journal.root(ifindex, name)  # before the object: a crash leaves an entry, not an orphan
        try:
            hierarchy.create()
        except KernelError:
            hierarchy.delete()
            self._journal.forget_root(ifindex)
            raise
        log.info("created HTB root %x: on %s", HTB_MAJOR, name)
        return hierarchy

    def _create_ingress(self, link: interfaces.Link) -> _IngressHook:
        uplink_index, name = link.index, link.name
        shared = next(iter(self._ingress.values()), None)  # the namespace's IFB, if it has one yet
        ifb_name = shared.ifb_name if shared is not None else new_ifb_name()
        self._journal.ifb(uplink_index, name, ifb_name)
        if shared is not None:
            ifb = shared.ifb
        else:
            # mirred hands the IFB the frame with the uplink's link-layer header:
            # its rates are scaled for the first uplink's (an Ethernet and a
            # tun uplink together: the tun's share is 1% short)
            try:
                ifb_index = interfaces.create_ifb(self._ipr, ifb_name, IFB_ALIAS)
            except KernelError:
                self._journal.forget_ingress(uplink_index)
                raise
            ifb = HtbHierarchy(self._ipr, ifb_index, Direction.DOWN, l3_to_l2=link.l3_to_l2, changer=self._changer)
        hook_kind = interfaces.ingress_hook(self._ipr, uplink_index)
        parent = CLSACT_INGRESS_PARENT if hook_kind == "clsact" else INGRESS_PARENT
        hook = _IngressHook(uplink_index, ifb, parent, created_qdisc=hook_kind is None, ifb_name=ifb_name)
        self._journal.hook(uplink_index, name, parent, hook.created_qdisc)
        try:
            if shared is None:
                ifb.create()
            if hook.created_qdisc:
                tc_call(self._ipr, "add", "ingress", uplink_index, INGRESS_PARENT)
            self._set_filter(hook, link.ethernet, "add-filter")
        except KernelError:
            self._remove_ingress(hook)
            raise
        log.info("download shaping on %s through IFB %s (%d)", name, ifb_name, ifb.ifindex)
        return hook

    def _set_filter(self, hook: _IngressHook, ethernet: bool, command: str) -> None:
        """Add our filter, or ("replace-filter") swap its program in place."""
        prog_fd, prog_name = self._tc_program(ethernet)
        tc_call(
            self._ipr, command, "bpf", hook.uplink_index, FILTER_HANDLE, parent=hook.parent, prio=FILTER_PRIORITY,
            fd=prog_fd, name=prog_name,
            action={"kind": "mirred", "direction": "egress", "action": "redirect", "ifindex": hook.ifb.ifindex},
        )

    def _remove_ingress(self, hook: _IngressHook) -> None:
        found = our_filter(self._ipr, hook.uplink_index, hook.parent, hook.ifb.ifindex)
        if found is not None:
            interfaces.delete_filter(self._ipr, hook.uplink_index, hook.parent, FILTER_PRIORITY, found)
        if hook.created_qdisc and not interfaces.has_filters(self._ipr, hook.uplink_index, hook.parent):
            try:
                self._ipr.tc("del", "ingress", hook.uplink_index, INGRESS_PARENT)
            except NetlinkError as error:
                log.debug("ingress qdisc on %d already gone: %s", hook.uplink_index, error)
        self._delete_ifb_unless_shared(hook)
        self._journal.forget_ingress(hook.uplink_index)

    def _delete_ifb_unless_shared(self, hook: _IngressHook) -> None:
        """The IFB goes with the last hook that uses it."""
        if not any(other.ifb.ifindex == hook.ifb.ifindex for other in self._ingress.values() if other is not hook):
            interfaces.delete_link(self._ipr, hook.ifb.ifindex)

    def _forget_vanished(self, present: set[int]) -> None:
        """An uplink that is gone took its qdiscs and filters with it; its IFB stays
        unless removed."""
        for index in set(self._egress) - present:
            del self._egress[index]
            self._journal.forget_root(index)
        for index in set(self._ingress) - present:
            self._delete_ifb_unless_shared(self._ingress.pop(index))
            self._journal.forget_ingress(index)

    # --- taking over from a killed helper -------------------------------------------

    def _adopt(self) -> bool:
        """Adopt what a killed shaper recorded in this namespace and is still
        there as recorded; remove the rest of its remains. True if anything
        was adopted (the takeover finishes at the second reconcile)."""
        roots, ingress = self._journal.take_over_dead()
        for root in roots:
            link = same_device(self._ipr, root.ifindex, root.ifname)
            if link is not None and is_our_root(self._ipr, root):
                self._egress[root.ifindex] = HtbHierarchy.adopt(
                    self._ipr, root.ifindex, Direction.UP, l3_to_l2=link.l3_to_l2, changer=self._changer)
                log.info("adopted the HTB root an earlier helper left on %s", root.ifname)
            else:
                self._journal.forget_root(root.ifindex)
        leftover = [entry for entry in ingress if not self._adopt_ingress(entry)]
        for entry in leftover:  # after every adoption: an IFB adopted through another uplink stays
            remove_ingress_remains(self._ipr, entry,
                                   keep_ifb=any(hook.ifb_name == entry.ifb_name for hook in self._ingress.values()))
            self._journal.forget_ingress(entry.uplink)
        adopted = bool(self._egress or self._ingress)
        if roots or ingress:
            log.warning("took over %d tc objects an earlier helper left behind; adopted %d",
                        len(roots) + len(ingress), len(self._egress) + len(self._ingress))  # fmt: skip
        return adopted

    def _adopt_ingress(self, entry: IngressEntry) -> bool:
        """Adopt one uplink's recorded hook if it is there as recorded."""
        uplink = same_device(self._ipr, entry.uplink, entry.uplink_name)
        ifb = our_ifb(self._ipr, entry.ifb_name)
        found = (our_filter(self._ipr, entry.uplink, entry.hook_parent, ifb.index if ifb else None)
                 if uplink is not None and entry.hook_parent is not None else None)  # fmt: skip
        if uplink is not None and ifb is not None and found is not None and entry.hook_parent is not None:
            ifb_root = interfaces.root_qdisc(self._ipr, ifb.index)
            if ifb_root is not None and ifb_root.handle == ROOT_HANDLE and ifb_root.kind == "htb":
                shared = next((h.ifb for h in self._ingress.values() if h.ifb.ifindex == ifb.index), None)
                hierarchy = shared or HtbHierarchy.adopt(self._ipr, ifb.index, Direction.DOWN,
                                                         l3_to_l2=uplink.l3_to_l2, changer=self._changer)  # fmt: skip
                self._ingress[entry.uplink] = _IngressHook(entry.uplink, hierarchy, entry.hook_parent,
                                                           entry.created_qdisc, old_program=True,
                                                           ifb_name=entry.ifb_name)  # fmt: skip
                log.info("adopted download shaping an earlier helper left on %s (IFB %s)", uplink.name, ifb.name)
                return True
        return False

    def _finish_takeover(self) -> None:
        """The new programs tag the sockets now: adopted filters get the new
        program (in place, no packet unclassified) and adopted classes that
        nobody wants retire."""
        for hook in self._ingress.values():
            if hook.old_program:
                link = interfaces.link_by_index(self._ipr, hook.uplink_index)
                try:
                    self._set_filter(hook, link.ethernet if link else True, "replace-filter")
                    hook.old_program = False
                except KernelError as error:
                    log.error("could not give the adopted download filter on %d the new program: %s",
                              hook.uplink_index, error)  # fmt: skip
            hook.ifb.release_held()
        for hierarchy in self._egress.values():
            hierarchy.release_held()
        self._takeover_pending = any(hook.old_program for hook in self._ingress.values())


def remove_ingress_remains(ipr: IPRoute, entry: IngressEntry, keep_ifb: bool = False) -> None:
    """Remove what of a recorded IFB and hook is still there and ours (the IFB
    not when keep_ifb: another uplink's hook uses it)."""
    uplink = same_device(ipr, entry.uplink, entry.uplink_name)
    if uplink is not None and entry.hook_parent is not None:
        found = our_filter(ipr, entry.uplink, entry.hook_parent, None)
        if found is not None:
            interfaces.delete_filter(ipr, entry.uplink, entry.hook_parent, FILTER_PRIORITY, found)
        if entry.created_qdisc and not interfaces.has_filters(ipr, entry.uplink, entry.hook_parent):
            try:
                ipr.tc("del", "ingress", entry.uplink, INGRESS_PARENT)
            except NetlinkError as error:
                log.debug("ingress qdisc on %d already gone: %s", entry.uplink, error)
    ifb = None if keep_ifb else our_ifb(ipr, entry.ifb_name)
    if ifb is not None:
        interfaces.delete_link(ipr, ifb.index)


def remove_leftovers(ipr: IPRoute) -> int:
    """At start, before a TcShaper exists: remove nothing, report what looks
    like ours (a root with our handle, a device named like our IFBs) but no
    journal records; it is somebody else's and is left alone. What a killed
    helper recorded is adopted by the TcShaper, or removed by remove_unadopted().
    Returns how many look-alikes were reported."""
    recorded = recorded_entries(tc_ownership.JOURNAL_KIND)
    netns = tc_ownership.netns_cookie(ipr)
    roots = {int(e["ifindex"]) for e in recorded if e.get("netns") == netns and e["key"].startswith("root:")}
    ifbs = {str(e["ifb_name"]) for e in recorded if e.get("netns") == netns and e["key"].startswith("ifb:")}
    reported = 0
    for link in interfaces.all_links(ipr):
        if link.name in ifbs:
            continue
        if link.name.startswith(interfaces.IFB_PREFIX):
            log.warning("left alone: %s is named like ChadThrottle's IFB devices, but ChadThrottle did not create it",
                        link.name)  # fmt: skip
            reported += 1
        root = interfaces.root_qdisc(ipr, link.index)
        if root is not None and root.handle == ROOT_HANDLE and link.index not in roots:
            log.warning("left alone: the root qdisc %s %x: on %s has ChadThrottle's handle, but ChadThrottle did not "
                        "create it; uploads on %s cannot be limited by the tc backend while it is there",
                        root.kind, HTB_MAJOR, link.name, link.name)  # fmt: skip
            reported += 1
    return reported


def remove_unadopted(ipr: IPRoute) -> int:
    """Remove what killed helpers recorded in this namespace and no live
    shaper adopted (a helper that runs without the tc backend); returns how
    many objects were removed."""
    journal = TcJournal(ipr)
    removed = 0
    try:
        roots, ingress = journal.take_over_dead()
        for root in roots:
            if is_our_root(ipr, root):
                HtbHierarchy(ipr, root.ifindex, Direction.UP).delete()
                removed += 1
            journal.forget_root(root.ifindex)
        for entry in ingress:
            remove_ingress_remains(ipr, entry)
            journal.forget_ingress(entry.uplink)
            removed += 1
    except BaseException:
        journal.release()
        raise
    journal.close()
    if removed:
        log.warning("removed %d tc objects left behind by an earlier helper", removed)
    return removed
