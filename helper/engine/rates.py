"""Per-application rates from the kernel's monotonic per-process counters.

Pure logic: fed TrafficSamples and the pid -> application mapping each tick.
The mapping of a process is remembered after it exits, so the bytes of
short-lived processes still count for their application.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol


@dataclass
class AppTraffic:
    rx_bytes: int = 0
    tx_bytes: int = 0
    down_bps: float = 0.0
    up_bps: float = 0.0


class CounterSample(Protocol):
    """Monotonic byte counters of one socket owner (datapath.TrafficSample)."""

    @property
    def owner_tgid(self) -> int: ...
    @property
    def rx_bytes(self) -> int: ...
    @property
    def tx_bytes(self) -> int: ...


# Rates are averaged over this many ticks: a TCP sender held back by a limit
# sends in bursts, and a one-second window shows those bursts, not its rate.
RATE_WINDOW_TICKS = 2


class RateMeter:
    def __init__(self, window_ticks: int = RATE_WINDOW_TICKS) -> None:
        self._app_of_tgid: dict[int, str] = {}
        self._history: deque[tuple[float, dict[str, AppTraffic]]] = deque(maxlen=window_ticks + 1)
        self.apps: dict[str, AppTraffic] = {}

    def remember(self, tgid: int, app_id: str) -> None:
        self._app_of_tgid[tgid] = app_id

    def update(self, samples: Iterable[CounterSample], now: float) -> None:
        totals: dict[str, AppTraffic] = defaultdict(AppTraffic)
        for sample in samples:
            app_id = self._app_of_tgid.get(sample.owner_tgid)
            if app_id is None:
                continue  # owner unknown (0) or never seen alive
            traffic = totals[app_id]
            traffic.rx_bytes += sample.rx_bytes
            traffic.tx_bytes += sample.tx_bytes
        for app_id, traffic in totals.items():
            # the oldest sample in the window that knew the application
            past = next(((t, apps[app_id]) for t, apps in self._history if app_id in apps), None)
            if past is None or now <= past[0]:
                continue
            elapsed = now - past[0]
            # counters may shrink when the LRU map evicts a key: never negative
            traffic.down_bps = max(0, traffic.rx_bytes - past[1].rx_bytes) / elapsed
            traffic.up_bps = max(0, traffic.tx_bytes - past[1].tx_bytes) / elapsed
        self._history.append((now, {app_id: AppTraffic(t.rx_bytes, t.tx_bytes) for app_id, t in totals.items()}))
        self.apps = dict(totals)
