"""Filters and programs ChadThrottle did not create that can take packets away
from its limits, on the hooks the tc backend uses. They are only reported
(the direction and uplink are then not enforced, and why), never touched.

An uplink's ingress hook (an ingress or clsact qdisc; downloads) and its
clsact egress hook (uploads) run their filters by priority, lowest number
first, and a filter that matches a packet ends the search with its verdict.
One that runs before ours (prio 0xC7AD) can so keep packets from our cls_bpf
and its redirect to the IFB: measured, a u32 filter at prio 10 let a 3 MB/s
download run at 95-162 MB/s. tcx programs (Linux 6.6) run on the same hooks
before every tc filter. Our own filter gone (its qdisc deleted or replaced)
leaves that direction unlimited.

Filters for a protocol other than IPv4, IPv6 or all (ARP, say) never see
the packets we limit and are not counted. Everything here is read with one
or two filter dumps per hook and one BPF query: no qdisc dump, which is
100-150 ms with a thousand classes.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import logging
import os
import socket
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from chadthrottle.contract import Direction
from chadthrottle.helper.kernel import bpf_syscalls
from chadthrottle.helper.kernel.layout import PROGRAM_NAME_PREFIX
from pyroute2.iproute import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

log = logging.getLogger("chadthrottle.kernel.foreign")

ETH_P_ALL, ETH_P_IP, ETH_P_IPV6 = 0x0003, 0x0800, 0x86DD
_CARRIES_IP = (ETH_P_ALL, ETH_P_IP, ETH_P_IPV6)
TCA_EGRESS_REDIR, TCA_INGRESS_REDIR = 1, 3  # mirred: the other two only mirror (copy)
SIOCGSKNS = 0x894C  # an fd for a socket's network namespace
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


@dataclass(frozen=True)
class Action:
    """A tc action, as far as it can take a packet out of a limit."""

    kind: str
    redirect_ifindex: int = 0  # mirred redirect (not mirror) to this device
    sets_priority: bool = False  # skbedit priority
    readable: bool = True  # pyroute2 decoded its options


@dataclass(frozen=True)
class Filter:
    """One message of a filter dump: a classifier's head (handle 0) or one of
    its rules. A classifier is (chain, prio, protocol, kind)."""

    kind: str
    prio: int
    protocol: int  # ETH_P_*, host byte order
    chain: int = 0
    handle: int = 0
    bpf_name: str = ""
    actions: tuple[Action, ...] = ()
    readable: bool = True  # pyroute2 decoded its options

    @property
    def classifier(self) -> tuple[int, int, int, str]:
        return self.chain, self.prio, self.protocol, self.kind


def _nla(value: Any) -> bool:
    return hasattr(value, "get_attr")


def parse_action(message: Any) -> Action:
    """One TCA_ACT_PRIO_n of a filter's action list."""
    kind = str(message.get_attr("TCA_ACT_KIND") or "")
    options = message.get_attr("TCA_ACT_OPTIONS")
    if options is not None and not _nla(options):
        return Action(kind, readable=False)
    if kind == "mirred" and options is not None:
        parms = options.get_attr("TCA_MIRRED_PARMS") or {}
        redirects = parms.get("eaction") in (TCA_EGRESS_REDIR, TCA_INGRESS_REDIR)
        return Action(kind, redirect_ifindex=int(parms.get("ifindex", 0)) if redirects else 0)
    if kind == "skbedit":
        return Action(
            kind,
            sets_priority=options is None or options.get_attr("TCA_SKBEDIT_PRIORITY") is not None,
        )
    return Action(kind)


def parse_filter(message: Any) -> Filter:
    """A pyroute2 RTM_NEWTFILTER message as a Filter."""
    info = message["info"]
    kind = str(message.get_attr("TCA_KIND") or "")
    common = {"kind": kind, "prio": info >> 16, "protocol": socket.ntohs(info & 0xFFFF),
              "chain": message.get_attr("TCA_CHAIN") or 0, "handle": message["handle"]}  # fmt: skip
    options = message.get_attr("TCA_OPTIONS")
    if options is None:
        return Filter(**common)
    if not _nla(options):
        return Filter(**common, readable=False)
    actions: list[Action] = []
    for name, value in options["attrs"]:
        if name.endswith("_ACT") and _nla(value):  # TCA_U32_ACT, TCA_BPF_ACT, TCA_MATCHALL_ACT, ...
            actions.extend(parse_action(action) for _prio, action in value["attrs"])
    return Filter(**common, bpf_name=str(options.get_attr("TCA_BPF_NAME") or "") if kind == "bpf" else "",
                  actions=tuple(actions))  # fmt: skip


# The words of the reason hook_gaps gives when our own filter is gone: the
# shaper puts its hook back when it reads them (TcShaper.enforcement_gaps).
OUR_FILTER_GONE = {Direction.DOWN: "the download filter ChadThrottle added on ingress is gone",
                   Direction.UP: "the upload filter ChadThrottle added on egress is gone"}  # fmt: skip
_HOOK_WORDS = {Direction.DOWN: ("ingress", "downloads"), Direction.UP: ("egress", "uploads")}


def _is_ours(entry: Filter, our_prio: int, our_ifb: int) -> bool:
    """Our filter: cls_bpf at our priority, running one of our programs,
    redirecting to our IFB."""
    return (entry.kind == "bpf" and entry.prio == our_prio and entry.handle != 0
            and entry.bpf_name.startswith(PROGRAM_NAME_PREFIX)
            and any(action.redirect_ifindex == our_ifb for action in entry.actions))  # fmt: skip


def hook_gaps(
    ifname: str, filters: Iterable[Filter], our_prio: int, our_ifb: int, direction: Direction
) -> list[str]:
    """Why traffic of a direction through ifname is not limited: our filter on
    that hook is gone, or a classifier we did not create runs before it (the
    first that matches a packet ends the search). Only chain 0 is searched
    first; other chains are reached only through a filter there."""
    hook, traffic = _HOOK_WORDS[direction]
    ordered = sorted(
        (f for f in filters if f.chain == 0), key=lambda f: f.prio
    )  # stable: the kernel's order
    ours = next((i for i, f in enumerate(ordered) if _is_ours(f, our_prio, our_ifb)), None)
    if ours is None:
        return [
            f"{ifname}: {OUR_FILTER_GONE[direction]} (its qdisc was removed or replaced); {traffic} through "
            f"{ifname} are not limited"
        ]
    reasons: dict[tuple[int, int, int, str], str] = {}
    for entry in ordered[:ours]:
        if entry.protocol not in _CARRIES_IP or (entry.prio == our_prio and entry.handle == 0):
            continue  # never sees IP, or the head of our own classifier
        reasons.setdefault(entry.classifier, (
            f"{ifname}: a {entry.kind} filter ChadThrottle did not create (prio {entry.prio}) runs before its own "
            f"on {hook}; {traffic} through {ifname} are not limited"))  # fmt: skip
    return list(reasons.values())


def carrying_doubts(
    ifname: str, filters: Iterable[Filter], our_prio: int, our_ifbs: Collection[int], our_ifb: int,
    tcx: Iterable[str],
) -> list[str]:  # fmt: skip
    """Why the slot our ingress hook on ifname writes into skb->tc_index (a
    container's socket's: bpf/datapath.c carry_slot) may not be what leaves
    that hook. The kernel writes TC_H_MIN(classid) into tc_index after any
    filter there that returns TC_ACT_OK: one before ours (ours never runs), or
    one after ours that our catch-all does not end the search before (ours
    matches nothing for an upload; the search goes on); a tcx program can
    write it, or skip the filters. our_ifbs: every IFB of ours (u32 shows the
    other hook's tables at the same priority), our_ifb: this hook's."""
    ordered = sorted(
        (f for f in filters if f.chain == 0), key=lambda f: f.prio
    )  # stable: the kernel's order
    ours = next((i for i, f in enumerate(ordered) if _is_ours(f, our_prio, our_ifb)), None)
    if ours is None:
        return [f"{ifname}: {OUR_FILTER_GONE[Direction.DOWN]}"]
    catch_all = (
        our_prio + 1
    )  # catch_all.CATCH_ALL_PRIORITY: a u32 of ours that matches every packet
    ends = any(f.kind == "u32" and f.prio == catch_all and f.protocol == ETH_P_ALL
               and any(action.redirect_ifindex == our_ifb for action in f.actions) for f in ordered)  # fmt: skip
    reasons: dict[tuple[int, int, int, str], str] = {}
    for at, entry in enumerate(ordered):
        if (
            entry.protocol not in _CARRIES_IP
            or entry.handle == 0
            or (ends and entry.prio > catch_all)
        ):
            continue  # never sees IP, a classifier's head, or never reached
        if _is_ours(entry, our_prio, our_ifb) or (
            entry.kind == "u32" and entry.prio == catch_all
            and (not entry.handle & 0xFFF  # a u32 table's head
                 or (entry.actions and all(a.redirect_ifindex in our_ifbs for a in entry.actions)))
        ):  # fmt: skip
            continue
        where = "before" if at < ours else "after"
        reasons.setdefault(entry.classifier, (
            f"{ifname}: a {entry.kind} filter ChadThrottle did not create (prio {entry.prio}) runs {where} its own "
            f"on ingress and can set skb->tc_index, by which ChadThrottle carries a container's priority; uploads "
            f"forwarded from {ifname} are not prioritized"))  # fmt: skip
    return list(reasons.values()) + [
        f"{ifname}: a tcx BPF program ChadThrottle did not attach ({name or 'unnamed'}) runs first on ingress "
        f"and can set skb->tc_index; uploads forwarded from {ifname} are not prioritized" for name in tcx]  # fmt: skip


def ingress_gaps(ifname: str, filters: Iterable[Filter], our_prio: int, our_ifb: int) -> list[str]:
    return hook_gaps(ifname, filters, our_prio, our_ifb, Direction.DOWN)


def egress_gaps(ifname: str, filters: Iterable[Filter], our_prio: int, our_ifb: int) -> list[str]:
    return hook_gaps(ifname, filters, our_prio, our_ifb, Direction.UP)


def tcx_gaps(ifname: str, programs: Iterable[str], direction: Direction) -> list[str]:
    hook, traffic = (
        ("ingress", "downloads") if direction == Direction.DOWN else ("egress", "uploads")
    )
    return [f"{ifname}: a tcx BPF program ChadThrottle did not attach ({name or 'unnamed'}) runs first on {hook}; "
            f"{traffic} through {ifname} may not be limited" for name in programs]  # fmt: skip


def read_hook(ipr: IPRoute, ifindex: int, parent: int) -> list[Filter]:
    """The filters under one hook of a device ([] when it has none)."""
    try:
        return [parse_filter(message) for message in ipr.get_filters(index=ifindex, parent=parent)]
    except (NetlinkError, OSError):
        return []


@contextlib.contextmanager
def netns_of(sock_fd: int) -> Iterator[None]:
    """Run the block in the network namespace of a socket (a bpf(2) ifindex
    names a device of the caller's); nothing to do when already there. If it
    cannot be entered, the block runs where it is, logged: the helper's own
    shaper works in the helper's namespace anyway."""
    try:
        target = fcntl.ioctl(sock_fd, SIOCGSKNS)
    except OSError as error:
        log.warning("could not find the namespace of netlink socket %d: %s", sock_fd, error)
        yield
        return
    here = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        if os.fstat(here).st_ino == os.fstat(target).st_ino:
            yield
            return
        if _libc.setns(target, CLONE_NEWNET) != 0:
            log.warning(
                "could not enter the namespace of netlink socket %d: %s",
                sock_fd,
                os.strerror(ctypes.get_errno()),
            )
            yield
            return
        try:
            yield
        finally:
            _libc.setns(here, CLONE_NEWNET)
    finally:
        os.close(here)
        os.close(target)


def tcx_programs(ifindex: int, attach_type: int) -> list[str]:
    """Names of the tcx programs on a device of the caller's namespace; [] on
    kernels without tcx."""
    try:
        ids = bpf_syscalls.query_device(ifindex, attach_type)
    except OSError:
        return []
    names = []
    for prog_id in ids:
        try:
            prog_fd = bpf_syscalls.open_program(prog_id)
        except OSError:
            continue  # detached meanwhile
        try:
            names.append(bpf_syscalls.program_name(prog_fd))
        finally:
            os.close(prog_fd)
    return names


def enforcement_gaps(
    ipr: IPRoute,
    names: Mapping[int, str],
    ingress: Mapping[int, tuple[int, int]],
    egress: Mapping[int, tuple[int, int]],
    our_prio: int,
) -> dict[Direction, list[str]]:
    """Per direction, the reasons limits do not hold on some uplink. ingress,
    egress: uplink ifindex -> (hook parent, our IFB's ifindex) where downloads,
    uploads are redirected to an IFB; names: uplink names."""
    return read_gaps(ipr, names, ingress, egress, our_prio)[0]


def read_gaps(
    ipr: IPRoute,
    names: Mapping[int, str],
    ingress: Mapping[int, tuple[int, int]],
    egress: Mapping[int, tuple[int, int]],
    our_prio: int,
) -> tuple[dict[Direction, list[str]], dict[int, list[str]]]:
    """enforcement_gaps, and from the same dumps, per ingress hook (ifindex),
    why it cannot be trusted to carry a slot in skb->tc_index
    (carrying_doubts; absent when it can)."""
    gaps: dict[Direction, list[str]] = {Direction.DOWN: [], Direction.UP: []}
    doubts: dict[int, list[str]] = {}
    our_ifbs = {ifb for _parent, ifb in [*ingress.values(), *egress.values()]}
    hooks = {
        Direction.DOWN: (ingress, bpf_syscalls.TCX_INGRESS),
        Direction.UP: (egress, bpf_syscalls.TCX_EGRESS),
    }
    with netns_of(ipr.fileno()):
        for direction, (redirects, tcx_hook) in hooks.items():
            for index, (parent, ifb) in sorted(redirects.items()):
                if index in names:
                    filters = read_hook(ipr, index, parent)
                    tcx = tcx_programs(index, tcx_hook)
                    gaps[direction] += hook_gaps(names[index], filters, our_prio, ifb, direction)
                    gaps[direction] += tcx_gaps(names[index], tcx, direction)
                    if direction is Direction.DOWN and (
                        doubt := carrying_doubts(
                            names[index], filters, our_prio, our_ifbs, ifb, tcx
                        )
                    ):
                        doubts[index] = doubt
    return {direction: reasons for direction, reasons in gaps.items() if reasons}, doubts
