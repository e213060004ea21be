"""An application's open connections as the table and the detail pane show them.

One place for the wording ("→ 151.101.1.69:443 ESTABLISHED (tcp from 10.0.0.5:51234)")
and the order (established first), so the expanded row and the detail pane agree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from chadthrottle.contract import ConnectionInfo

# A rate needs two answers this far apart. The settings offer polls 0.5 s apart at
# the least; a config file may ask for 0.2 s (settings.py's floor), and then a
# new rate comes every other answer.
MIN_INTERVAL_S = 0.3
_STATE_ORDER = {"ESTABLISHED": 0, "SYN_SENT": 1, "LISTEN": 2, "UNCONN": 3}
# The helper counts TCP sockets' own bytes (tcp_info); UDP sockets have none.
NO_RATE_TOOLTIP = (
    "No byte counters for this socket (the kernel keeps none for UDP): see the application's rates."
)

ConnectionKey = tuple[str, str, str, int]
ConnectionSpeeds = dict[
    ConnectionKey, tuple["float | None", "float | None"]
]  # down, up; None: not known


def connection_key(connection: ConnectionInfo) -> ConnectionKey:
    """What identifies one socket across polls; its state may change."""
    return (connection.protocol, connection.local, connection.remote, connection.pid)


def interesting_first(connections: Iterable[ConnectionInfo]) -> list[ConnectionInfo]:
    """Most interesting first: established, then connecting, listening, the rest."""
    return sorted(
        connections,
        key=lambda c: (_STATE_ORDER.get(c.state, 9), c.protocol, c.remote, c.local, c.pid),
    )


class ConnectionRates:
    """Each socket's down/up rate from its byte counters' change between two
    answers; forgets sockets that are gone, so it holds only the current ones.

    Two answers closer than MIN_INTERVAL_S (a row just chosen is asked at once,
    then again with the next poll) give no new rate: over a few milliseconds a
    busy socket's counters may not move, and it read 0 B/s. The older answer
    stays the base and the rate shown last stays until one a poll apart comes.

    now is when the answer came from the helper (the IPC thread's clock), not
    when the GUI thread got to it: an answer that waited 0.25 s behind a
    repaint (a row just selected builds the detail pane) made the next
    interval 0.25 s short, and a connection under a 1 MB/s limit read 1.33 MB/s."""

    def __init__(self) -> None:
        self._last: dict[ConnectionKey, tuple[int, int, float]] = {}
        self._shown: ConnectionSpeeds = {}

    def update(self, connections: Sequence[ConnectionInfo], now: float) -> ConnectionSpeeds:
        rates: ConnectionSpeeds = {}
        seen: dict[ConnectionKey, tuple[int, int, float]] = {}
        for connection in connections:
            key = connection_key(connection)
            before = self._last.get(key)
            rates[key] = (None, None)
            seen[key] = (connection.rx_bytes, connection.tx_bytes, now)
            if before is not None and now - before[2] < MIN_INTERVAL_S:
                rates[key] = self._shown.get(key, (None, None))
                seen[key] = before  # too soon: measured from the older answer next time
            elif before is not None:
                seconds = now - before[2]
                rates[key] = (
                    _rate(before[0], connection.rx_bytes, seconds),
                    _rate(before[1], connection.tx_bytes, seconds),
                )
        self._last = seen
        self._shown = rates
        return rates

    def clear(self) -> None:
        self._last = {}
        self._shown = {}


def _rate(before: int, after: int, seconds: float) -> float | None:
    """None when uncounted, or when the counter went back (another socket reused the key)."""
    if before < 0 or after < before:
        return None
    return (after - before) / seconds


def connection_label(connection: ConnectionInfo) -> str:
    """Whom the connection talks to first, its own end last: a narrow name column
    (2x on 1366x768) cut "tcp 10.223.230.2:5636…" before the far end, and even
    "tcp → 10.223.230.1:61…"."""
    if connection.state == "LISTEN":
        return f"{connection.protocol} listening on {connection.local}"
    return (
        f"\u2192 {connection.remote} {connection.state}"
        f" ({connection.protocol} from {connection.local})"
    )


def fitted_connection_label(
    connection: ConnectionInfo, room: float, width: Callable[[str], float]
) -> str:
    """The label as it fits ``room`` (``width`` measures a text), its end (the
    far end of a connection, the own end of a listening socket) kept whole
    first: the label whole; else cut after that end ("→ 10.223.230.1:6100 EST…");
    else that end alone ("10.223.230.1:6100"); else its host cut in the middle,
    the port whole ("10.22…30.1:6100"). At 2x on 1366x768 an expanded row read
    "→ 10.242.131.1:6…", the port cut: the label cut at its end as Qt does."""
    label = connection_label(connection)
    if width(label) <= room:
        return label
    end = connection.local if connection.state == "LISTEN" else connection.remote
    lead = label[: label.index(end) + len(end)]
    for cut in range(len(label) - 1, len(lead) - 1, -1):  # the longest that fits
        shown = label[:cut].rstrip() + "…"
        if width(shown) <= room:
            return shown
    if width(end) <= room:
        return end
    host, colon, port = end.rpartition(":")
    tail = colon + port
    for keep in range(len(host) - 1, 1, -1):  # as much of the host as fits, from both ends
        shown = f"{host[: (keep + 1) // 2]}…{host[len(host) - keep // 2 :]}{tail}"
        if width(shown) <= room:
            return shown
    return f"…{tail}"


def connection_tooltip(connection: ConnectionInfo) -> str:
    if connection.rx_bytes < 0:
        return f"{connection_label(connection)}\npid {connection.pid}\n{NO_RATE_TOOLTIP}"
    return (
        f"{connection_label(connection)}\npid {connection.pid}\n"
        f"{connection.rx_bytes:,} bytes received, {connection.tx_bytes:,} sent (TCP payload)"
    )
