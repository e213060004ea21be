"""The ebpf backend: limits enforced by the cgroup_skb programs themselves.

No qdisc, no device: each limited slot and direction gets an entry in the
policers array (bpf/policer.h) and the egress/ingress programs police its
packets against a virtual clock. The interface is the tc shaper's
(reconcile / close / active_directions), so the engine can use either, or one
per direction.

Sizing (measured, see bench/policer_probe.py and docs/backends.md):
- the virtual queue may grow to the limit's burst, but never below
  MIN_BUCKET_BYTES nor MIN_BUCKET_S of the rate: GSO hands the programs 64 KB
  super-packets, and a bucket that holds only a few of them turns every burst
  of a TCP window into refusals;
- packets are marked (CE where ECN-capable, congestion notice on egress) once
  the virtual queue is MARK_SHARE of the burst deep, so TCP backs off before
  the bucket is empty.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

from chadthrottle.contract import POLICER_MIN_BUCKET_BYTES, POLICER_MIN_BUCKET_S, Direction
from chadthrottle.helper.kernel.htb import Classes, ClassSpec
from chadthrottle.helper.kernel.layout import POLICE_DOWN, POLICE_UP, SlotPolicer, policer_key

log = logging.getLogger("chadthrottle.kernel.policer")

NSEC_PER_SEC = 1_000_000_000
# above the contract's MIN_BURST_BYTES: see the docstring (SetLimit's description says them)
MIN_BUCKET_BYTES, MIN_BUCKET_S = POLICER_MIN_BUCKET_BYTES, POLICER_MIN_BUCKET_S
MARK_SHARE = 0.5
_POLICE_DIRECTION = {Direction.UP: POLICE_UP, Direction.DOWN: POLICE_DOWN}


class PolicerTable(Protocol):
    """The policers array of the loaded datapath."""

    def read_policer(self, key: int) -> SlotPolicer: ...
    def write_policer(self, key: int, state: SlotPolicer) -> None: ...


def burst_ns(spec: ClassSpec) -> int:
    """How far ahead of now the slot's virtual clock may run."""
    burst_bytes = max(spec.burst_bytes, MIN_BUCKET_BYTES, int(spec.rate_bps * MIN_BUCKET_S))
    return int(burst_bytes * NSEC_PER_SEC // spec.rate_bps)


def configured(
    state: SlotPolicer, spec: ClassSpec | None, now_ns: int | None = None
) -> SlotPolicer:
    """state with a new limit (None: inactive); clock and counters carry over.
    A raised limit keeps its virtual queue in bytes, not in time: kept in
    time, the queue of a 300 KiB/s guard (0.42-0.46 s) was more than the whole
    burst of 10 MiB/s (0.3 s), so the programs dropped what came next and the
    sender stalled for 0.35 s (docs/benchmarks.md, "Raising a limit").
    now_ns: CLOCK_MONOTONIC, as the programs' bpf_ktime_get_ns."""
    new = SlotPolicer.from_buffer_copy(bytes(state))
    new.lock = 0
    if spec is None:
        new.active, new.rate_bps, new.burst_ns, new.mark_ns = 0, 0, 0, 0
        return new
    now = time.monotonic_ns() if now_ns is None else now_ns
    if state.active and 0 < state.rate_bps < spec.rate_bps and state.virtual_time_ns > now:
        queued_ns = (state.virtual_time_ns - now) * state.rate_bps // spec.rate_bps
        new.virtual_time_ns, new.virtual_rem = now + queued_ns, 0
    new.active = 1
    new.rate_bps = spec.rate_bps
    new.burst_ns = burst_ns(spec)
    new.mark_ns = int(new.burst_ns * MARK_SHARE)
    return new


class EbpfPolicer:
    queues = False  # a packet over the limit is refused or dropped

    def __init__(self, table: PolicerTable) -> None:
        self._table = table
        self._active: dict[Direction, Classes] = {Direction.UP: {}, Direction.DOWN: {}}

    def active_directions(self) -> set[Direction]:
        return {direction for direction, classes in self._active.items() if classes}

    def reconcile(self, wanted: dict[Direction, Classes]) -> None:
        """Make the policers array hold exactly the wanted limits. A limit that
        goes away stops at once: there is no queue to drain."""
        for direction, active in self._active.items():
            want = wanted.get(direction, {})
            for slot in set(active) - set(want):
                self._write(slot, direction, None)
                del active[slot]
            for slot, spec in want.items():
                if active.get(slot) != spec:
                    self._write(slot, direction, spec)
                    active[slot] = spec

    def sent_bytes(self, direction: Direction) -> dict[int, int]:
        """L3 bytes each policed slot's traffic of a direction was let through,
        as the tc shaper's output: the cgroup counters also hold the slot's
        pure ACKs, which pass the policer uncharged (docs/backends.md, "A
        limited upload leaves the application's downloads alone"), and beside
        a fast transfer the other way they read as a limit not met."""
        police = _POLICE_DIRECTION[direction]
        return {
            slot: self._table.read_policer(policer_key(slot, police)).passed_bytes
            for slot in self._active[direction]
        }

    def enforcement_gaps(self) -> dict[Direction, list[str]]:
        """None known: the cgroup programs see every socket of the machine,
        whatever device or namespace its packets take."""
        return {}

    def close(self) -> None:
        self.reconcile({})

    def _write(self, slot: int, direction: Direction, spec: ClassSpec | None) -> None:
        key = policer_key(slot, _POLICE_DIRECTION[direction])
        self._table.write_policer(key, configured(self._table.read_policer(key), spec))
        if spec is None:
            log.info("policer %s slot %d off", direction.value, slot)
        else:
            log.info(
                "policer %s slot %d: %d B/s, burst %d ns",
                direction.value,
                slot,
                spec.rate_bps,
                burst_ns(spec),
            )
