"""The devices of the helper's namespace each application's sockets moved
bytes through lately, from the datapath's counters (kept per socket owner and
interface): where a priority must be in force. An application's packet
counted on a device the link tree is not on (a VPN's device when the
internet goes elsewhere, the physical uplink when the internet goes by a
VPN's: the local network, a route that bypasses the VPN) is in no class of
that tree, so its priority is not in force there (link_plan.priority_problem
says so)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from chadthrottle.contract import Direction
from chadthrottle.helper.engine.rates import LOOPBACK_IFINDEX
from chadthrottle.helper.kernel.layout import CounterSample

SEEN_S = 5.0  # a device crossed this long ago no longer counts


class DevicesCrossed:
    """(app id, uid) -> ifindex -> when its bytes last grew there (engine
    ticks): per user, since other users' sockets are not a viewer's to read."""

    def __init__(self, seen_s: float = SEEN_S) -> None:
        self._seen_s = seen_s
        self._totals: dict[tuple[int, int, int], int] = {}  # (tgid, start, ifindex) -> bytes
        self._seen: dict[tuple[str, int | None], dict[int, float]] = {}

    def note(
        self,
        samples: Iterable[CounterSample],
        owner_of: Callable[[CounterSample], tuple[str, int | None] | None],
        netns_cookie: int,
        now: float,
    ) -> None:
        """One tick's counters; only those of netns_cookie (the helper's,
        where the link tree is), loopback aside."""
        totals: dict[tuple[int, int, int], int] = {}
        for sample in samples:
            if sample.netns_cookie != netns_cookie or sample.ifindex == LOOPBACK_IFINDEX:
                continue
            key = (sample.owner_tgid, sample.owner_start, sample.ifindex)
            totals[key] = sample.rx_bytes + sample.tx_bytes
            owner = owner_of(sample)
            if owner is not None and totals[key] > self._totals.get(key, 0):
                self._seen.setdefault(owner, {})[sample.ifindex] = now
        self._totals = totals
        for app_user in list(self._seen):
            devices = self._seen[app_user]
            for index in [i for i, at in devices.items() if now - at > self._seen_s]:
                del devices[index]
            if not devices:
                del self._seen[app_user]

    def of(self, app_id: str, uid: int | None = None) -> set[int]:
        """The ifindexes its bytes crossed within SEEN_S of the last tick
        (uid: those of that user's processes only; None: everyone's)."""
        return {index for (app, owner), devices in self._seen.items()
                if app == app_id and (uid is None or owner == uid) for index in devices}  # fmt: skip


class ForwardedClassed:
    """Per slot, the directions in which the uplinks' hooks classed its
    forwarded packets (sockets of another namespace, a container's, routed
    out of the helper's: bpf/datapath.c) within SEEN_S, from the kernel's
    counts: an application's priority in another namespace is said in force
    there only in a direction the kernel classes its packets."""

    def __init__(self, seen_s: float = SEEN_S) -> None:
        self._seen_s = seen_s
        self._counts: dict[int, tuple[int, int]] = {}
        self._grew: dict[tuple[int, Direction], float] = {}

    def note(self, counts: Mapping[int, tuple[int, int]], now: float) -> None:
        """One tick's counts (monotonic: (upload, download) packets per slot).
        A slot's first counts (it had none the tick before: a priority set
        again, a slot another application had) are where it starts from."""
        for slot, (up, down) in counts.items():
            if slot not in self._counts:
                continue
            was_up, was_down = self._counts[slot]
            if up > was_up:
                self._grew[(slot, Direction.UP)] = now
            if down > was_down:
                self._grew[(slot, Direction.DOWN)] = now
        self._counts = dict(counts)
        for key in [k for k, at in self._grew.items() if now - at > self._seen_s]:
            del self._grew[key]

    def of(self, slots: Iterable[int]) -> frozenset[Direction]:
        """The directions classed lately for any of slots."""
        wanted = set(slots)
        return frozenset(direction for slot, direction in self._grew if slot in wanted)
