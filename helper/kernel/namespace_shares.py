"""One limit divided between the network namespaces where an application has
processes, following what each one uses (docs/backends.md, "One limit over
several namespaces").

HTB lends a class's unused rate only inside its own tree, and every
namespace has a tree of its own (mirred redirects only to a device of the
packet's namespace). With a class at the whole limit in each, only the guard
held the sum, first come first served: one namespace's downloads got nothing
while the other's were busy. So each namespace's class gets a share of the
limit instead, re-measured every tick from what the class let through:

- a namespace whose class passed HUNGRY of its share or more wants more: the
  namespaces that want more get equal shares of what the others are given
  (max-min fair, as HTB would share one tree between its children);
- one that passed less is given HEADROOM times what it used, to grow into; if
  it grows past HUNGRY of that, it wants more at the next tick;
- none gets less than FLOOR of the limit: a namespace that starts must be
  able to show it wants more;
- a namespace not measured yet wants more (its processes are new there);
- a demand is the most of the last MEMORY_WINDOWS reads: one read of a
  connection that paused for a moment, or of a tick that came late, does not
  take its share away.

The shares add up to the limit, never more: where they added up to more (a
floor or the headroom on top), the guard (the policer, which holds the sum of
every path) cut the sum first come first served, and a namespace at its
floor beside a busy one got less than its floor, never looked hungry, and
stayed there (bench/namespace_share.py: 0.02-0.08 of a 300 KB/s upload limit
for 9 s). The price: an idle namespace's floor and a light one's headroom
are left unused. Pure: fed the bytes each namespace's class passed, and the time.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from chadthrottle.contract import NAMESPACE_FLOOR

K = TypeVar("K", bound=Hashable)  # a namespace
Key = TypeVar("Key", bound=Hashable)  # what is divided: (direction, slot)

HUNGRY = 0.85  # a class that passed this much of its share or more wants more
HEADROOM = 1.4  # one that wants no more is given this many times what it used
FLOOR = NAMESPACE_FLOOR  # of the limit: no namespace's class gets less
SETTLE = 0.03  # of the limit: shares that would move by less stay (no tc change each tick)
MIN_WINDOW_S = 0.4  # bytes are re-read after at least this long (reconciles can come faster)
MEMORY_WINDOWS = 2  # a demand is the most of this many reads (a tick each)

Demand = float | None  # what a namespace used, as a share of the limit; None: it wants more


def fair_level(demands: Mapping[K, Demand]) -> tuple[float, float]:
    """(level, spare): max-min fair division of the limit (1.0). The level is
    what each namespace that wants more than it gets (a demand None or above
    the level) is given; if every demand fits, the level is 1.0 and spare is
    what is left over, per namespace."""
    remaining, count = 1.0, len(demands)
    for demand in sorted(d for d in demands.values() if d is not None):
        if demand > remaining / count:
            return remaining / count, 0.0
        remaining, count = remaining - demand, count - 1
    if count:  # those that want more share what the others leave
        return remaining / count, 0.0
    return 1.0, remaining / len(demands) if demands else 0.0


def shares_of(demands: Mapping[K, Demand]) -> dict[K, float]:
    """Each namespace's class rate, as a share of the limit; they add up to it."""
    wants = {k: None if d is None else max(FLOOR, d * HEADROOM) for k, d in demands.items()}
    level, spare = fair_level(wants)
    return {
        k: level if want is None or want >= level else want + spare for k, want in wants.items()
    }


def demand_of(rate_bps: float, share_bps: float, limit_bps: int) -> Demand:
    """What a namespace's class passed (rate_bps, over a window in which its
    rate was share_bps), as a demand: None if it used (nearly) all of it."""
    if rate_bps >= HUNGRY * share_bps:
        return None
    return rate_bps / limit_bps


@dataclass
class _Split(Generic[K]):
    limit_bps: int = 0  # the limit the shares were last applied to
    read_at: float = float("-inf")
    passed: dict[K, int] = field(default_factory=dict)  # bytes through each class so far
    demands: dict[K, list[Demand]] = field(default_factory=dict)  # the last reads ([]: none yet)
    shares: dict[K, float] = field(default_factory=dict)


class NamespaceShares(Generic[Key, K]):
    """The shares of every divided limit (a direction of one application's
    limit whose processes are in several namespaces), kept between ticks."""

    def __init__(self, min_window_s: float = MIN_WINDOW_S) -> None:
        self._min_window_s = min_window_s
        self._splits: dict[Key, _Split[K]] = {}

    def due(self, now: float, keys: Collection[Key]) -> bool:
        """Whether the bytes should be read now (and given to measure): a
        limit is new, or one's window is over, or one is no longer divided."""
        return set(keys) != set(self._splits) or any(
            now - split.read_at >= self._min_window_s for split in self._splits.values()
        )

    def measure(self, now: float, passed: Mapping[Key, Mapping[K, int]]) -> None:
        """Each divided limit's bytes through each namespace's class so far:
        its demands from its window since its last read (a limit read
        sooner than MIN_WINDOW_S is left for the next). A limit not given is forgotten; a class whose
        count went back (made again) or a new namespace is not measured yet."""
        self._splits = {key: self._splits.get(key) or _Split() for key in passed}
        for key, counts in passed.items():
            split = self._splits[key]
            elapsed = now - split.read_at
            if elapsed < self._min_window_s:
                continue  # a namespace new to it stays unmeasured till then
            demands: dict[K, list[Demand]] = {}
            for namespace, count in counts.items():
                before = split.passed.get(namespace)
                share = split.shares.get(namespace)
                if before is None or share is None or count < before:
                    demands[namespace] = []  # not measured yet
                    continue
                rate = (count - before) / elapsed
                demand = demand_of(rate, share * split.limit_bps, split.limit_bps)
                recent = split.demands.get(namespace, [])[-(MEMORY_WINDOWS - 1) :]
                demands[namespace] = [*recent, demand]
            split.read_at, split.passed, split.demands = now, dict(counts), demands

    def shares(self, key: Key, limit_bps: int, namespaces: Collection[K]) -> dict[K, int]:
        """The class rate of each namespace for this limit now. Shares that
        would all move by less than SETTLE stay as they are."""
        split = self._splits.setdefault(key, _Split())
        wanted = shares_of({n: _most(split.demands.get(n, [])) for n in namespaces})
        if set(wanted) != set(split.shares) or any(
            abs(share - split.shares[n]) >= SETTLE for n, share in wanted.items()
        ):
            split.shares = wanted
        split.limit_bps = limit_bps
        return {n: max(1, round(share * limit_bps)) for n, share in split.shares.items()}


def _most(demands: list[Demand]) -> Demand:
    """The largest of a namespace's recent demands; None if it wanted more in
    any of them, or was not measured yet."""
    return None if not demands or None in demands else max(d for d in demands if d is not None)
