"""What ListConnections, ListProcesses and ListInterfaces show: read from the kernel at the
call (sockets from /proc and socket diagnostics, interface names from each
network namespace), outside the engine lock, on the pids and counters the
engine hands over."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from chadthrottle.contract import ConnectionInfo, Direction, InterfaceInfo, ProcessTraffic
from chadthrottle.helper.engine.ports import NamespacePort
from chadthrottle.helper.engine.rates import LOOPBACK_IFINDEX, AppTraffic, InterfaceKey
from chadthrottle.helper.identity.connections import connections_of
from chadthrottle.helper.identity.escaping import escape_os_name
from chadthrottle.helper.kernel.socket_diag import UNKNOWN_BYTES, tcp_bytes_by_namespace


def connection_rows(pids: Iterable[int]) -> list[ConnectionInfo]:
    """The connections of these processes, with TCP byte counts where the
    kernel tells them (UNKNOWN_BYTES where it does not)."""
    connections = connections_of(pids)
    counters = tcp_bytes_by_namespace({c.reader for c in connections if c.protocol == "tcp"})
    unknown = (UNKNOWN_BYTES, UNKNOWN_BYTES)
    return [
        ConnectionInfo(
            c.protocol,
            c.local,
            c.remote,
            c.state,
            c.pid,
            *counters.get((c.reader, c.inode), unknown),
        )
        for c in connections
    ]


def process_rows(
    names: Mapping[int, str], traffic: Mapping[int, AppTraffic]
) -> list[ProcessTraffic]:
    """names: pid -> comm (as read from /proc); traffic: pid -> its counts.
    By pid; a process with no counters yet moved nothing."""
    rows = []
    for pid in sorted(names):
        counted = traffic.get(pid) or AppTraffic()
        rows.append(
            ProcessTraffic(
                pid,
                escape_os_name(names[pid]),
                counted.down_bps,
                counted.up_bps,
                counted.rx_bytes,
                counted.tx_bytes,
                counted.loopback_down_bps,
                counted.loopback_up_bps,
                Direction.DOWN in counted.measuring,
                Direction.UP in counted.measuring,
            )
        )
    return rows


def interface_rows(
    interfaces: Mapping[InterfaceKey, AppTraffic], namespaces: NamespacePort
) -> list[InterfaceInfo]:
    """interfaces: (netns cookie, ifindex) -> what it moved. Named in their
    namespaces (entered here: call without the engine lock); the helper's own
    namespace first."""
    views = namespaces.views({cookie for cookie, _ in interfaces})
    listed = [
        InterfaceInfo(
            name=views[cookie].interface_names.get(ifindex, ""),
            ifindex=ifindex,
            loopback=ifindex == LOOPBACK_IFINDEX,
            rx_bytes=traffic.rx_bytes,
            tx_bytes=traffic.tx_bytes,
            down_bps=traffic.down_bps,
            up_bps=traffic.up_bps,
            netns=views[cookie].label,
        )
        for (cookie, ifindex), traffic in interfaces.items()
    ]
    return sorted(listed, key=lambda i: (i.netns != "", i.netns, i.ifindex))
