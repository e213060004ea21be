"""Per-application rates from the kernel's monotonic per-process counters.

Pure logic: fed TrafficSamples and the pid -> application mapping each tick.
The mapping of a process is remembered after it exits, so the bytes of
short-lived processes still count for their application.
"""

from __future__ import annotations

from collections import defaultdict
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


class RateMeter:
    def __init__(self) -> None:
        self._app_of_tgid: dict[int, str] = {}
        self._previous: dict[str, AppTraffic] = {}
        self._previous_time: float | None = None
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
        elapsed = None if self._previous_time is None else now - self._previous_time
        for app_id, traffic in totals.items():
            before = self._previous.get(app_id)
            if before is not None and elapsed and elapsed > 0:
                # counters may shrink when the LRU map evicts a key: never negative
                traffic.down_bps = max(0, traffic.rx_bytes - before.rx_bytes) / elapsed
                traffic.up_bps = max(0, traffic.tx_bytes - before.tx_bytes) / elapsed
        self._previous = {app_id: AppTraffic(t.rx_bytes, t.tx_bytes) for app_id, t in totals.items()}
        self._previous_time = now
        self.apps = dict(totals)
