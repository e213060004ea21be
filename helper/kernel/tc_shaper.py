"""Shaping with HTB on two IFB devices per network namespace, one per direction.

Every uplink redirects its limited traffic to the namespace's IFB of that
direction (tc_hooks.py): downloads from its ingress hook (cls_bpf program
chadt_tc_in, or chadt_tc_in_l3 where packets carry no Ethernet header: VPNs,
PPP), which finds the socket a packet is for; uploads from its clsact egress
hook (chadt_tc_out), which matches the packets the cgroup egress program put
into a limited class (skb->priority). The IFB's HTB has a class per limited
application, so one class holds the application's traffic over all uplinks
together; the upload IFB then sends each packet on from its uplink. The
cgroup egress program also tells TCP to back off (congestion notices) before
the upload class queue overflows.

The shaper is declarative: reconcile() takes the classes wanted per direction
and makes every uplink match, creating the IFB, qdisc and filters with the
first limit and removing them after the last. It never touches a qdisc or
filter somebody else configured: an uplink whose hooks it cannot use is
reported (enforcement_gaps) and the policer holds the limit there.

What is ours comes from the shaper's journal (tc_ownership.py), never from a
handle or a name. A new shaper adopts what a killed one left in its network
namespace and keeps it where it matches what is wanted, so limits hold across
a restart: the old filters keep running the old programs (whose socket tags
are still valid) until the reconcile after the first one, when the new
helper has tagged the sockets; then the programs are swapped in place. An
uplink that goes down keeps its objects (the kernel keeps them too); only an
uplink that vanishes loses them.

Until 2026-12-03 uploads had an HTB root on each uplink instead: two uplinks
passed the whole limit each and only the policer held the sum, which did
not settle within 4 s after a change. Such roots left by a killed helper are
removed, not adopted.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Protocol

from chadthrottle.contract import Direction
from chadthrottle.helper.errors import KernelError
from chadthrottle.helper.kernel import (
    catch_all,
    foreign_filters,
    interfaces,
    tbf_leaf,
    tc_hooks,
    tc_ownership,
)
from chadthrottle.helper.kernel.htb import (
    RETIRE_AFTER_S,
    ROOT_HANDLE,
    Classes,
    HtbHierarchy,
    cn_queue_ns,
)
from chadthrottle.helper.kernel.htb_change import ClassChanger
from chadthrottle.helper.kernel.internet_route import internet_links
from chadthrottle.helper.kernel.layout import CARRIED_BY_HOOK, CARRIED_BY_IFB, ON_LINK
from chadthrottle.helper.kernel.ownership import recorded_entries
from chadthrottle.helper.kernel.priority_classes import SHAPE_SHARE, LinkShaping
from chadthrottle.helper.kernel.tc_hooks import Hook, NoHookPoint, remove_hook_remains
from chadthrottle.helper.kernel.tc_ownership import (
    FILTER_PRIORITY,
    IFB_ALIASES,
    HookEntry,
    TcJournal,
    is_our_root,
    new_ifb_name,
    our_filter,
    our_ifb,
    same_device,
)
from pyroute2.iproute import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

log = logging.getLogger("chadthrottle.kernel.tc")

LINKS_MAX_AGE_S = 0.5
# Where the internet goes (_link_uplinks) is looked up at most this often while
# a link is set (three route lookups, about 1 ms of pyroute2; the engine
# reconciles every tick), and afresh after a link event: a route or rule that
# changes without one is followed within this.
ROUTES_MAX_AGE_S = 2.0
# A hook whose IFB has no class left stays this long before it goes with its
# filter, its IFB and (with the uplink's last hook) the clsact: adding the
# clsact again drops what the uplink sends for a moment, every application's
# (docs/backends.md, "Adding a clsact drops the uplink's packets for a
# moment"), and a limit toggled every 1-2 s grafted it at each toggle. close()
# (stop) removes it at once; another namespace's shaper lingers the same way
# after its last limit (namespace_shapers.py) and closes once it holds nothing.
HOOK_LINGER_S = 2.0
_WORDS = {Direction.DOWN: "download", Direction.UP: "upload"}
TcProgram = Callable[
    [Direction, bool], tuple[int, str]
]  # (direction, ethernet) -> program fd, name


class UploadPacer(Protocol):
    def set_upload_pacing(self, app_slot: int, rate_bps: int, cn_queue_ns: int) -> None: ...
    def set_forwarded_classes(
        self, app_slot: int, directions: frozenset[Direction], netns_cookie: int
    ) -> None: ...
    def set_carrying_device(self, netns_cookie: int, ifindex: int, carried_by: int) -> None: ...


def _device_vanished(error: KernelError | NetlinkError) -> bool:
    """The kernel's "No such device": the device went while we worked on it."""
    code = error.code if isinstance(error, NetlinkError) else error.errno
    return code == errno.ENODEV


class TcShaper:
    queues = True  # HTB leaf queues
    GAPS_MAX_AGE_S = 1.0
    _gaps: tuple[float, object, dict[Direction, list[str]]] = (
        float("-inf"),
        None,
        {},
    )  # read at, hooks, gaps

    def __init__(
        self,
        ipr: IPRoute,
        tc_program: TcProgram,
        pacer: UploadPacer,
        retire_after_s: float = RETIRE_AFTER_S,
        instance: str = "",
        hook_linger_s: float = HOOK_LINGER_S,
    ) -> None:
        """hook_linger_s: how long a hook stays once its IFB has no class left
        (see HOOK_LINGER_S; close() removes it at once)."""
        self._ipr = ipr
        self._tc_program = tc_program
        self._pacer = pacer
        self._retire_after_s = retire_after_s
        self._hook_linger_s = hook_linger_s
        self._idle_since: dict[tuple[Direction, int], float] = {}  # hooks whose IFB has no class
        self._paced: dict[int, int] = {}  # upload slot -> the rate its notices are paced at
        # slot -> the directions whose link tree classes its forwarded flows (_sync_forwarded)
        self._forwarded: dict[int, frozenset[Direction]] = {}
        # the devices whose ingress runs our hook, as the pacer has them (_sync_carrying)
        self._carrying: dict[int, int] = {}  # ifindex -> CARRIED_BY_*
        # Ingress hooks (ifindex) the last read of the hooks found no reason to
        # doubt (foreign_filters.carrying_doubts), and why the others are doubted
        self._carriers: set[int] = set()
        self._doubted: dict[int, list[str]] = {}
        self._netns_cookie = tc_ownership.netns_cookie(ipr)
        self._hooks: dict[Direction, dict[int, Hook]] = {
            direction: {} for direction in Direction
        }  # by uplink
        self._unhooked: dict[
            tuple[Direction, int], str
        ] = {}  # (direction, uplink) -> why it cannot be redirected
        self._links: tuple[float, list[interfaces.Link]] = (float("-inf"), [])
        self._on_link: set[int] = set()  # the uplinks the link is on (_link_uplinks)
        self._routes: tuple[float, set[int]] = (float("-inf"), set())  # read at, internet_links
        self._lost_hooks: set[tuple[Direction, int]] = set()  # filters someone removed
        # (direction, IFB index) whose HTB someone replaced: made again next
        self._lost_roots: set[tuple[Direction, int]] = set()
        self._changer = ClassChanger.beside(ipr.fileno())
        if self._changer is None:
            log.warning("rate changes go through pyroute2 (slower): no netlink socket beside it")
        self._journal = TcJournal(
            ipr, instance
        )  # instance: the helper's (ownership.journal_instance)
        self._reconciled = 0
        self._lossy_grafts = 0  # since lossy_grafts() was last asked
        self._link_shaping: dict[Direction, LinkShaping | None] = {
            direction: None for direction in Direction
        }
        # Before anything is adopted: a leaf sized for an MTU raised while no
        # helper ran drops the larger frames until it is re-sized (review L2).
        # Not cached: the first reconcile lists the links afresh.
        self._frame_bytes = _largest_frame(interfaces.all_links(ipr))
        self._takeover_pending = self._adopt()

    def set_link(self, direction: Direction, link: LinkShaping | None) -> None:
        """Shape a direction's traffic under a link capacity, by priority (None:
        as without one), from the next reconcile on: every uplink gets its
        hook while a link is set, classes or not; a switch to or from a link
        makes the IFB's hierarchy again (HTB cannot move a class to another
        parent: queued packets of the old one are dropped), a new capacity
        changes it in place (docs/backends.md, "Priorities and link shaping")."""
        self._link_shaping[direction] = link

    def _link_of(self, direction: Direction) -> LinkShaping | None:
        """The link wanted for a direction: uploads pace the acknowledgements of
        the download's capacity (priority_classes.ACK_PACE_SHARE), so a change of
        the download's capacity changes the upload's tree too."""
        link, down = self._link_shaping[direction], self._link_shaping[Direction.DOWN]
        if direction is Direction.UP and link is not None and down is not None:
            return replace(link, acked_bps=down.capacity_bps)
        return link

    def linked_directions(self) -> set[Direction]:
        """The directions whose IFB shapes under a link capacity now."""
        return {
            direction for direction in Direction if any(ifb.link for ifb in self._ifbs(direction))
        }

    def link_gaps(self) -> dict[Direction, list[str]]:
        """Where traffic can pass this namespace's link tree: its gaps."""
        return self.enforcement_gaps()

    def carrying_gaps(self) -> list[str]:
        """Why a container's traffic that comes in by some hooked device is
        not ordered by its priority: our hook there cannot be trusted to carry
        its slot (skb->tc_index) to the uplink, as of the last read of the
        hooks (at most GAPS_MAX_AGE_S old: enforcement_gaps)."""
        self.enforcement_gaps()
        return [why for index in sorted(self._doubted) if index in self._hooks[Direction.DOWN]
                for why in self._doubted[index]]  # fmt: skip

    def linked_interfaces(self) -> list[str]:
        """The uplinks whose hooks feed a linked IFB now, by name (GetLinkShaping)."""
        names = {link.index: link.name for link in self._all_links()}
        return sorted({names.get(index, str(index)) for hooks in self._hooks.values()
                       for index, hook in hooks.items()
                       if hook.ifb.link and index in self._on_link})  # fmt: skip

    def lossy_grafts(self) -> int:
        """How many clsacts this shaper added on uplinks since last asked whose
        graft dropped packets the uplink sent (tc_hooks.add_hook_qdisc)."""
        grafts, self._lossy_grafts = self._lossy_grafts, 0
        return grafts

    def active_directions(self) -> set[Direction]:
        return {
            direction
            for direction, hooks in self._hooks.items()
            if any(h.ifb.classes for h in hooks.values())
        }

    def _ifbs(self, direction: Direction) -> list[HtbHierarchy]:
        """The IFB hierarchies of a direction (one, shared by every uplink's hook)."""
        return list({id(hook.ifb): hook.ifb for hook in self._hooks[direction].values()}.values())

    def sent_bytes(self, direction: Direction) -> dict[int, int]:
        """L3 bytes each limited application's traffic of a direction has sent
        through the shaper, over all uplinks: what left, not what was handed
        to the queue (its pure ACKs are in no class)."""
        sent: dict[int, int] = {}
        for hierarchy in self._ifbs(direction):
            for slot, sent_bytes in hierarchy.sent_l3_bytes().items():
                sent[slot] = sent.get(slot, 0) + sent_bytes
        return sent

    def enforcement_gaps(self) -> dict[Direction, list[str]]:
        """Per direction, why limits do not hold on some uplink: a filter or tcx
        program ChadThrottle did not create can take packets before its own,
        its filter is gone, or the uplink has no hook it may use
        (foreign_filters.py; they are never touched). Read at most every
        GAPS_MAX_AGE_S (the engine asks every second), and at once when the
        hooks changed; the same read finds a catch-all someone removed."""
        hooks = tuple({index: (hook.parent, hook.ifb.ifindex) for index, hook in self._hooks[direction].items()}
                      for direction in (Direction.DOWN, Direction.UP))  # fmt: skip
        read_at, read_hooks, gaps = self._gaps
        if (
            hooks,
            dict(self._unhooked),
        ) != read_hooks or time.monotonic() - read_at >= self.GAPS_MAX_AGE_S:
            names = {link.index: link.name for link in self._uplinks()}
            was = self._doubted
            gaps, self._doubted = foreign_filters.read_gaps(
                self._ipr, names, hooks[0], hooks[1], FILTER_PRIORITY
            )
            self._carriers = {index for index in hooks[0] if index in names} - set(self._doubted)
            for why in {w for ws in self._doubted.values() for w in ws} - {
                w for ws in was.values() for w in ws
            }:
                log.warning("%s", why)
            for (direction, index), why in sorted(self._unhooked.items(), key=lambda item: (item[0][0].value,
                                                                                             item[0][1])):  # fmt: skip
                if index in names:
                    gaps.setdefault(direction, []).append(f"{names[index]}: {why}; {_WORDS[direction]}s through "
                                                          f"{names[index]} are not shaped")  # fmt: skip
            for reason in {r for rs in gaps.values() for r in rs} - {
                r for rs in self._gaps[2].values() for r in rs
            }:
                log.warning("%s", reason)
            self._check_catch_alls()
            self._check_ifb_roots(gaps)
            self._gaps = (time.monotonic(), (hooks, dict(self._unhooked)), gaps)
            self._write_carrying()  # what the read found, at once
            for direction, by_uplink in zip((Direction.DOWN, Direction.UP), hooks, strict=True):
                gone = f": {foreign_filters.OUR_FILTER_GONE[direction]}"
                self._lost_hooks |= {
                    (direction, index)
                    for index in by_uplink
                    if names.get(index)
                    and any(
                        reason.startswith(names[index] + gone) for reason in gaps.get(direction, [])
                    )
                }  # put back next
        return {direction: list(reasons) for direction, reasons in gaps.items()}

    def _check_ifb_roots(self, gaps: dict[Direction, list[str]]) -> None:
        """An IFB whose root is no longer our HTB (someone's `tc qdisc replace
        dev ctifb... root pfifo`): its classes went with it, so the limits
        there are only policed (a 1 MB/s download read 0.84-1.18 of it) while
        the listing said shaped, and a change of class failed (ENOENT), so
        clearing the limit did too. Said as a gap; the next reconcile
        removes its hooks and the IFB (ours, their qdisc with it) and makes
        them again (_drop_lost_roots). Read from the IFB's link message (a
        qdisc dump of a thousand leaves took 60 ms of Python each second)."""
        for direction in (Direction.DOWN, Direction.UP):
            for hook in {id(h.ifb): h for h in self._hooks[direction].values()}.values():
                kind = interfaces.root_qdisc_kind(self._ipr, hook.ifb.ifindex)
                if kind in ("htb", None):  # None: the IFB is gone (_forget_vanished)
                    continue  # someone's htb in place of ours: found when a class change fails
                why = (f"{hook.ifb_name}: its HTB was replaced by a {kind or 'missing'} root ChadThrottle "
                       f"did not create; {_WORDS[direction]}s are not shaped")  # fmt: skip
                if (direction, hook.ifb.ifindex) not in self._lost_roots:
                    log.warning("%s: making it again", why)
                gaps.setdefault(direction, []).append(why)
                self._lost_roots.add((direction, hook.ifb.ifindex))

    def _drop_lost_roots(self) -> None:
        """Remove the hooks that redirect to an IFB whose HTB someone replaced,
        and the IFB with the last of them: the reconcile makes them again."""
        for direction, ifb_index in self._lost_roots:
            hooks = self._hooks[direction]
            for index in [i for i, hook in hooks.items() if hook.ifb.ifindex == ifb_index]:
                self._remove_hook(hooks.pop(index))
        self._lost_roots.clear()

    def _check_catch_alls(self) -> None:
        """A linked hook's catch-all that someone removed: without it the tree
        misses every packet of the applications without a class (the queue is
        back in the modem). Put back at the next reconcile (_match_link)."""
        for hooks in self._hooks.values():
            for hook in hooks.values():
                if hook.catch_all and not catch_all.present(self._ipr, hook.uplink_index, hook.parent,
                                                            hook.ifb.ifindex):  # fmt: skip
                    log.warning("the catch-all filter on uplink %d is gone (not removed by ChadThrottle): "
                                "putting it back", hook.uplink_index)  # fmt: skip
                    hook.catch_all = False

    def reconcile(self, wanted: dict[Direction, Classes]) -> None:
        """Make every uplink carry the wanted classes; a class no longer wanted
        drains first and goes a second later, its qdiscs with the last one."""
        self._reconcile(wanted, self._retire_after_s)

    def close(self) -> None:
        """Remove everything this shaper created (or adopted), now; interfaces
        end as found. What could not be removed stays in the journal, for the
        next start."""
        self._links = (float("-inf"), [])  # list them afresh
        self._link_shaping = {direction: None for direction in Direction}
        removed = False
        try:
            self._reconcile({}, 0.0)
            removed = not any(self._hooks.values())
        finally:
            if self._changer is not None:
                self._changer.close()
            if removed:
                self._journal.close()
            else:
                self._journal.release()

    def _all_links(self) -> list[interfaces.Link]:
        """Every link, listed at most every LINKS_MAX_AGE_S: listing every link
        over netlink is half the cost of a limit change. A link event lists
        them afresh at once (links_moved); without one the engine's tick
        follows interfaces that come and go."""
        listed_at, links = self._links
        if time.monotonic() - listed_at > LINKS_MAX_AGE_S:
            links = interfaces.all_links(self._ipr)
            self._links = (time.monotonic(), links)
        return links

    def _link_uplinks(self, uplinks: Iterable[int]) -> set[int]:
        """The uplinks the link capacity is on: those an application's packet
        to the internet leaves by, as the kernel routes it (internet_route.py:
        a VPN's device under wg-quick's rules or OpenVPN's half routes, a
        bridge's port to the gateway; looked up every ROUTES_MAX_AGE_S while a
        link is set), every uplink when nothing routes there. Only these carry
        the link tree's catch-all: a container's veth in this namespace is an
        uplink for limits, but what it forwards leaves by the real uplink and
        is shaped there; with the tree on both, a container's download crossed
        the upload's tree as well and was held to the upload's capacity
        (tests/e2e/test_priority_in_a_container.py measured 0.36 of the link);
        a VPN's uplink carries its encrypted copy of what the VPN device has
        shaped already, in the VPN's class (not the application's)."""
        uplinks = set(uplinks)
        if not any(self._link_shaping.values()):
            return uplinks
        read_at, routes = self._routes
        if time.monotonic() - read_at > ROUTES_MAX_AGE_S:
            routes = internet_links(self._ipr)
            self._routes = (time.monotonic(), routes)
        return (routes & uplinks) or uplinks

    def links_moved(self) -> None:
        """A link came, went or changed (link_events.py): list them afresh at
        the next reconcile, which the engine runs at once."""
        self._links = (float("-inf"), [])
        self._routes = (float("-inf"), set())

    def _uplinks(self) -> list[interfaces.Link]:
        """Devices traffic leaves by now: up, not loopback, not an IFB."""
        return [
            link
            for link in self._all_links()
            if link.up and not link.loopback and link.kind != "ifb"
        ]

    def _reconcile(self, wanted: dict[Direction, Classes], retire_after_s: float) -> None:
        present = {link.index: link for link in self._all_links()}
        self._forget_vanished(set(present))
        # Every link's, up or not: a cutting TBF leaf drops a frame larger than
        # its bucket, so the leaves take a new largest frame before any hook
        # of a new uplink sends one (an MTU raised meanwhile: docs/backends.md).
        self._frame_bytes = _largest_frame(present.values())
        for direction in Direction:
            for ifb in self._ifbs(direction):
                ifb.set_frame_bytes(self._frame_bytes)
        # A hook whose filter someone removed (with their qdisc, say): forget
        # it (its IFB too, if no other hook uses it), so it is made again below.
        for direction, index in self._lost_hooks:
            if index in self._hooks[direction]:
                self._forget_hook(direction, index)
        self._lost_hooks.clear()
        self._drop_lost_roots()
        if self._takeover_pending and self._reconciled and retire_after_s > 0:
            self._finish_takeover()
        self._reconciled += 1
        uplinks = {link.index: link for link in self._uplinks()}
        self._on_link = self._link_uplinks(uplinks)
        self._sync_pacing(
            wanted.get(Direction.UP, {})
        )  # before the classes: notices stop with the limit
        self._unhooked = {key: why for key, why in self._unhooked.items() if key[1] in uplinks}
        # A device that went down keeps its qdiscs and filters (so do we): when
        # it comes back, traffic finds them as they were.
        linked_classes: dict[Direction, set[int]] = {}
        for direction in (Direction.DOWN, Direction.UP):
            link = self._link_of(direction)
            # A class for a priority alone (rate 0) exists only under a link.
            classes = {
                slot: spec
                for slot, spec in wanted.get(direction, {}).items()
                if spec.rate_bps or link
            }
            if link is not None:
                linked_classes[direction] = set(classes)
            self._match_link(direction, classes)
            for index in sorted(set(uplinks) | set(self._hooks[direction])):
                try:
                    self._reconcile_hook(
                        direction, present[index], index in uplinks, classes, retire_after_s
                    )
                except (KernelError, NetlinkError) as error:
                    if not _device_vanished(error):
                        raise
                    # Gone since the links were listed (they are cached briefly): as
                    # if it had not been listed; the next listing will not have it.
                    self._links = (float("-inf"), [])
                    self._forget_vanished(set(present) - {index})
        self._sync_forwarded(linked_classes)
        self._sync_carrying()

    def _sync_forwarded(self, linked_classes: dict[Direction, set[int]]) -> None:
        """Forwarded flows (a container's, NATed out of an uplink: bpf/datapath.c)
        are classed by slot only under a link, in the classes the link tree
        holds: a limit of an application in another namespace is held there
        by that namespace's own shaper (namespace_shapers.py), not twice. The
        pacer draws a classed slot's token, which its forwarded packets must
        carry: the cookie says which namespace's sockets need not."""
        wanted: dict[int, frozenset[Direction]] = {}
        for direction, slots in linked_classes.items():
            for slot in slots:
                wanted[slot] = wanted.get(slot, frozenset()) | {direction}
        for slot in set(self._forwarded) | set(wanted):
            directions = wanted.get(slot, frozenset())
            if self._forwarded.get(slot, frozenset()) != directions:
                self._pacer.set_forwarded_classes(slot, directions, self._netns_cookie)
            if directions:
                self._forwarded[slot] = directions
            else:
                self._forwarded.pop(slot, None)

    def _sync_carrying(self) -> None:
        """A forwarded packet's skb->tc_index is taken for a slot only when it
        came in by a device whose ingress runs our hook (carry_slot writes it
        there); any other tc filter's match writes it too (bpf/datapath.c,
        carried_by). Our ingress hooks are the download direction's. The
        upload IFB is noted too: what it sends on from the uplink (under a
        link every packet: the catch-all) comes to the uplink's egress hook a
        second time, by the IFB, and is let be there; as a slot of no device
        of ours, it made the flow's noted tuple forgotten, and its downloads
        went unclassed.

        A hook is trusted only as the last read of it found it (carrying_doubts:
        no filter or tcx program of someone else's on that ingress can write
        tc_index after ours, or keep ours from running); the engine asks the
        gaps every second, so one added later is found within GAPS_MAX_AGE_S
        and a tick. A new hook is read before it is trusted."""
        if self._hooks[Direction.DOWN]:
            self.enforcement_gaps()  # reads the hooks again only when they changed or aged
        self._write_carrying()

    def _write_carrying(self) -> None:
        """The carrying devices as the hooks and their last read have them, to the
        pacer; the link's uplinks with an upload hook flagged ON_LINK: only
        there is a forwarded packet classed in the link tree. Another
        container's veth is an uplink too, and what one container sent
        another passed the link tree's class there (review24)."""
        wanted = {
            index: CARRIED_BY_HOOK
            for index in self._hooks[Direction.DOWN]
            if index in self._carriers
        }
        for index in self._hooks[Direction.UP]:
            if index in self._on_link:
                wanted[index] = wanted.get(index, 0) | ON_LINK
        wanted.update(
            {hook.ifb.ifindex: CARRIED_BY_IFB for hook in self._hooks[Direction.UP].values()}
        )
        for index in set(self._carrying) | set(wanted):
            if self._carrying.get(index) != wanted.get(index):
                self._pacer.set_carrying_device(self._netns_cookie, index, wanted.get(index, 0))
        self._carrying = wanted

    def _reconcile_hook(self, direction: Direction, link: interfaces.Link, uplink: bool, classes: Classes,
                        retire_after_s: float) -> None:  # fmt: skip
        """One uplink's share of _reconcile, for one direction."""
        hooks = self._hooks[direction]
        index = link.index
        linked_here = self._link_shaping[direction] is not None and index in self._on_link
        if (classes or linked_here) and index not in hooks and uplink:
            try:
                hooks[index] = self._create_hook(direction, link)
                self._unhooked.pop((direction, index), None)
            except NoHookPoint as why:
                if self._unhooked.get((direction, index)) != str(why):
                    log.warning(
                        "%ss through %s are not shaped: %s", _WORDS[direction], link.name, why
                    )
                self._unhooked[(direction, index)] = str(why)
        if index in hooks:
            hook = hooks[index]
            try:
                hook.ifb.sync(classes, retire_after_s)
            except (KernelError, NetlinkError):
                if _our_ifb_root(interfaces.root_qdisc(self._ipr, hook.ifb.ifindex)):
                    raise
                # its HTB replaced since the last check (_check_ifb_roots): made again
                self._lost_roots.add((direction, hook.ifb.ifindex))
                self._drop_lost_roots()
                self._reconcile_hook(direction, link, uplink, classes, retire_after_s)
                return
            if not hook.ifb.idle:
                self._idle_since.pop((direction, index), None)
            elif self._lingered(direction, index, retire_after_s):
                self._remove_hook(hooks.pop(index))
        elif not classes:
            self._unhooked.pop((direction, index), None)

    def _lingered(self, direction: Direction, index: int, retire_after_s: float) -> bool:
        """Whether a hook whose IFB has no class left may go now: once it has
        been so for the hook's linger (HOOK_LINGER_S), at once on close."""
        key = (direction, index)
        if retire_after_s <= 0 or self._hook_linger_s <= 0:
            self._idle_since.pop(key, None)
            return True
        now = time.monotonic()
        if now - self._idle_since.setdefault(key, now) < self._hook_linger_s:
            return False
        del self._idle_since[key]
        return True

    def holds_nothing(self) -> bool:
        """Whether no hook is left (none wanted, and the last one's linger is
        over): what NamespaceShapers waits for before it closes another
        namespace's shaper."""
        return not any(self._hooks.values())

    def _match_link(self, direction: Direction, classes: Classes) -> None:
        """Give the direction's IFB hierarchy the link wanted (set_link): in
        place for a new capacity; made again for a switch to or from a link;
        removed with its hooks when the link goes and no class is left."""
        link = self._link_of(direction)
        for ifb in self._ifbs(direction):
            users = [index for index, hook in self._hooks[direction].items() if hook.ifb is ifb]
            if ifb.link is not None and link is not None:
                if ifb.link != link:
                    ifb.relink(link)
            elif ifb.link is not None or link is not None:
                if link is None and not classes:
                    for index in users:
                        self._remove_hook(self._hooks[direction].pop(index))
                    continue
                remade = HtbHierarchy(self._ipr, ifb.ifindex, direction, l3_to_l2=ifb.l3_to_l2,
                                      changer=self._changer, link=link, frame_bytes=self._frame_bytes)  # fmt: skip
                ifb.delete()
                remade.create()
                for index in users:
                    self._hooks[direction][index].ifb = remade
            for index in users:
                self._match_catch_all(self._hooks[direction][index], link is not None)

    def _match_catch_all(self, hook: Hook, linked: bool) -> None:
        """The hook's catch-all there while its direction has a link and the
        link is on its uplink (_link_uplinks), gone without."""
        wanted = linked and hook.uplink_index in self._on_link
        if wanted and not hook.catch_all:
            catch_all.add(self._ipr, hook.uplink_index, hook.parent, hook.ifb.ifindex)
        elif hook.catch_all and not wanted:
            catch_all.remove(self._ipr, hook.uplink_index, hook.parent, hook.ifb.ifindex)
        hook.catch_all = wanted

    def _sync_pacing(self, up: Classes) -> None:
        """Uploads reach their class through skb->priority, which the egress
        program writes for a slot with a pacing rate: a class for a priority
        alone is paced at its link (its ceiling there)."""
        link = self._link_shaping[Direction.UP]
        share_bps = round(link.capacity_bps * SHAPE_SHARE) if link else 0
        # Compared by the rate paced, not the spec: a priority alone keeps its
        # spec when the link's capacity changes, and its pace must follow.
        wanted = {slot: spec.rate_bps or share_bps for slot, spec in up.items()}
        wanted = {slot: rate_bps for slot, rate_bps in wanted.items() if rate_bps}
        for slot in set(self._paced) - set(wanted):
            self._pacer.set_upload_pacing(slot, 0, 0)
            del self._paced[slot]
        for slot, rate_bps in wanted.items():
            if self._paced.get(slot) != rate_bps:
                self._pacer.set_upload_pacing(slot, rate_bps, cn_queue_ns(rate_bps))
                self._paced[slot] = rate_bps

    def _create_hook(self, direction: Direction, link: interfaces.Link) -> Hook:
        uplink_index, name = link.index, link.name
        parent, add_qdisc = tc_hooks.hook_point(self._ipr, uplink_index, direction)
        other = self._hooks[Direction.UP if direction is Direction.DOWN else Direction.DOWN].get(
            uplink_index
        )
        # The other direction's hook added the clsact, or another helper's shaper
        # did: it goes with the last filter there, ours or theirs (tc_hooks.py).
        created_qdisc = add_qdisc or (other is not None and other.created_qdisc
                                      and other.parent != tc_hooks.INGRESS_PARENT)  # fmt: skip
        if not created_qdisc and parent != tc_hooks.INGRESS_PARENT:
            created_qdisc = tc_hooks.clsact_of_a_shaper(self._netns_cookie, uplink_index, name)
        shared = next(
            iter(self._hooks[direction].values()), None
        )  # the namespace's IFB, if it has one yet
        ifb_name = shared.ifb_name if shared is not None else new_ifb_name()
        self._journal.ifb(uplink_index, name, ifb_name, direction)
        if shared is not None:
            ifb = shared.ifb
        else:
            # mirred hands the IFB the frame with the uplink's link-layer header:
            # its rates are scaled for the first uplink's, in ifindex order (an
            # Ethernet uplink and a VPN's tun that came up later: the tun's
            # traffic, counted from its IP header, passes 0.9% over the limit;
            # docs/backends.md)
            try:
                ifb_index = interfaces.create_ifb(self._ipr, ifb_name, IFB_ALIASES[direction])
            except KernelError:
                self._journal.forget_hook(uplink_index, direction)
                raise
            ifb = HtbHierarchy(self._ipr, ifb_index, direction, l3_to_l2=link.l3_to_l2, changer=self._changer,
                               link=self._link_of(direction), frame_bytes=self._frame_bytes)  # fmt: skip
        hook = Hook(direction, uplink_index, ifb, parent, created_qdisc, ifb_name=ifb_name)
        self._journal.hook(uplink_index, name, parent, created_qdisc, direction)
        try:
            if shared is None:
                ifb.create()
            if add_qdisc and tc_hooks.add_hook_qdisc(self._ipr, uplink_index):
                self._lossy_grafts += 1
            tc_hooks.add_filter(self._ipr, hook, self._tc_program(direction, link.ethernet))
            self._match_catch_all(hook, self._link_shaping[direction] is not None)
        except (
            KernelError,
            NoHookPoint,
        ):  # NoHookPoint: another helper's filter took its place meanwhile
            self._remove_hook(hook)
            raise
        log.info(
            "%s shaping on %s through IFB %s (%d)", _WORDS[direction], name, ifb_name, ifb.ifindex
        )
        return hook

    def _remove_hook(self, hook: Hook) -> None:
        self._idle_since.pop((hook.direction, hook.uplink_index), None)
        tc_hooks.remove_filter_and_qdisc(self._ipr, hook.uplink_index, hook.parent, hook.created_qdisc,
                                         hook.ifb.ifindex)  # fmt: skip
        self._delete_ifb_unless_shared(hook)
        self._journal.forget_hook(hook.uplink_index, hook.direction)

    def _delete_ifb_unless_shared(self, hook: Hook) -> None:
        """The IFB goes with the last hook that uses it."""
        others = self._hooks[hook.direction].values()
        if not any(other.ifb.ifindex == hook.ifb.ifindex for other in others if other is not hook):
            interfaces.delete_link(self._ipr, hook.ifb.ifindex)

    def _forget_hook(self, direction: Direction, index: int) -> None:
        hook = self._hooks[direction].pop(index)
        self._idle_since.pop((direction, index), None)
        if hook.catch_all:  # before its IFB goes: a redirect to a missing device drops every packet
            catch_all.remove(
                self._ipr, index, hook.parent, hook.ifb.ifindex
            )  # quiet if the uplink is gone
        self._delete_ifb_unless_shared(hook)
        self._journal.forget_hook(index, direction)

    def _forget_vanished(self, present: set[int]) -> None:
        """An uplink that is gone took its qdiscs and filters with it; its IFB stays
        unless removed."""
        for direction, hooks in self._hooks.items():
            for index in set(hooks) - present:
                self._forget_hook(direction, index)

    # --- taking over from a killed helper -------------------------------------------

    def _adopt(self) -> bool:
        """Adopt what a killed shaper recorded in this namespace and is still
        there as recorded; remove the rest of its remains. True if anything
        was adopted (the takeover finishes at the second reconcile)."""
        roots, entries = self._journal.take_over_dead()
        for root in roots:  # an earlier version's upload roots: removed
            if is_our_root(self._ipr, root):
                HtbHierarchy(self._ipr, root.ifindex, Direction.UP).delete()
            self._journal.forget_root(root.ifindex)
        leftover = [entry for entry in entries if not self._adopt_hook(entry)]
        for entry in leftover:  # after every adoption: an IFB adopted through another uplink stays
            in_use = any(
                hook.ifb_name == entry.ifb_name for hook in self._hooks[entry.direction].values()
            )
            remove_hook_remains(self._ipr, entry, keep_ifb=in_use)
            self._journal.forget_hook(entry.uplink, entry.direction)
        adopted = sum(len(hooks) for hooks in self._hooks.values())
        if roots or entries:
            log.warning("took over %d tc objects an earlier helper left behind; adopted %d",
                        len(roots) + len(entries), adopted)  # fmt: skip
        return bool(adopted)

    def _adopt_hook(self, entry: HookEntry) -> bool:
        """Adopt one uplink's recorded hook if it is there as recorded."""
        uplink = same_device(self._ipr, entry.uplink, entry.uplink_name)
        ifb = our_ifb(self._ipr, entry.ifb_name, entry.direction)
        found = (our_filter(self._ipr, entry.uplink, entry.hook_parent, ifb.index if ifb else None)
                 if uplink is not None and entry.hook_parent is not None else None)  # fmt: skip
        if uplink is None or ifb is None or found is None or entry.hook_parent is None:
            return False
        ifb_root = interfaces.root_qdisc(self._ipr, ifb.index)
        if ifb_root is None or ifb_root.handle != ROOT_HANDLE or ifb_root.kind != "htb":
            return False
        hooks = self._hooks[entry.direction]
        shared = next((h.ifb for h in hooks.values() if h.ifb.ifindex == ifb.index), None)
        hierarchy = shared or HtbHierarchy.adopt(self._ipr, ifb.index, entry.direction, l3_to_l2=uplink.l3_to_l2,
                                                 changer=self._changer, frame_bytes=self._frame_bytes)  # fmt: skip
        hooks[entry.uplink] = Hook(
            entry.direction,
            entry.uplink,
            hierarchy,
            entry.hook_parent,
            entry.created_qdisc,
            old_program=True,
            ifb_name=entry.ifb_name or "",
            catch_all=catch_all.present(self._ipr, entry.uplink, entry.hook_parent, ifb.index),
        )
        log.info("adopted %s shaping an earlier helper left on %s (IFB %s)", _WORDS[entry.direction], uplink.name,
                 ifb.name)  # fmt: skip
        return True

    def _finish_takeover(self) -> None:
        """The new programs tag the sockets now: adopted filters get the new
        program (in place, no packet unclassified) and adopted classes that
        nobody wants retire."""
        for direction, hooks in self._hooks.items():
            for hook in hooks.values():
                if hook.old_program:
                    link = interfaces.link_by_index(self._ipr, hook.uplink_index)
                    try:
                        program = self._tc_program(direction, link.ethernet if link else True)
                        tc_hooks.set_filter(self._ipr, hook, program, "replace-filter")
                        hook.old_program = False
                    except KernelError as error:
                        log.error("could not give the adopted filter on %d the new program: %s",
                                  hook.uplink_index, error)  # fmt: skip
            for hierarchy in self._ifbs(direction):
                hierarchy.release_held()
        self._takeover_pending = any(
            hook.old_program for hooks in self._hooks.values() for hook in hooks.values()
        )


def _our_ifb_root(root: interfaces.Qdisc | None) -> bool:
    """An IFB's root is the HTB its hierarchy made (or adopted, _adopt_hook)."""
    return root is not None and root.kind == "htb" and root.handle == ROOT_HANDLE


def _largest_frame(links: Iterable[interfaces.Link]) -> int:
    """The frame a cutting TBF leaf must take: of every link, up or not
    (a link brought up sends at once), not loopback or IFBs."""
    return tbf_leaf.largest_frame(
        [(link.mtu, link.ethernet) for link in links if not link.loopback and link.kind != "ifb"]
    )


def remove_leftovers(ipr: IPRoute) -> int:
    """At start, before a TcShaper exists: remove nothing, report what looks
    like ours (a root with our handle, a device named like our IFBs) but no
    journal records; it is somebody else's and is left alone. What a killed
    helper recorded is adopted by the TcShaper, or removed by remove_unadopted().
    Returns how many look-alikes were reported."""
    netns = tc_ownership.netns_cookie(ipr)
    recorded = [
        entry
        for entry in recorded_entries(tc_ownership.JOURNAL_KIND)
        if entry.get("netns") == netns
    ]
    roots = {int(e["ifindex"]) for e in recorded if e["key"].startswith("root:")}
    ifbs = {str(e["ifb_name"]) for e in recorded if "ifb_name" in e}
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
                        "create it", root.kind, ROOT_HANDLE >> 16, link.name)  # fmt: skip
            reported += 1
    return reported


def remove_unadopted(ipr: IPRoute, instance: str = "") -> int:
    """Remove what killed helpers of this instance recorded in this namespace
    and no live shaper adopted (a helper that runs without the tc backend);
    returns how many objects were removed."""
    journal = TcJournal(ipr, instance)
    removed = 0
    try:
        roots, entries = journal.take_over_dead()
        for root in roots:
            if is_our_root(ipr, root):
                HtbHierarchy(ipr, root.ifindex, Direction.UP).delete()
                removed += 1
            journal.forget_root(root.ifindex)
        for entry in entries:
            remove_hook_remains(ipr, entry)
            journal.forget_hook(entry.uplink, entry.direction)
            removed += 1
    except BaseException:
        journal.release()
        raise
    journal.close()
    if removed:
        log.warning("removed %d tc objects left behind by an earlier helper", removed)
    return removed
