"""An application's open connections as the table and the detail pane show them.

One place for the wording ("tcp 10.0.0.5:51234 → 151.101.1.69:443 ESTABLISHED")
and the order (established first), so the expanded row and the detail pane agree.
"""

from __future__ import annotations

from collections.abc import Iterable

from chadthrottle.contract import ConnectionInfo

_STATE_ORDER = {"ESTABLISHED": 0, "SYN_SENT": 1, "LISTEN": 2, "UNCONN": 3}
# Rates are counted per socket owner (process), not per socket: say so where a
# connection's rate would be.
NO_RATE_TOOLTIP = "Rates are measured per application, not per connection."

ConnectionKey = tuple[str, str, str, int]


def connection_key(connection: ConnectionInfo) -> ConnectionKey:
    """What identifies one socket across polls; its state may change."""
    return (connection.protocol, connection.local, connection.remote, connection.pid)


def interesting_first(connections: Iterable[ConnectionInfo]) -> list[ConnectionInfo]:
    """Most interesting first: established, then connecting, listening, the rest."""
    return sorted(connections, key=lambda c: (_STATE_ORDER.get(c.state, 9), c.protocol, c.remote, c.local, c.pid))


def connection_label(connection: ConnectionInfo) -> str:
    if connection.state == "LISTEN":
        return f"{connection.protocol} listening on {connection.local}"
    return f"{connection.protocol} {connection.local} \u2192 {connection.remote} {connection.state}"


def connection_tooltip(connection: ConnectionInfo) -> str:
    return f"{connection_label(connection)}\npid {connection.pid}\n{NO_RATE_TOOLTIP}"
