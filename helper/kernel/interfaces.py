"""Network devices as the tc shaper needs them: which are uplinks, what qdisc
sits on them, the filters on their hooks, and the IFB devices the helper
creates. Nothing here decides what is ours: tc_ownership.py does,
from the shaper's journal."""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from typing import Any

from chadthrottle.helper.errors import KernelError
from pyroute2.iproute import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

log = logging.getLogger("chadthrottle.kernel.interfaces")

IFB_PREFIX = "ctifb"  # + a random token; a name alone never makes a device ours
ARPHRD_ETHER = 1
ETHERNET_HEADER_BYTES = 14
IFF_UP = 0x1
IFF_LOOPBACK = 0x8
TC_H_ROOT = 0xFFFFFFFF


@dataclass(frozen=True)
class Link:
    index: int
    name: str
    kind: str
    up: bool
    loopback: bool
    mtu: int = 1500
    ethernet: bool = True  # frames carry a 14-byte Ethernet header
    alias: str = ""  # IFLA_IFALIAS, where the helper marks its IFBs

    @property
    def l3_to_l2(self) -> float:
        """How much larger a full-size packet is where HTB counts it (from the
        link-layer header) than at L3, where limits are defined."""
        return (self.mtu + ETHERNET_HEADER_BYTES) / self.mtu if self.ethernet else 1.0


@dataclass(frozen=True)
class Qdisc:
    kind: str
    handle: int
    rate2quantum: int = 0  # HTB only: where the helper marks its roots
    default_minor: int = 0  # HTB only


def _link(message: Any) -> Link:
    info = message.get_attr("IFLA_LINKINFO")
    kind = info.get_attr("IFLA_INFO_KIND") if info is not None else ""
    flags = message["flags"]
    return Link(
        index=message["index"],
        name=message.get_attr("IFLA_IFNAME"),
        kind=kind or "",
        up=bool(flags & IFF_UP),
        loopback=bool(flags & IFF_LOOPBACK),
        mtu=message.get_attr("IFLA_MTU") or 1500,
        ethernet=message["ifi_type"] == ARPHRD_ETHER,
        alias=message.get_attr("IFLA_IFALIAS") or "",
    )


def root_qdisc_kind(ipr: IPRoute, ifindex: int) -> str | None:
    """The kind of a device's root qdisc (IFLA_QDISC), from one link message:
    0.3 ms where a qdisc dump of an IFB with a thousand leaves took 60 ms of
    Python. None when the device is gone."""
    try:
        return str(ipr.get_links(ifindex)[0].get_attr("IFLA_QDISC") or "")
    except (NetlinkError, IndexError):
        return None


def all_links(ipr: IPRoute) -> list[Link]:
    return [_link(message) for message in ipr.get_links()]


def uplinks(ipr: IPRoute) -> list[Link]:
    """Devices traffic leaves by: up, not loopback, not an IFB."""
    return [link for link in all_links(ipr) if link.up and not link.loopback and link.kind != "ifb"]


def _qdiscs(ipr: IPRoute, ifindex: int) -> list[Any]:
    try:
        return list(ipr.get_qdiscs(index=ifindex))
    except NetlinkError:
        return []


def link_by_index(ipr: IPRoute, ifindex: int) -> Link | None:
    try:
        return _link(ipr.get_links(ifindex)[0])
    except (NetlinkError, IndexError):
        return None


def link_named(ipr: IPRoute, name: str) -> Link | None:
    indexes = ipr.link_lookup(ifname=name)
    return link_by_index(ipr, indexes[0]) if indexes else None


def root_qdisc(ipr: IPRoute, ifindex: int) -> Qdisc | None:
    for message in _qdiscs(ipr, ifindex):
        if message["parent"] == TC_H_ROOT:
            kind = message.get_attr("TCA_KIND")
            options = message.get_attr("TCA_OPTIONS") if kind == "htb" else None
            init = options.get_attr("TCA_HTB_INIT") if options is not None else None
            if init is None:
                return Qdisc(kind, message["handle"])
            return Qdisc(kind, message["handle"], init["rate2quantum"], init["defcls"])
    return None


def ingress_hook(ipr: IPRoute, ifindex: int) -> str | None:
    """ "ingress" or "clsact" when the device already has an ingress hook."""
    for message in _qdiscs(ipr, ifindex):
        kind = message.get_attr("TCA_KIND")
        if kind in ("ingress", "clsact"):
            return str(kind)
    return None


@dataclass(frozen=True)
class BpfFilter:
    """One cls_bpf filter under an ingress hook, as the kernel lists it."""

    handle: int
    protocol: int
    program_name: str
    redirect_ifindex: int  # where its mirred action sends packets; 0: none


def filters_at(ipr: IPRoute, ifindex: int, parent: int, priority: int) -> list[Any]:
    """Every filter (of any kind) at a priority under parent, heads excluded."""
    try:
        messages = list(ipr.get_filters(index=ifindex, parent=parent))
    except NetlinkError:
        return []
    return [m for m in messages if (m["info"] >> 16) == priority and m["handle"] != 0]


def bpf_filter(message: Any) -> BpfFilter | None:
    if message.get_attr("TCA_KIND") != "bpf":
        return None
    options = message.get_attr("TCA_OPTIONS")
    if options is None:
        return None
    redirect = 0
    actions = options.get_attr("TCA_BPF_ACT")
    for _name, action in actions["attrs"] if actions is not None else []:
        action_options = (
            action.get_attr("TCA_ACT_OPTIONS")
            if action.get_attr("TCA_ACT_KIND") == "mirred"
            else None
        )
        parms = action_options.get_attr("TCA_MIRRED_PARMS") if action_options is not None else None
        if parms is not None:
            redirect = parms["ifindex"]
    return BpfFilter(
        message["handle"],
        message["info"] & 0xFFFF,
        options.get_attr("TCA_BPF_NAME") or "",
        redirect,
    )


def delete_filter(ipr: IPRoute, ifindex: int, parent: int, priority: int, found: BpfFilter) -> None:
    """Delete exactly this filter (priority, protocol, handle), nothing beside it."""
    try:
        ipr.tc(
            "del-filter",
            "bpf",
            ifindex,
            found.handle,
            parent=parent,
            prio=priority,
            protocol=socket.ntohs(found.protocol),
        )
    except NetlinkError as error:
        log.debug("filter on %d already gone: %s", ifindex, error)


def has_filters(ipr: IPRoute, ifindex: int, parent: int) -> bool:
    try:
        return any(m["handle"] != 0 for m in ipr.get_filters(index=ifindex, parent=parent))
    except NetlinkError:
        return False


def create_ifb(ipr: IPRoute, name: str, alias: str) -> int:
    """Create an IFB under a name the caller recorded, marked with alias, up;
    returns its ifindex. (The kernel ignores an alias given at creation.)"""
    try:
        ipr.link("add", ifname=name, kind="ifb")
        (index,) = ipr.link_lookup(ifname=name)
        ipr.link("set", index=index, ifalias=alias, state="up")
    except (NetlinkError, ValueError) as error:
        raise KernelError(f"could not create the IFB device {name}: {error}") from error
    return int(index)


def delete_link(ipr: IPRoute, ifindex: int) -> None:
    try:
        ipr.link("del", index=ifindex)
    except NetlinkError as error:
        log.debug("link %d already gone: %s", ifindex, error)
