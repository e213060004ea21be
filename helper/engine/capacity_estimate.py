"""Estimating the link's capacity from the traffic itself (issue 16).

The shaper holds all traffic just under the capacity (priority_classes.
SHAPE_SHARE), so the queue forms here and not in the modem. Set too high,
the modem's queue fills again (bufferbloat) and priorities stop working;
set too low, the link is wasted. A modem's rate changes (DSL resyncs, busy
cable segments, mobile links), so the helper can follow it, the way
cake-autorate does, from two things it sees each tick:

- the bytes through the uplinks per direction (what was achieved), and
- a delay signal: how far the round trip of the busy TCP connections has
  risen above each connection's own minimum (path_delay.py says how and
  why this signal was chosen).

Each tick:

- the delay rose above RISE_S (plus NOISE_SHARE of our own queue's
  wait): a queue fills beyond the shaper. If a
  direction was raised within SUSPECT_S (a probe), the probe failed: that
  raise is taken back, to BACK_SHARE of where it started (and no more
  than CUT_SHARE of what passed, at the shaping share), and the direction
  is not probed for PAUSE_S. Otherwise the link itself slowed: every
  direction carrying bulk traffic (at least BULK_SHARE of the busier
  direction's rate: the other direction's acknowledgements are a few
  percent of it) is cut to CUT_SHARE of what passed (DEEP_CUT_SHARE for a
  rise beyond DEEP_RISE_S), but at most to MAX_CUT_SHARE of its capacity
  a time, so the modem's queue drains; no new cut for
  REFRACTORY_S while the round trips catch up;
- the delay stayed low: one loaded direction (LOADED_SHARE of its
  shaping rate passed) is raised, the one raised longer ago, by a step
  that grows with raises in a row (RAISE_STEPS), but by NEAR_STEP only
  where it would reach the capacity a probe last failed at: the link's
  rate is just under it, and a small overshoot fills the modem's queue
  slowly enough to be seen before a call notices (measured: without it
  each failed probe put 100 ms in the modem's queue, the call's p99);
- no busy TCP connection, or no traffic: hold. No load, no information.

Why one direction at a time: the delay signal is one for the whole path
(a round trip crosses both queues, and a download's acknowledgements go
up), so a rise is blamed on the probe that came before it. Measured
without this (both raised each second, both cut on a rise): every
overshoot of the upload cut the download too, and its estimate sank to
a third of the link. Neither the rate nor our own queue tells the
culprit: a 2% overshoot fills a 400 ms queue in 20 s, invisible in a
tick's rate, and a full upload queue starves the download's
acknowledgements, so the innocent download's queue here empties too.

Bounds: never below floor_bps, never above the ceiling (the NIC's speed
when it is known, else MAX_RATE_BPS). Without a starting value a
direction is not shaped until the first rise under load tells its rate.
Pure logic, tested with synthetic samples; rates are L3 bytes/s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from chadthrottle.contract import MAX_RATE_BPS, Direction
from chadthrottle.helper.kernel.priority_classes import SHAPE_SHARE

RISE_S = 0.010  # a queue this deep (beyond each path's minimum) is bufferbloat
DEEP_RISE_S = 0.2  # beyond this, cut deeper: a queue this full takes seconds to drain at CUT_SHARE
CUT_SHARE = (
    0.85  # of the achieved rate: the queue drains at 1 - CUT_SHARE x SHAPE_SHARE of the link
)
DEEP_CUT_SHARE = 0.7
MAX_CUT_SHARE = (
    0.5  # one cut keeps at least this share of the capacity: 20 -> 10 Mbit/s in one, 20 -> 5 in two
)
NOISE_SHARE = (
    0.1  # of our own queue's wait, added to RISE_S: the wait is subtracted from smoothed round
)
# trips at one instant, and errs in proportion (at the floor a leaf holds seconds: measured, an estimate that
# fell there after a stall saw a "rise" every tick and never came back)
RAISE_STEPS = (
    1.05,
    1.10,
    1.20,
)  # raises in a row grow the step (10 -> 20 Mbit/s in 5 ticks); 1.4 overshot by 40%
FORGET_FAILED_S = (
    10.0  # small steps near a failed probe for this long, then the link may have changed
)
NEAR_STEP = 1.02  # the step towards where a probe last failed: a 2% overshoot fills a queue slowly, seen early
EMPTY_WAIT_S = (
    0.001  # our queue this short while the direction is loaded: the bottleneck is past us
)
PROBE_GAP_S = 1.0  # between two raises (of either direction): one a tick
BACK_SHARE = (
    0.95  # a failed probe goes back to this share of where it started, so the queue it made drains
)
LOADED_SHARE = 0.8  # of the shaping rate: the direction is loaded
BULK_SHARE = (
    0.25  # of the busier direction's rate: this direction carries bulk, not acknowledgements
)
SUSPECT_S = 3.0  # a rise this soon after raises: they (probes) failed; the round trips show a queue 1-2 s late
PAUSE_S = 3.0  # no probe of a direction this long after its probe failed
REFRACTORY_S = 2.0  # after a cut (of either direction), the round trips need this long to show the queue drained
FLOOR_BPS = 32_000  # 256 kbit/s: below it nothing interactive works anyway
MIN_TRAFFIC_BPS = 8_000  # less than this through a direction tells nothing about its capacity


@dataclass(frozen=True)
class Sample:
    """One tick's observation. delay_s: the path's queueing delay now
    (None: no busy TCP connection to read it from)."""

    seconds: float
    bytes: Mapping[Direction, int]  # L3 bytes through the uplinks in those seconds
    delay_s: float | None
    local_wait_s: Mapping[Direction, float] = field(
        default_factory=dict
    )  # in our shaper's queue now (absent: unknown)


@dataclass
class _Direction:
    capacity: int | None  # L3 bytes/s; None: not known (not shaped)
    ceiling: int
    since_cut_s: float = float("inf")
    since_raise_s: float = float("inf")
    recent: list[tuple[float, int]] = field(
        default_factory=list
    )  # raises within SUSPECT_S: (age s, capacity before)
    streak: int = 0  # raises in a row without a rise
    failed_at: int | None = None  # the capacity a probe last failed at, until one passes above it
    since_failed_s: float = 0.0


@dataclass
class CapacityEstimator:
    """Follows each direction's capacity; update() once a tick."""

    start: Mapping[Direction, int | None]
    ceilings: Mapping[Direction, int | None] = field(default_factory=dict)
    floor_bps: int = FLOOR_BPS

    def __post_init__(self) -> None:
        if self.floor_bps <= 0:
            raise ValueError(f"floor_bps must be positive, not {self.floor_bps}")
        self._state: dict[Direction, _Direction] = {}
        for direction in Direction:
            ceiling = min(self.ceilings.get(direction) or MAX_RATE_BPS, MAX_RATE_BPS)
            start = self.start.get(direction) or None
            self._state[direction] = _Direction(
                None if start is None else self._bound(start, ceiling), ceiling
            )

    def capacity(self, direction: Direction) -> int | None:
        return self._state[direction].capacity

    def update(self, sample: Sample) -> dict[Direction, int | None]:
        """The capacities after this tick; a bad sample changes nothing."""
        if not sample.seconds > 0 or any(value < 0 for value in sample.bytes.values()):
            return self.capacities()
        achieved = {
            direction: sample.bytes.get(direction, 0) / sample.seconds for direction in Direction
        }
        delay = (
            sample.delay_s
            if sample.delay_s is not None and sample.delay_s == sample.delay_s
            else None
        )  # NaN
        for state in self._state.values():
            state.since_cut_s += sample.seconds
            state.since_raise_s += sample.seconds
            state.since_failed_s += sample.seconds
            if state.since_failed_s > FORGET_FAILED_S:
                state.failed_at = None  # the link may be faster by now
            state.recent = [
                (age + sample.seconds, before)
                for age, before in state.recent
                if age + sample.seconds <= SUSPECT_S
            ]
        if delay is None:
            return self.capacities()  # nothing to judge the queue by: hold
        busiest = max(achieved.values())
        active = {
            d: s
            for d, s in self._state.items()
            if achieved[d] >= max(MIN_TRAFFIC_BPS, BULK_SHARE * busiest)
        }
        if delay > RISE_S + NOISE_SHARE * max(sample.local_wait_s.values(), default=0.0):
            self._rise(active, achieved, delay)
        elif not self._past_us(active, achieved, sample.local_wait_s):
            self._probe(active, achieved)
        return self.capacities()

    def capacities(self) -> dict[Direction, int | None]:
        return {direction: state.capacity for direction, state in self._state.items()}

    def _rise(
        self, active: dict[Direction, _Direction], achieved: dict[Direction, float], delay: float
    ) -> None:
        """A queue beyond the shaper: take back the last raise that can have
        made it, else (once the last cut had time to drain) cut what carries bulk."""
        probed = {d: s for d, s in self._state.items() if s.recent}
        for (
            direction,
            state,
        ) in probed.items():  # with two suspects, neither is known to be the culprit
            self._take_back(
                direction, state, achieved if direction in active else {}, known=len(probed) == 1
            )
        if not probed and min(s.since_cut_s for s in self._state.values()) >= REFRACTORY_S:
            for direction, state in active.items():
                self._cut(state, achieved[direction], delay)

    def _past_us(self, active: dict[Direction, _Direction], achieved: dict[Direction, float],
                 waits: Mapping[Direction, float]) -> bool:  # fmt: skip
        """A loaded direction just raised whose queue here ran empty: its probe
        went past the modem's rate (seen a tick or two before the round trips
        rise); taken back as a failed probe. True if one was."""
        past = {d: s for d, s in active.items() if s.recent and s.capacity is not None and d in waits
                and waits[d] < EMPTY_WAIT_S and achieved[d] >= LOADED_SHARE * s.capacity * SHAPE_SHARE}  # fmt: skip
        for direction, state in past.items():
            self._take_back(direction, state, achieved)
        return bool(past)

    def _probe(self, active: dict[Direction, _Direction], achieved: dict[Direction, float]) -> None:
        """Raise one loaded direction (the one raised longer ago), PROBE_GAP_S after any raise."""
        if (
            min(s.since_raise_s for s in self._state.values()) < PROBE_GAP_S * 0.9
        ):  # a tick comes a little early
            return
        loaded = [s for d, s in active.items() if s.capacity is not None and s.since_raise_s >= 0
                  and achieved[d] >= LOADED_SHARE * s.capacity * SHAPE_SHARE]  # fmt: skip
        if not loaded:
            return
        state = max(loaded, key=lambda s: s.since_raise_s)
        step = RAISE_STEPS[min(state.streak, len(RAISE_STEPS) - 1)]
        if state.failed_at is not None and state.capacity >= state.failed_at:  # type: ignore[operator]
            state.failed_at = None  # passed above it: the link is faster now
        if state.failed_at is not None and state.capacity * step >= state.failed_at:  # type: ignore[operator]
            step = min(step, NEAR_STEP)
        state.recent.append((0.0, state.capacity))  # type: ignore[arg-type]
        state.capacity = self._bound(int(state.capacity * step), state.ceiling)  # type: ignore[operator]
        state.since_raise_s, state.streak = 0.0, state.streak + 1

    def _take_back(self, direction: Direction, state: _Direction, achieved: Mapping[Direction, float],
                   known: bool = True) -> None:  # fmt: skip
        """A failed probe: back under where it started (and under what passed);
        known: it surely failed, so the next probes near it go in small steps."""
        back = int(state.recent[-1][1] * BACK_SHARE)
        if direction in achieved:
            back = min(back, int(achieved[direction] * CUT_SHARE / SHAPE_SHARE))
        if known:
            state.failed_at, state.since_failed_s = state.capacity, 0.0
        state.capacity, state.recent, state.streak = self._bound(back, state.ceiling), [], 1
        state.since_cut_s, state.since_raise_s = 0.0, -PAUSE_S

    def _cut(self, state: _Direction, achieved: float, delay_s: float) -> None:
        """Shape at a share of what passed, so the queue beyond drains."""
        share = DEEP_CUT_SHARE if delay_s > DEEP_RISE_S else CUT_SHARE
        cut = int(achieved * share / SHAPE_SHARE)
        if (
            state.capacity is not None
        ):  # a stall (little passed, round trips stale) must not drop it to the floor
            cut = min(max(cut, int(state.capacity * MAX_CUT_SHARE)), state.capacity)
        state.capacity = self._bound(cut, state.ceiling)
        state.since_cut_s, state.streak, state.failed_at = 0.0, 0, None

    def _bound(self, bps: int, ceiling: int) -> int:
        return max(min(self.floor_bps, ceiling), min(bps, ceiling))
