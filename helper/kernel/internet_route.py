"""Where the internet goes from this namespace, as the kernel routes an
application's packet: the devices the link capacity's tree belongs on
(tc_shaper._link_uplinks) and whose bytes the estimator reads (estimation.py).

Not the main table's default routes: the usual desktop VPNs route the
internet elsewhere while that default route stays, and an application's
packets then leave by the VPN's device:
- wg-quick puts its default route in a table of its own (51820) picked by
  `ip rule not fwmark 0xca6c lookup 51820`, and hides main's default with
  `suppress_prefixlength 0`;
- OpenVPN's redirect-gateway def1 adds 0.0.0.0/1 and 128.0.0.0/1 through
  tun0 beside the default (IPv6: ::/1 and 8000::/1, or 2000::/3 and the like);
- NetworkManager's VPNs do either.
So the kernel is asked (RTM_GETROUTE, RTM_F_FIB_MATCH: the matching FIB
entry, every nexthop of a multipath one) for a few public addresses of both
halves of the IPv4 space and one of IPv6's global unicast, without a mark, as an
unmarked application's packet is routed: every rule applies. The VPN's own
encrypted packets (marked, or by a route to its server) leave by the
physical uplink: that uplink is then not the internet's, and the tree on it
would count each byte twice and order nothing (the packets are the VPN's).

A bridge the internet goes through (br0 for virtual machines) is replaced
by its port towards the gateway (the bridge's forwarding database for the
gateway's address): its egress sees the host's and the bridged machines'
traffic, the bridge device the host's only. Unknown yet (no frame from the
gateway seen): the bridge itself, until the next lookup.
"""

from __future__ import annotations

import socket
from collections.abc import Collection, Iterable
from typing import Any

from pyroute2.iproute import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

RTM_F_FIB_MATCH = 0x2000
AF_BRIDGE = 7
# Anycast resolvers' addresses, one in each half of IPv4 (def1's /1 routes)
# and one in IPv6's 2000::/4 (global unicast): only routed here, never sent to.
PROBES = {
    socket.AF_INET: ("9.9.9.9", "149.112.112.112"),
    socket.AF_INET6: ("2620:fe::fe",),
}


def _matched(ipr: Any, family: int, address: str) -> list[tuple[int, str | None]]:
    """The (device, gateway) pairs of the FIB entry an unmarked packet to
    address matches; [] where it has no route (unreachable, no IPv6)."""
    try:
        routes = ipr.route("get", dst=address, family=family, flags=RTM_F_FIB_MATCH)
    except NetlinkError:
        return []
    found: list[tuple[int, str | None]] = []
    for route in routes:
        if (oif := route.get_attr("RTA_OIF")) is not None:
            found.append((oif, route.get_attr("RTA_GATEWAY")))
        for hop in route.get_attr("RTA_MULTIPATH") or ():
            found.append((hop["oif"], hop.get_attr("RTA_GATEWAY")))
    return found


def _bridge_port(ipr: Any, bridge: int, family: int, gateway: str | None) -> int | None:
    """The bridge's port its forwarding database has the gateway's address
    behind; None when the neighbour or its entry is not known (yet)."""
    if gateway is None:
        return None
    macs = {
        neighbour.get_attr("NDA_LLADDR")
        for neighbour in ipr.get_neighbours(family=family, ifindex=bridge)
        if neighbour.get_attr("NDA_DST") == gateway
    } - {None}
    for entry in ipr.get_neighbours(family=AF_BRIDGE, master=bridge) if macs else ():
        if entry.get_attr("NDA_LLADDR") in macs and entry["ifindex"] != bridge:
            return int(entry["ifindex"])
    return None


def internet_links(ipr: Any) -> set[int]:
    """The devices an unmarked packet to the internet leaves by (module
    docstring), IPv4 and IPv6; empty when nothing routes there. A handful
    of netlink round trips (docs/benchmarks.md, "Where the internet goes")."""
    found: set[int] = set()
    kinds: dict[int, str] = {}
    for family, addresses in PROBES.items():
        for address in addresses:
            for device, gateway in _matched(ipr, family, address):
                if device not in kinds:
                    kinds[device] = _kind(ipr, device)
                port = (
                    _bridge_port(ipr, device, family, gateway)
                    if kinds[device] == "bridge"
                    else None
                )
                found.add(device if port is None else port)
    return found


def _kind(ipr: Any, index: int) -> str:
    """A device's IFLA_INFO_KIND ("" for a physical one, or gone)."""
    try:
        (link,) = ipr.link("get", index=index)
    except NetlinkError:
        return ""
    info = link.get_attr("IFLA_LINKINFO")
    return str(info.get_attr("IFLA_INFO_KIND") or "") if info is not None else ""


def off_link(crossed: Iterable[int], linked: Collection[str]) -> list[str]:
    """The names of the devices (ifindexes of the calling thread's namespace)
    among crossed whose traffic passes none of the linked devices: neither one
    of them nor a bridge one of them is a port of (an application's packet is
    counted on br0, the tree is on br0's port). One link dump, and only when a
    device is not linked itself."""
    names: list[str] = []
    for index in crossed:
        try:
            names.append(socket.if_indextoname(index))
        except OSError:
            continue  # gone since
    astray = sorted(name for name in names if name not in linked)
    if not astray:
        return []
    with IPRoute() as ipr:
        links = ipr.get_links()
    masters = {
        link.get_attr("IFLA_MASTER") for link in links if link.get_attr("IFLA_IFNAME") in linked
    }
    bridges = {link.get_attr("IFLA_IFNAME") for link in links if link["index"] in masters}
    return [name for name in astray if name not in bridges]
