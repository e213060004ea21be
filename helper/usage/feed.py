"""Bytes moved since the last tick, per (application, uid): the usage feed.

Pure logic, fed the same per-socket-owner counters the rate meter reads each
tick (exact to the wire, see docs/accounting.md). The kernel's counters are
monotonic per (owner, namespace, interface) and start from zero in every
helper (its maps are its own), so the difference since the last tick is what
moved; a helper restart neither counts a byte twice nor carries one over.

Attribution is the rate meter's (owner_of: a sample -> application and uid), so
usage and ListApplications agree. A counter that is not attributed yet is not
remembered: once its owner is known its whole count is taken, as the meter
takes it. A counter that went down (the map evicted and re-created the key)
counts from zero.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from chadthrottle.helper.engine.rates import LOOPBACK_IFINDEX, CounterSample

# The uid of processes whose user could not be read (they exited first).
UNKNOWN_UID = -1

Owner = tuple[str, int | None]  # (application id, uid or None)
OwnerOf = Callable[[CounterSample], Owner | None]  # whose a sample's bytes are (RateMeter.owner_of)
UsageKey = tuple[str, int]  # (application id, uid or UNKNOWN_UID)
# down, up, loopback down, loopback up: bytes
Counts = list[int]
_CounterKey = tuple[int, int, int, int]  # (owner tgid, owner start, netns cookie, ifindex)


class UsageFeed:
    """Turns monotonic counters into per-tick deltas per (application, uid)."""

    def __init__(self) -> None:
        self._last: dict[_CounterKey, tuple[int, int]] = {}

    def retire(
        self, final_samples: Iterable[CounterSample], owner_of: OwnerOf
    ) -> dict[UsageKey, Counts]:
        """The last bytes of exited processes (their final counters, which the
        datapath then removes). Call before the meter forgets whose they were."""
        moved: dict[UsageKey, Counts] = {}
        for sample in final_samples:
            key = (sample.owner_tgid, sample.owner_start, sample.netns_cookie, sample.ifindex)
            self._take(moved, sample, owner_of, self._last.pop(key, (0, 0)))
        return moved

    def update(self, samples: Iterable[CounterSample], owner_of: OwnerOf) -> dict[UsageKey, Counts]:
        """What the living processes moved since the last update. Only the
        counters seen now are remembered: memory follows the kernel's map."""
        moved: dict[UsageKey, Counts] = {}
        last, self._last = self._last, {}
        for sample in samples:
            key = (sample.owner_tgid, sample.owner_start, sample.netns_cookie, sample.ifindex)
            if self._take(moved, sample, owner_of, last.get(key, (0, 0))):
                self._last[key] = (sample.rx_bytes, sample.tx_bytes)
        return moved

    @staticmethod
    def _take(moved: dict[UsageKey, Counts], sample: CounterSample, owner_of: OwnerOf,
              before: tuple[int, int]) -> bool:  # fmt: skip
        """Add the sample's bytes since before to its owner; False if it has none yet."""
        owner = owner_of(sample)
        if owner is None:
            return False
        rx = sample.rx_bytes - before[0] if sample.rx_bytes >= before[0] else sample.rx_bytes
        tx = sample.tx_bytes - before[1] if sample.tx_bytes >= before[1] else sample.tx_bytes
        if rx or tx:
            app_id, uid = owner
            counts = moved.setdefault((app_id, UNKNOWN_UID if uid is None else uid), [0, 0, 0, 0])
            at = 2 if sample.ifindex == LOOPBACK_IFINDEX else 0
            counts[at] += rx
            counts[at + 1] += tx
        return True
