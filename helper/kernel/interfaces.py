"""Network devices as the tc shaper needs them: which are uplinks, what qdisc
sits on them, and the IFB devices the helper creates for downloads."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from chadthrottle.helper.errors import KernelError

log = logging.getLogger("chadthrottle.kernel.interfaces")

IFB_PREFIX = "ctifb"  # + uplink ifindex; every device with this prefix is ours
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

    @property
    def l3_to_l2(self) -> float:
        """How much larger a full-size packet is where HTB counts it (from the
        link-layer header) than at L3, where limits are defined."""
        return (self.mtu + ETHERNET_HEADER_BYTES) / self.mtu if self.ethernet else 1.0


@dataclass(frozen=True)
class Qdisc:
    kind: str
    handle: int

    @property
    def is_default(self) -> bool:
        """Attached by the kernel, so deleting ours brings the same one back.
        Handle 0 says so whatever its kind (net.core.default_qdisc may name fq
        or cake; multi-queue devices get mq): a qdisc someone adds gets a
        handle, and nothing can be added under a root whose handle is 0."""
        return self.handle == 0


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
    )


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


def root_qdisc(ipr: IPRoute, ifindex: int) -> Qdisc | None:
    for message in _qdiscs(ipr, ifindex):
        if message["parent"] == TC_H_ROOT:
            return Qdisc(message.get_attr("TCA_KIND"), message["handle"])
    return None


def ingress_hook(ipr: IPRoute, ifindex: int) -> str | None:
    """"ingress" or "clsact" when the device already has an ingress hook."""
    for message in _qdiscs(ipr, ifindex):
        kind = message.get_attr("TCA_KIND")
        if kind in ("ingress", "clsact"):
            return str(kind)
    return None


def delete_our_filters(ipr: IPRoute, ifindex: int, parent: int, priority: int) -> int:
    """Delete the filters at our priority under parent; returns how many."""
    try:
        filters = list(ipr.get_filters(index=ifindex, parent=parent))
    except NetlinkError:
        return 0
    if not any((message["info"] >> 16) == priority for message in filters):
        return 0
    try:
        ipr.tc("del-filter", "bpf", ifindex, parent=parent, prio=priority)
    except NetlinkError as error:
        log.debug("filter on %d already gone: %s", ifindex, error)
        return 0
    return 1


def create_ifb(ipr: IPRoute, uplink_index: int) -> int:
    """Create (or re-create) the IFB for one uplink, up; returns its ifindex."""
    name = f"{IFB_PREFIX}{uplink_index}"
    for existing in ipr.link_lookup(ifname=name):
        delete_link(ipr, existing)
    try:
        ipr.link("add", ifname=name, kind="ifb")
        (index,) = ipr.link_lookup(ifname=name)
        ipr.link("set", index=index, state="up")
    except (NetlinkError, ValueError) as error:
        raise KernelError(f"could not create the IFB device {name}: {error}") from error
    return int(index)


def delete_link(ipr: IPRoute, ifindex: int) -> None:
    try:
        ipr.link("del", index=ifindex)
    except NetlinkError as error:
        log.debug("link %d already gone: %s", ifindex, error)
