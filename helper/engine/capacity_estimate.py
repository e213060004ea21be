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

- a download raised a tick ago passed less than TOOK_SHARE of its new
  shaping rate (while loaded): what passes the uplink is what the modem
  let through, so its rate is under the raise; taken back at once, before
  the round trips show the queue (a failed probe, below);
- the delay rose above RISE_S (plus NOISE_SHARE of our own queue's wait),
  or, while an upload's probe is judged, TURN_RISE_S above what it read
  before the probe at two readings in a row (while TURN_HOLD_S above it,
  the probe is not raised on): a queue fills beyond the shaper. If a
  direction was raised within
  SUSPECT_S (a probe; the upload first, a download's raises were judged
  by what passed), the probe failed: it is taken back to BACK_SHARE of
  where it started (and no more than CUT_SHARE of what passed, at the
  shaping share); the next probes go in NEAR_STEP steps from there up to
  where it failed (a near zone of NEAR_ZONE at most, remembered
  FORGET_FAILED_S; a download's near step stops at it, not across it, and
  steps past it by PAST_STEP from there, not while the round trips read a
  queue (RISE_S: a take-back's, or the modem's at where it failed), judged
  before the next raise (by the
  round trips, unless NEAR_STEP more passed than where it failed: 2-3%
  past the link passes TOOK_SHARE's test; a download's climb stops at its
  highest failure since its last cut likewise, TOP_FAILED_S),
  after a hold (HOLD_S, longer for a failure again at
  about the same rate, SAME_LINK): each try past the link costs the calls
  a moment of queue, so once the link is found it is tried less. An upload
  (judged late) does not step up to where it failed at all while that is
  remembered: an overshoot of 1-2% is not seen for seconds. Otherwise the
  link itself slowed: the directions carrying bulk traffic (at least
  BULK_SHARE of the busier direction's rate: the other direction's
  acknowledgements are a few percent of it) are cut to CUT_SHARE of what
  passed (DEEP_CUT_SHARE beyond DEEP_RISE_S), but at most to
  MAX_CUT_SHARE of the capacity a time, so the modem's queue drains; no
  new cut for REFRACTORY_S while the round trips catch up. A loaded
  download that passed under UNDER_SHARE of its shaping rate is cut even
  while an upload probe is blamed, and alone at first (the upload too if
  the queue stays after DOWN_ALONE_CUTS): what passes it is after the modem.
  A rise within BLAME_S of a take-back is that probe's queue seen late: no
  cut for it unless the download passes less. A rise while an upload loaded
  lately passes under UNDER_SHARE of its shaping rate with our upload queue
  empty is the upload's own link slowing (its senders, losing at the modem's
  full buffer, send only what it passes): for BLAME_S after it (and after
  each cut it brings) the upload alone is cut at each rise, what it goes
  back up to is the most it passed in those rises, and nothing else is
  judged or raised (the download, its acknowledgements waiting at the
  modem, passes less too), but once the upload is shaped under the slower
  link a rise growing with the download passing its whole rate again is the
  download's (those acknowledgements let go at once): it is cut. Then the rate it held before is tried back to
  (TRY_GAP_S after the slowing or the last try, for TRY_FORGET_S), in
  TRY_STEPS a tick, the download not raised meanwhile; a step failed when
  our upload queue holds under TRY_QUEUE_SHARE of what it held or the round
  trips rise (_try_up, _judge_try say why);
- the delay stayed low: one loaded direction (LOADED_SHARE of its shaping
  rate passed) is raised, by a step that grows with raises in a row
  (RAISE_STEPS; the upload's smaller, JUDGE_S apart), straight up to the
  last rate known to pass, in NEAR_STEP steps above it (a step up to where
  a probe failed lands on it, not a byte under it: _raise; on every path,
  read one way or not, since owd30);
- no busy TCP connection, or no traffic: hold. No load, no information.

Why one probe at a time, and the download first: the delay signal is one
for the whole path (a round trip crosses both queues, and a download's
acknowledgements go up), so a rise is blamed on the probe that came before
it. A download's probe is judged in a tick by what passed (above), an
upload's only by the round trips, 2-4 s late (BLAME_S). So no download is
raised while an upload probe is judged, and the upload gets a turn (once
the download's last failure has shown in the round trips, BLAME_S) while
the download is held, or every UP_TURN_S when the download sits stable in
its near zone (failed twice at about the same rate), for UP_TURN_RAISES
raises; the download pauses meanwhile (about 8 s: a link that gets faster
then is followed that much later). Such a turn is for a probe, a raise
above what the upload held lately (loaded, no rise, nothing being judged;
HELD_S): an upload cut under that (a cut of both when the download's link
slowed, say) goes back up to it beside the download's probes, in the
download's steps, and is blamed after a download probe (a failed one
forgets what it held). At 5e87987 it came back only by turns, two 2-3%
raises every 20 s: it sat at 0.54-0.67 of its link after the download's
link halved, and a download link that got faster during a turn was
followed in 15-18 s (bench/capacity_follow.py logs each decision). A
download raise that passed at its rate is not blamed for a rise within
BLAME_S of a take-back, nor once more passed than where it last failed
(the link is faster: the queue is an older probe's, seen late); a cut of
the upload keeps where its probe failed. A direction that nearly fills its
own shaping rate is probed even when small beside the other (cuts stay for
bulk: BULK_SHARE). Measured before (raised in turn each second, both taken back on a
rise): every failed probe of the upload took back the download's raise
too, the download sat in band 7-92% of the time after the link came back,
and the call's p99 was 99-227 ms while estimating (bench/capacity_follow.py,
docs/benchmarks.md). Our own queues do not tell the culprit: a full
upload queue at the modem starves the download's acknowledgements, so
both directions' queues here emptied at once, at a failed upload probe
and at the link's slowing alike.

The upload read one way (owd29; its rules in capacity_one_way.py). Where the
helper reads the upload's one-way queue (Sample.upload_queue, glance(upload_queue=...): kernel/one_way_reading.py,
the far ends' ACK timestamps against when their segments left our shaper: the
modem's upload queue alone, the download's not in it), and while readings
arrive (ONE_WAY_GONE_S, 1.5 s; no reader, or none for a while: all of the
above, as it was, and no one-way raise at a look without a reading), the
upload is judged by that reading instead of the round trips:
- a raise judged (ONE_WAY_SUSPECT_S after it) is taken back, its last raise
  alone, at the first look (the helper glances meanwhile: wants_glances) that
  makes SEEN_MS two looks in a row, or one of SURE_ACKS ACKs (a delayed ACK's
  40 ms is a look of one or two); a turn is held by one such look, and a rise
  of the round trips while the reading is quiet takes the upload's raise not
  back (it is the download's queue: 5 of 13 take-backs by the round trips
  were, owd28) but is judged as the download's, the upload left out. The
  download holds DOWN_HOLD_AFTER_S (the acknowledgements the modem's upload
  queue held arrive at once), and a rise excuses that take-back's small queue
  for ONE_WAY_LATE_S, not BLAME_S;
- what following a faster upload link within 10 s takes (est16j): a turn every
  ONE_WAY_TURN_S from the last (not only in the download's near zone, but not
  while the download climbs past where it failed: a faster link of its own),
  up to ONE_WAY_TURN_RAISES raises ONE_WAY_JUDGE_S apart while they pass, in
  ONE_WAY_RAISE_STEPS from the smallest; where it failed forgotten after
  ONE_WAY_FORGET_FAILED_S, held ONE_WAY_HOLD_S after a failure; while it sits
  under KNOWN_SHARE of its rate before a one-way cut (KNOWN_S: a halving that
  ends), a turn every KNOWN_TURN_S, though the download climbs, in KNOWN_STEPS
  once past where its last turn failed (_below_known);
- a reading standing at STAND_MS and not draining with no raise judged, the
  upload loaded lately and the round trips risen RISE_S too (a far end's TSvals
  are its own, another device's queue is not ours to drain) is the upload's link
  slowed under what we send (the helper glances once a look reads SEEN_MS:
  wants_glances): cut at that look (a tick's, or a glance's of
  SURE_ACKS ACKs) to CUT_SHARE of what the modem passed (what we sent less
  the reading's growth), the reading counted no deeper than the round trips'
  rise (a forger's cuts are the round trips' rule's at most), REFRACTORY_S
  apart unless deeper, past MAX_CUT_SHARE when the reading is deep and what
  we sent puts the cut at MAX_CUT_SHARE**2 or above (else the round trips'
  floor: a stall, or a reading not ours); round trips risen past the reading
  are another queue's (no cut) unless the reading grows or grew deep just now
  (_fresh_deep: the download's probe failed as the link halved); a rise
  while that queue drains and BLAME_S after it was last read cuts nothing (the
  download's raise made meanwhile is taken back, not by what passed). The
  round trips' rule for the upload's own link slowing and its tries back up
  are left out (the turns find a link come back);
- a tick's rise with the tick's reading (the least of its second: its start)
  under STAND_MS, the upload loaded lately, is judged at the next glances'
  reading (_defer_rise): the upload's queue there cuts the upload alone, a
  quiet one leaves the rise to the download;
- a download climbing back under KNOWN_SHARE of its rate before its last cut
  (KNOWN_S; what it held lately, if more: a take-back may come first) holds the
  upload's turns as a climb past where it failed does
  (a halved download link come back was followed in 8-29 s on the toy, its
  climb cut into bursts by a turn every ONE_WAY_TURN_S); a link that came back
  only partly is passed by the climb's last step, up to RAISE_STEPS' 12% (31-130
  ms at the bench's modem in five such returns; est36: no rule tried lowered it
  without slowing the whole return's climb);
- so does a download that climbed in a row to where it last failed (or reached
  it, its step past held a tick there: est34), its near zone no exception: its step past it is a tick or two away (a turn there
  paused a doubled download link 3-4 s: 12 s to follow on the bench, est31);
- our download queue falling while the reading read SEEN_MS within
  DOWN_HOLD_AFTER_S takes no download raise back (_acks_held: its
  acknowledgements wait at the modem behind the upload's queue).

Bounds: never below floor_bps, never above the ceiling (the NIC's speed
when it is known, else MAX_RATE_BPS). Without a starting value a
direction is not shaped until the first rise under load tells its rate.
Pure logic, tested with synthetic samples; rates are L3 bytes/s. The
constants named here, each with what was measured for it: capacity_tuning.py.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from statistics import median

from chadthrottle.contract import MAX_RATE_BPS, Direction
from chadthrottle.helper.engine.capacity_one_way import OneWayRules
from chadthrottle.helper.engine.capacity_tuning import (
    BACK_SHARE,
    BLAME_S,
    BULK_SHARE,
    CUT_FAILED,
    CUT_GOOD,
    CUT_SHARE,
    DEEP_CUT_SHARE,
    DEEP_RISE_S,
    DOWN_ALONE_CUTS,
    DOWN_FIRST_S,
    EMPTY_WAIT_S,
    FLOOR_BPS,
    FORGET_FAILED_S,
    FULL_WAIT_S,
    GLANCE_DELAYS,
    GLANCE_FALL_GAP_S,
    GLANCE_FALL_MAX,
    GLANCE_FALL_S,
    GLANCE_FALLS,
    GLANCE_RISE_S,
    HELD_S,
    HOLD_S,
    JUDGE_S,
    KNOWN_S,
    KNOWN_SHARE,
    KNOWN_STEPS,
    KNOWN_TURN_S,
    LOADED_SHARE,
    MAX_CUT_SHARE,
    MIN_TRAFFIC_BPS,
    NEAR_STEP,
    NEAR_ZONE,
    NOISE_SHARE,
    ONE_WAY_FORGET_FAILED_S,
    ONE_WAY_HOLD_S,
    ONE_WAY_JUDGE_S,
    ONE_WAY_RAISE_STEPS,
    ONE_WAY_SUSPECT_S,
    ONE_WAY_TURN_RAISES,
    ONE_WAY_TURN_S,
    PAST_STEP,
    PROBE_GAP_S,
    RAISE_STEPS,
    REFRACTORY_S,
    RISE_S,
    SAME_LINK,
    SEEN_MS,
    STREAK_GAP_S,
    SUSPECT_S,
    TOOK_SHARE,
    TOP_FAILED_S,
    TRY_FORGET_S,
    TRY_GAP_S,
    TRY_QUEUE_SHARE,
    TRY_STEPS,
    TURN_HOLD_S,
    TURN_RISE_S,
    UNDER_SHARE,
    UP_TURN_RAISES,
    UP_TURN_S,
)
from chadthrottle.helper.kernel.one_way_reading import UploadQueueReading
from chadthrottle.helper.kernel.priority_classes import SHAPE_SHARE


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
    base_rtt_s: float | None = None  # the download's round trip without queues (path_delay.py)
    # the upload's one-way reading since the last look (None: no reader; SEEN_MS says what)
    upload_queue: UploadQueueReading | None = None


@dataclass
class _Direction:
    capacity: int | None  # L3 bytes/s; None: not known (not shaped)
    ceiling: int
    since_cut_s: float = float("inf")
    since_raise_s: float = float("inf")
    hold_s: float = 0.0  # no probe of this direction until it has run down
    recent: list[tuple[float, int]] = field(
        default_factory=list
    )  # raises within SUSPECT_S: (age s, capacity before)
    streak: int = 0  # raises in a row without a rise
    failed_at: int | None = None  # the capacity a probe last failed at, until one passes above it
    good_at: int = 0  # the capacity before that probe: known to pass
    since_failed_s: float = 0.0
    failures: int = 0  # failed probes in a row at about the same rate (SAME_LINK), no cut between
    last_failed: int | None = None  # the capacity the last probe failed at
    held: int | None = None  # the highest capacity it held loaded with no rise, lately (HELD_S)
    since_held_s: float = 0.0
    since_probe_s: float = float("inf")  # since a raise above what it held (a probe)
    since_loaded_s: float = float("inf")  # since it passed LOADED_SHARE of its shaping rate
    # a download just reached where its probe failed without failing: its next step PAST_STEP
    past_failed: bool = False
    # a download's highest failure since its last cut (TOP_FAILED_S): its climbs stop there
    top_failed: int | None = None
    since_top_s: float = 0.0
    # a download's rate before its last cut (KNOWN_S): its climb back there holds the turns
    known: int | None = None
    since_known_s: float = float("inf")
    # what a download's last cut saw pass (the modem's rate then), and since that cut (a
    # take-back is no cut): climbing back under it tells nothing of its link (_probe), and a
    # rise within BLAME_S of it is the cut's queue draining (_rise)
    cut_passed: int = 0
    since_cut_only_s: float = float("inf")


@dataclass
class CapacityEstimator(OneWayRules):
    """Follows each direction's capacity; update() once a tick."""

    start: Mapping[Direction, int | None]
    ceilings: Mapping[Direction, int | None] = field(default_factory=dict)
    floor_bps: int = FLOOR_BPS

    def __post_init__(self) -> None:
        if self.floor_bps <= 0:
            raise ValueError(f"floor_bps must be positive, not {self.floor_bps}")
        self._state: dict[Direction, _Direction] = {}
        self._since_down_cut_s = float("inf")  # since a cut of the download alone
        self._down_cuts = 0  # of the download alone, DOWN_FIRST_S or less apart
        self._down_cut_delay = 0.0  # the delay at the download's last cut or take-back (_rise)
        self._since_back_s = float("inf")  # since a failed probe was taken back
        self._since_up_slow_s = float("inf")  # since a rise showed the upload's own link slower
        self._up_before: int | None = None  # what the upload held before its link slowed
        self._up_link = 0.0  # the most it passed in a rise since (bytes/s): the modem's new rate
        self._up_faster: int | None = None  # what it held before its own link slowed: tried back to
        self._since_faster_s = float("inf")  # since that slowing was first seen
        self._trying: list[int] = []  # a try's capacities so far, from where it began; []: none
        self._tries_failed = 0  # since the slowing: each waits longer (TRY_GAP_S)
        self._since_try_s = float("inf")  # since the last try ended
        self._back_from_try: int | None = None  # a failed try began here: back up to it in one step
        self._up_queued: list[float] = []  # our upload queue (bytes) at the last held ticks
        self.decisions: list[str] = []  # this tick's, for bench/capacity_follow.py's trace
        # the delay's last readings (ticks' and glances'), and what they read before a raise
        self._delays: deque[float] = deque(maxlen=GLANCE_DELAYS)
        self._raise_delay: dict[Direction, float | None] = {d: None for d in Direction}
        self._risen_before = False  # the last glance read a rise (GLANCE_RISE_S)
        # our download queue (bytes) at the last reading, the readings in a row it fell at by
        # GLANCE_FALL_MAX at most, and by how much in all (GLANCE_FALLS); the glances' seconds
        # since the last tick (a tick reads a glance's interval after the last glance)
        self._here: float | None = None
        self._falls, self._fallen, self._glanced_s = 0, 0.0, 0.0
        # the download's bytes the glances since the last tick were given (None: one was given
        # none), its bytes and seconds since its last raise (None: not known) and our download
        # queue (bytes) at that raise: a fall of our queue is no failure while what passed since
        # the raise kept up with it and the queue is where it was then (_raise_kept_up)
        self._glance_bytes: int | None = 0
        self._raised_bytes: float | None = None
        self._raised_s = 0.0
        self._raised_here: float | None = None
        self._base_rtt_s = 0.0  # the last tick's Sample.base_rtt_s (GLANCE_FALL_S says why)
        # the upload's one-way reading (SEEN_MS): since one last arrived, the last two (ms), the
        # seconds between them, the looks in a row at SEEN_MS or more, whether the last was of
        # SURE_ACKS ACKs and was this look's; since a cut for a queue it saw standing, and since
        # that queue was last read (_rise excuses the round trips' rise meanwhile)
        self._since_reading_s = float("inf")
        self._since_up_seen_s = float("inf")  # since a reading read SEEN_MS (_acks_held)
        self._since_up_deep_s = float("inf")  # and DEEP_RISE_S
        self._since_up_low_s = float("inf")  # since a reading read under SEEN_MS (_fresh_deep)
        self._deep_for_s = 0.0  # how long the looks have read DEEP_RISE_S in a row (_acks_held)
        self._up_ms: float | None = None
        self._up_ms_before: float | None = None
        self._up_gap_s = self._up_gap_before_s = float("inf")
        self._up_high, self._up_many, self._up_fresh = 0, False, False
        self._since_one_way_cut_s = self._cut_seen_s = float("inf")
        self._cut_depth_ms = 0.0  # the last one-way cut's depth (ms; _one_way_cut)
        self._cut_reading_ms = (
            0.0  # the reading at the last one-way cut: what its queue drains from
        )
        # the last tick's: the upload loaded, what it sent (bytes/s), the round trips' delay
        self._up_loaded, self._up_sent, self._tick_delay = False, 0.0, 0.0
        self._since_one_way_back_s = float("inf")
        self._up_known: int | None = None  # the upload's rate before a one-way cut (KNOWN_S)
        self._since_known_s = float("inf")
        # a tick's rise left to the next glances' reading (_defer_rise): the tick's active
        # directions, what passed and its delay; and whether the last tick deferred one
        self._pending: tuple[dict[Direction, _Direction], dict[Direction, float], float] | None = (
            None
        )
        self._deferred = False
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
        self.decisions = []
        if sample.base_rtt_s is not None and sample.base_rtt_s >= 0:
            self._base_rtt_s = sample.base_rtt_s
        looked_s = max(sample.seconds - self._glanced_s, 0.0)  # since the last glance
        self._queue_here_fell(looked_s, sample.local_wait_s)
        self._count_raised(looked_s, sample.bytes, self._glance_bytes)
        self._glanced_s, self._glance_bytes = 0.0, 0
        self._note_reading(looked_s, sample.upload_queue)
        self._since_one_way_cut_s += looked_s
        self._cut_seen_s += looked_s
        self._since_one_way_back_s += looked_s
        self._since_known_s += sample.seconds
        if self._since_known_s > KNOWN_S:
            self._up_known = None
        achieved = {
            direction: sample.bytes.get(direction, 0) / sample.seconds for direction in Direction
        }
        delay = (
            sample.delay_s
            if sample.delay_s is not None and sample.delay_s == sample.delay_s
            else None
        )  # NaN
        self._since_down_cut_s += sample.seconds
        self._since_back_s += sample.seconds
        self._since_up_slow_s += sample.seconds
        self._since_faster_s += sample.seconds
        self._since_try_s += sample.seconds
        up_shaping = (
            self._state[Direction.UP].capacity or 0
        ) * SHAPE_SHARE  # as the waits were read
        queued = (
            sample.local_wait_s[Direction.UP] * up_shaping
            if Direction.UP in sample.local_wait_s
            else None
        )
        for direction, state in self._state.items():
            state.since_cut_s += sample.seconds
            state.since_loaded_s += sample.seconds
            if state.capacity is not None and achieved[direction] >= (
                LOADED_SHARE * state.capacity * SHAPE_SHARE
            ):
                state.since_loaded_s = 0.0
            state.since_raise_s += sample.seconds
            state.hold_s = max(0.0, state.hold_s - sample.seconds)
            state.since_failed_s += sample.seconds
            if state.since_failed_s > self._forget_failed_s(direction):
                state.failed_at = None  # the link may be faster by now
            state.since_held_s += sample.seconds
            state.since_top_s += sample.seconds
            state.since_known_s += sample.seconds
            state.since_cut_only_s += sample.seconds
            if state.since_known_s > KNOWN_S:
                state.known = None
            if state.since_top_s > TOP_FAILED_S:
                state.top_failed = None
            state.since_probe_s += sample.seconds
            if state.since_held_s > HELD_S:
                state.held = None  # the link may be slower by now
            state.recent = [
                (age + sample.seconds, before)
                for age, before in state.recent
                if age + sample.seconds <= SUSPECT_S
            ]
        if self._up_judged() and self._up_seen():  # the raise's queue at the modem, read there
            self.decisions.append("the upload's one-way queue")
            self._one_way_take_back()
            self._delays.extend([] if delay is None else [delay])
            return self.capacities()  # nothing else judged this tick (its rise is that queue's)
        up_now = self._state[Direction.UP].capacity
        self._up_sent = achieved[Direction.UP]
        # loaded within BLAME_S: once the modem's buffer is full its senders send only what it
        # passes, under LOADED_SHARE of ours (a halved link was cut by the round trips' rule
        # first while the standing cut waited for the upload to read loaded, owd29's H1)
        self._up_loaded = up_now is not None and self._state[Direction.UP].since_loaded_s <= BLAME_S
        self._tick_delay = 0.0 if delay is None else delay
        if self._up_standing():  # a queue there with no raise judged: the upload's link slowed
            self._one_way_cut(achieved[Direction.UP])  # a download raise is judged on (_rise)
        if delay is None:
            return self.capacities()  # nothing to judge the queue by: hold
        self._delays.append(delay)
        busiest = max(achieved.values())
        active = {
            d: s
            for d, s in self._state.items()
            if achieved[d] >= max(MIN_TRAFFIC_BPS, BULK_SHARE * busiest)
        }
        rise = delay > RISE_S + NOISE_SHARE * max(sample.local_wait_s.values(), default=0.0)
        if not rise and not self._trying and self._turn_above(TURN_RISE_S, readings=2):
            rise = True
            self.decisions.append("turn's rise")
        past_queue = not rise and self._past_queue(achieved, delay, sample.local_wait_s)
        rise = rise or past_queue
        if self._trying:
            self._judge_try(rise, queued)
            return self.capacities()
        deferred, self._deferred, self._pending = self._deferred, False, None
        if rise and not past_queue and not deferred and self._defer_rise():
            self._pending, self._deferred = (active, achieved, delay), True
            self.decisions.append("rise: read one way first")
            return self.capacities()
        first = False  # the first tick of the upload's own link slowing: what passed straddles it
        # (a one-way cut's queue draining is that slowing, cut already: cut again by this
        # rule a tick on, the upload went to 0.44 of its link, owd29's H1 at 22 s)
        if (
            rise
            and self._cut_seen_s >= BLAME_S
            and not self._one_way()  # the reading judges it (_up_standing), the round trips late
            and self._up_link_slowed(achieved, sample.local_wait_s)
        ):
            if first := self._since_up_slow_s >= BLAME_S:
                self._up_before, self._up_link = self._state[Direction.UP].held, 0.0
                self._slowed(self._up_before)
            self._since_up_slow_s = 0.0
        if self._since_up_slow_s < BLAME_S:  # nothing judged or raised until it drained
            if rise:  # the upload's own queue at the modem: the download is its victim
                self._up_slowed(achieved, delay, first)
        elif self._not_taken(active, achieved, sample.local_wait_s):
            pass
        elif rise:
            if past_queue:
                # a download step past where it failed, not judged by what passed (1-2% past
                # the modem's rate passes TOOK_SHARE's test): judged against our download
                # queue's noise, not the upload's too (NOISE_SHARE of 0.2-0.3 s there: 20-30 ms
                # more). Left to that, recorded, such steps read 22.5 and 27.2 ms with 20 and 24
                # ms at the modem, and were taken back a tick or two later with 31-45 ms there
                # (est16f's recordings, replayed in est16h)
                self.decisions.append("down past where it failed: a queue")
            self._rise(active, achieved, delay)
        elif not self._past_us(active, achieved, sample.local_wait_s):
            # a direction that nearly fills its own shaping rate is probed even when small
            # beside the other (an upload cut to 3.5 Mbit/s beside a 20 Mbit/s download
            # read as acknowledgements and was never raised again); cuts stay for bulk
            self._note_held(achieved)
            if self._try_up(achieved, queued):
                self._back_to_held(
                    achieved
                )  # no probe: a try is on or due (a try's raise is not undone)
            else:
                self._probe(self._state, achieved)
        return self.capacities()

    def glance(self, seconds: float, delay_s: float | None,
               local_wait_s: Mapping[Direction, float] | None = None,
               upload_queue: UploadQueueReading | None = None,
               passed: Mapping[Direction, int] | None = None) -> dict[Direction, int | None]:  # fmt: skip
        """Between two ticks (`seconds` since the last tick or glance; delay_s and
        local_wait_s as a Sample's): a raise being judged whose failure shows already is
        taken back now, not at the next tick. A probe past the link fills the modem's
        queue by its overshoot each second until it is taken back (4.5% for a second: 45
        ms): at a tick of a second a failed probe put 33-105 ms there (bench/
        capacity_follow.py, est16b). Failed: a download raise once our download queue
        fell steadily (GLANCE_FALLS), or any raise once the delay read GLANCE_RISE_S above
        what it read before the raise at two glances in a row. Nothing else is decided
        here, and what passed is left to the tick (GLANCE_RISE_S says why). The round
        trips' rule alone took failed probes back with 23-62 ms at the modem (median 36)
        where ticks did with 28-125 (median 42), for about a sample's CPU a glance (docs/
        benchmarks.md, est16c); the helper glances with our queues' waits only, while a
        download raise is judged (judging_down, estimation.py), and with the upload's
        one-way reading (upload_queue: the least since the last look) while an upload raise
        is judged by it (wants_glances): taken back once it reads SEEN_MS at two looks in a
        row, or at one of SURE_ACKS ACKs, and never by the round trips then. passed: the L3
        bytes through the uplinks since the last tick or glance (as a Sample's); a fall of our
        download queue while what passed since the raise kept up with it is no failure
        (_raise_kept_up; None: not known, every fall judged as before)."""
        if not seconds > 0:
            return self.capacities()
        self.decisions = []
        self._glanced_s += seconds
        self._count_raised(seconds, passed)
        if self._glance_bytes is not None:
            self._glance_bytes = (
                None
                if passed is None or Direction.DOWN not in passed
                else self._glance_bytes + passed[Direction.DOWN]
            )
        self._since_one_way_back_s += seconds
        self._since_one_way_cut_s += seconds
        self._cut_seen_s += seconds
        self._note_reading(seconds, upload_queue)
        fell = self._queue_here_fell(seconds, local_wait_s or {})
        delay = delay_s if delay_s is not None and delay_s == delay_s else None
        judged = Direction.UP if self._trying or self._probing(Direction.UP) else Direction.DOWN
        before = self._raise_delay[judged]
        risen = delay is not None and before is not None and delay > before + GLANCE_RISE_S
        twice = risen and self._risen_before
        if delay is not None:
            self._risen_before = risen
        down = self._state[Direction.DOWN]
        if self._trying:  # a try's step: judged by the round trips here
            if twice:
                self.decisions.append("glance: round trips rose")
                self._judge_try(True, None)
        elif self._up_judged():
            if self._up_seen():
                self.decisions.append("glance: the upload's one-way queue")
                self._one_way_take_back()
        elif self._up_standing():  # no raise judged: cut now, not at the tick (_one_way_cut)
            self._pending = None  # a rise deferred to this reading (_defer_rise): the upload's
            self._one_way_cut(self._up_sent)  # what the last tick passed
        elif self._pending is not None and self._up_fresh and (self._up_ms or 0.0) < SEEN_MS:
            # a tick's rise deferred to this reading, quiet: not the upload's queue but the
            # download's, judged without the upload (as _rise's "not the upload's")
            active, achieved, delay_s = self._pending
            self._pending = None
            self.decisions.append("glance: rise, not the upload's (its one-way queue quiet)")
            self._rise({d: s for d, s in active.items() if d is Direction.DOWN}, achieved, delay_s,
                       quiet=True)  # fmt: skip
        elif self._probing(Direction.UP) and self._state[Direction.UP].recent:
            if twice:
                self.decisions.append("glance: round trips rose")
                self._take_back(Direction.UP, self._state[Direction.UP], {})
        elif fell and not twice and down.recent and self._acks_held():
            # our download queue fell while the upload's one-way reading read its queue at the
            # modem: the download's acknowledgements wait there (est25), not a download step past
            # its link; counted again from here
            self._falls, self._fallen = 0, 0.0
            self.decisions.append("glance: our download queue fell, its acknowledgements held")
        elif fell and not twice and down.recent and (kept := self._raise_kept_up()) is not None:
            # what passed since the raise kept up with its rate and our queue is where it was
            # then: the link carried it, and our queue rose and fell back with its senders (a
            # loss here, their windows' sawtooth), not into the modem's. Counted on: a fall that
            # goes on is judged again at the next glance, what passed by then with it
            self.decisions.append(
                f"glance: our download queue fell, not since the raise, which passed ({kept:.3f})"
            )
        elif down.recent and (twice or fell):
            # back to BACK_SHARE of where it began. Our queue fell: where it failed is where it
            # began (what passed since the raise is not known yet), PAST_STEP from there next
            # (_step). Not an upload's probe: read so, 3 of 5 turns' first raises were taken
            # for failures with the modem empty, and the upload's queue there showed only at
            # 30-40 ms (as late as the turn's round trips, TURN_RISE_S; est16h)
            self.decisions.append(
                "glance: " + ("our download queue fell" if fell else "round trips rose")
            )
            self._falls, self._fallen = 0, 0.0
            self._take_back(
                Direction.DOWN, down, {}, failed_at=down.recent[-1][1] if fell else None
            )
        if delay is not None:
            self._delays.append(delay)
        return self.capacities()

    def wants_glances(self) -> bool:
        """A raise is being judged that a glance can take back: a download's (judging_down)
        or, while the one-way reading arrives, an upload's (glance() reads the reading)."""
        return (self.judging_down() or self._up_judged() or self._up_suspect()
                or self._pending is not None)  # fmt: skip

    def _defer_rise(self) -> bool:
        """A tick's rise with the reading arriving, no upload raise judged, the upload loaded
        lately, no standing cut at the tick (its reading, the least of its second, is its start:
        under STAND_MS, or of too few ACKs to be sure, SURE_ACKS): judged at the next glances'
        reading instead, a tenth of a second each. A link slowing
        under the upload fills the modem within that second, and the tick read 0-5 ms where
        127-368 ms stood (owd29's A2 at 40 s, H1 at 21 s): judged at the tick, the round trips'
        rules cut both directions, or the upload's by its own link slowing, and tried it back
        up past the slower link (125-170 ms there). At the glances, a queue standing there
        cuts the upload alone (_up_standing), a quiet one leaves the rise to the download
        (_rise without the upload); neither by the next tick: that tick judges as before.
        A tick reading 396 ms of one ACK was judged by the round trips' rules: the download,
        its acknowledgements held at the modem, passed under TOOK_SHARE and was taken back to
        0.35 of its link for 20 s (owd30's H2 at 21 s; _not_taken now waits while _acks_held)."""
        return (self._one_way() and not self._trying and not self._up_judged()
                and self._cut_seen_s >= BLAME_S and self._up_loaded)  # fmt: skip

    def _up_suspect(self) -> bool:
        """The reading read SEEN_MS at the last look with no upload raise judged: glanced at
        until it tells, so a queue standing there is cut within a few tenths (_up_standing)."""
        up = self._state[Direction.UP]
        return (self._one_way() and self._up_high >= 1 and not self._trying
                and not (self._probing(Direction.UP) and up.recent))  # fmt: skip

    def judging_down(self) -> bool:
        """A download raise is being judged, with no upload probe or try: what glance()
        judges by our download queue alone (no delay signal needed), so the helper glances
        then (estimation.py)."""
        up = self._state[Direction.UP]
        return (bool(self._state[Direction.DOWN].recent) and not self._trying
                and not (self._probing(Direction.UP) and up.recent))  # fmt: skip

    def _count_raised(self, seconds: float, passed: Mapping[Direction, int] | None,
                      counted: int | None = 0) -> None:  # fmt: skip
        """Add a look's download bytes (less `counted`: a tick's bytes span the glances
        since the last tick, counted at each) to those since the download's last raise."""
        if self._raised_bytes is None:
            return
        if passed is None or Direction.DOWN not in passed or counted is None:
            self._raised_bytes = None  # a look without bytes: not known until the next raise
            return
        self._raised_bytes += max(0, passed[Direction.DOWN] - counted)
        self._raised_s += seconds

    def _raise_kept_up(self) -> float | None:
        """What passed since the download's last raise, as a share of its shaping rate,
        when it kept up with it (TOOK_SHARE, the tick's test of a raise: _not_taken) and our
        download queue has not fallen since the raise by what a fall must (_fall_needed);
        None otherwise, or not known. On the bench our download queue fell at GLANCE_FALLS
        readings in a row with the modem's download queue empty in 12 of 33 take-backs
        (est32's runs): its senders' sawtooth after the queue had risen since the raise. What
        passed alone does not tell them apart: a step 2% past the link passes 0.96-0.98 of
        its rate (TOOK_SHARE's blind spot, the reason for the glance's rule), and one such
        take-back with 25 ms at the modem had passed 0.961; with the queue since the raise
        too, 7 of the 12 are no failure and all 21 with a queue at the modem still are
        (est33)."""
        down = self._state[Direction.DOWN]
        if (self._raised_bytes is None or not self._raised_s > 0 or not down.capacity
                or self._raised_here is None or self._here is None):  # fmt: skip
            return None
        kept = self._raised_bytes / self._raised_s / (down.capacity * SHAPE_SHARE)
        fallen = self._raised_here - self._here
        if kept < TOOK_SHARE or fallen >= self._fall_needed() * down.capacity * SHAPE_SHARE:
            return None
        return kept

    def _fall_needed(self) -> float:
        """How far (s of the download's shaping rate) our download queue must fall to show a
        failed raise: GLANCE_FALL_S, and a raise that passes drains our queue too, by its step
        for one of its senders' round trips (their windows spread over the faster rate): more
        than GLANCE_FALL_S on a long path (4.5% for 300 ms: 13.5 ms; review9). Past the link the
        fall goes on beyond that."""
        down = self._state[Direction.DOWN]
        began = down.recent[-1][1] if down.recent else down.capacity
        step = max(0.0, (down.capacity or 0) / began - 1.0) if began else 0.0
        return GLANCE_FALL_S + step * self._base_rtt_s

    def _queue_here_fell(self, seconds: float, waits: Mapping[Direction, float]) -> bool:
        """Note our download queue (bytes: its wait at the shaping rate it was read at, the
        capacity before this reading's decisions); True once it fell GLANCE_FALLS readings in
        a row by GLANCE_FALL_S of that rate in all (GLANCE_FALLS says why)."""
        down = self._state[Direction.DOWN]
        if Direction.DOWN not in waits or down.capacity is None or not seconds > 0:
            self._here, self._falls, self._fallen = None, 0, 0.0
            return False
        rate = down.capacity * SHAPE_SHARE
        queued = waits[Direction.DOWN] * rate
        last, self._here = self._here, queued
        drop = None if last is None else last - queued
        if (
            drop is not None
            and seconds <= GLANCE_FALL_GAP_S
            and 0.0 < drop <= GLANCE_FALL_MAX * rate * seconds
        ):
            self._falls, self._fallen = self._falls + 1, self._fallen + drop
        else:
            self._falls, self._fallen = 0, 0.0
        return self._falls >= GLANCE_FALLS and self._fallen >= self._fall_needed() * rate

    def _raise_steps(self, direction: Direction) -> tuple[float, ...]:
        one_way = direction is Direction.UP and self._one_way()
        up = self._state[Direction.UP]
        if one_way and self._below_known() and (up.capacity or 0) > (up.last_failed or 0):
            return KNOWN_STEPS  # past where its last turn failed: the link is faster now
        return ONE_WAY_RAISE_STEPS if one_way else RAISE_STEPS[direction]

    def _judge_s(self, direction: Direction) -> float:
        return (
            ONE_WAY_JUDGE_S if direction is Direction.UP and self._one_way() else JUDGE_S[direction]
        )

    def _forget_failed_s(self, direction: Direction) -> float:
        one_way = direction is Direction.UP and self._one_way()
        return ONE_WAY_FORGET_FAILED_S if one_way else FORGET_FAILED_S[direction]

    def _hold_s(self, direction: Direction) -> tuple[float, float]:
        return (
            ONE_WAY_HOLD_S if direction is Direction.UP and self._one_way() else HOLD_S[direction]
        )

    def _up_turn_raises(self) -> int:
        return ONE_WAY_TURN_RAISES if self._one_way() else UP_TURN_RAISES

    def _note_raise(self, direction: Direction) -> None:
        """What the round trips read before a raise: its glances judge it against that. An
        upload's turn keeps what they read before its first raise (TURN_HOLD_S says why)."""
        if direction is Direction.UP and self._probing(Direction.UP) and not self._trying:
            return  # a raise within its turn: the turn's reference stays (a try's step: its own)
        self._raise_delay[direction] = median(self._delays) if self._delays else None
        self._risen_before = False

    def _slowed(self, held: int | None) -> None:
        """The upload's own link slowed: what it held before is tried back to later (the
        highest such rate while remembered: a try past the slower link looks like a slowing)."""
        if self._up_faster is None or self._since_faster_s > TRY_FORGET_S:
            self._up_faster, self._tries_failed = held, 0
        elif held is not None:
            self._up_faster = max(self._up_faster, held)
        self._since_faster_s, self._up_queued = 0.0, []

    def _try_up(self, achieved: Mapping[Direction, float], queued: float | None) -> bool:
        """After the upload's own link slowed, a try back towards what it held before: the
        link may be back, and an upload's probes are judged by the round trips, 2-4 s late,
        in 2-3% steps every 20 s (at 563c706 it sat at 0.47 of its link come back). Started
        TRY_GAP_S after the slowing or the last try (longer after each failure), while the
        upload is loaded at what it holds and nothing else is judged: no download raise, no
        cut or take-back draining (the download is not raised while one is due). True if
        one started or is due (no other raise this tick)."""
        up, down = self._state[Direction.UP], self._state[Direction.DOWN]
        if queued is not None and up.capacity is not None and \
                achieved[Direction.UP] >= LOADED_SHARE * up.capacity * SHAPE_SHARE:  # fmt: skip
            self._up_queued = [*self._up_queued[-7:], queued]  # under the link: the reference
        if self._one_way():
            # read one way, the upload's turns (every ONE_WAY_TURN_S, judged within a glance or
            # two) find a link come back; a try's steps are judged by the round trips, a second
            # late: 1.12 past a link still slow put 125-170 ms at the modem (owd29, after ead7b1f)
            return False
        if self._up_faster is not None and (
            self._since_faster_s > TRY_FORGET_S or (up.capacity or 0) * NEAR_STEP >= self._up_faster
        ):
            self._up_faster = None  # forgotten, or back there by other raises
        gap = TRY_GAP_S[min(self._tries_failed, len(TRY_GAP_S) - 1)]
        waited = min(self._since_up_slow_s, self._since_try_s)
        if (self._up_faster is None or up.capacity is None or queued is None or len(self._up_queued) < 3
                or waited < gap or achieved[Direction.UP] < LOADED_SHARE * up.capacity * SHAPE_SHARE):  # fmt: skip
            return False
        if (
            waited >= gap + 2 * BLAME_S
        ):  # not started in this long: the download goes on, a gap more
            self._since_try_s = 0.0
            self.decisions.append("try up put off")
            return False
        # due: no new download raise, and its last one taken back (held a little past its link,
        # unjudged, its queue grew 5 s, to 154 ms at the modem, bench 22:01 UTC), REFRACTORY_S
        # for that to drain; BLAME_S after its take-back (the round trips show that queue
        # late, and the upload's acknowledgements waiting in it leave our upload queue too: a
        # try would fail for it). At first from BLAME_S before the gap ended, with all its
        # recent raises taken back: the download sat at 0.71-0.83 of its link (bench 22:30 UTC)
        if down.recent and down.capacity is not None:
            down.capacity, down.recent, down.since_cut_s = down.recent[-1][1], [], 0.0
            self.decisions.append("down back for a try up")
        # where its probes failed is kept meanwhile (not probed, it learns nothing new): forgotten
        # during the waits, its next climb went in 12% steps, 200 ms at the modem in a toy
        down.since_failed_s = 0.0
        if (up.capacity * 1.001 < (up.held or 0) or up.hold_s or self._since_back_s < BLAME_S
                or (up.recent and up.recent[-1][0] < self._judge_s(Direction.UP))
                or min(s.since_cut_s for s in self._state.values()) < REFRACTORY_S):  # fmt: skip
            return True
        self._trying = [up.capacity]
        self._try_step(up)
        return True

    def _try_step(self, up: _Direction) -> None:
        assert up.capacity is not None and self._up_faster is not None
        step = TRY_STEPS[min(len(self._trying) - 1, len(TRY_STEPS) - 1)]
        before = up.capacity
        up.capacity = self._bound(min(int(before * step), self._up_faster), up.ceiling)
        self._trying.append(up.capacity)
        self._note_raise(Direction.UP)
        up.since_raise_s = up.since_probe_s = 0.0
        self.decisions.append(f"try up x{up.capacity / before:.3f}")

    def _judge_try(self, rise: bool, queued: float | None) -> None:
        """A try's last step, a tick on: past the link if our upload queue holds less than
        TRY_QUEUE_SHARE of what it held before the try (its bytes moved to the modem's
        queue) or the round trips rose. Then back under the step before the one last
        judged (a step a little past the link moves too little in a tick to be seen: the
        next one shows it), and held there; else the next step, up to the rate tried. No
        download raise is made or being judged meanwhile (_try_up): a rise is the try's,
        though our queue may not show it yet (the senders' windows grow once they stop
        losing here: 129 KB still queued here with 0-22 ms at the modem, bench 22:01 UTC)."""
        up = self._state[Direction.UP]
        assert up.capacity is not None
        reference = sorted(self._up_queued)[len(self._up_queued) // 2] if self._up_queued else 0.0
        moved = queued is None or queued < TRY_QUEUE_SHARE * reference
        if moved or rise:
            good = self._trying[max(0, len(self._trying) - 3)]
            if good > self._trying[0]:  # the steps up to it passed: the link is that fast at least
                up.held, up.since_held_s = good, 0.0
            self.decisions.append(f"take back up (try failed at {up.capacity * 8e-6:.2f})")
            # under it by CUT_SHARE, so the modem's queue drains in a second, then back up to
            # what it held (_back_to_held) after REFRACTORY_S (at BACK_SHARE and a 5 s hold,
            # a toy's tries came every 12 s, the modem's queue draining 4 s each)
            up.capacity = self._bound(int(good * CUT_SHARE), up.ceiling)
            up.hold_s, up.recent, up.streak = REFRACTORY_S, [], 0
            up.since_probe_s = float("inf")  # its raises back to what it held are no probe
            up.since_cut_s = self._since_back_s = 0.0  # its queue at the modem, seen late: no cut
            # as when its link slowed, nothing is raised or judged while that queue drains: the
            # download's acknowledgements held there go at once and its senders burst (raised
            # 2 and 3 s after a failed try, unjudged, the download's queue reached 393 ms at the
            # modem before a cut, bench 22:43 UTC)
            self._since_up_slow_s = 0.0
            self._trying, self._since_try_s, self._tries_failed = [], 0.0, self._tries_failed + 1
            self._back_from_try = up.held
        elif self._up_faster is None or up.capacity >= self._up_faster:  # the link is back
            self._trying, self._since_try_s, self._tries_failed = [], 0.0, 0
            self._up_faster = None
            up.held, up.since_held_s = up.capacity, 0.0
            self.decisions.append("try up reached")
        else:
            self._try_step(up)

    def capacities(self) -> dict[Direction, int | None]:
        return {direction: state.capacity for direction, state in self._state.items()}

    def _rise(
        self, active: dict[Direction, _Direction], achieved: dict[Direction, float], delay: float,
        quiet: bool = False,
    ) -> None:  # fmt: skip
        """A queue beyond the shaper: take back the last raise that can have
        made it (the upload's first: a download's raise that passed at its
        rate, TOOK_SHARE, was judged already), else (once the last cut had
        time to drain) cut what carries bulk. A loaded download that passed
        under UNDER_SHARE of its shaping rate is cut either way (what passes
        it is after the modem: it fell, so the modem's rate did, or the
        upload's queue there holds its acknowledgements back), alone at first:
        the upload too if the queue stays after DOWN_ALONE_CUTS in a row. A
        download's cut (or take-back) drains its queue at the modem (shaped under
        what passed it): a rise within BLAME_S of it, the download passing its
        rate, reading less than at it (or after a cut, whatever it reads: the
        round trips 1-3 s late still show the queue grown before it) is that
        queue seen late, not cut again; after a cut only while it shaped the
        download under what passed then by NEAR_STEP (_cut_drains). quiet: the
        upload's reading read quiet for this rise (glance()): not the upload's."""
        not_up = quiet or (self._one_way() and self._up_judged() and self._up_high == 0)
        if not_up and not quiet:
            # the upload's reading quiet: the queue is not its raise's (5 of 13 take-backs by
            # the round trips were of the download's queue, the upload's empty: owd28), but
            # the download's, judged as without the upload (left alone, a download raise made
            # before the turn grew 46-114 ms at the modem over the turn: owd29's H1, 35-37 s)
            self.decisions.append("rise, not the upload's (its one-way queue quiet)")
            active = {d: s for d, s in active.items() if d is Direction.DOWN}
        if self._cut_seen_s < BLAME_S and not (
            self._up_fresh and (self._up_ms or 0.0) < SEEN_MS
            and len(self._delays) >= 2 and delay > self._delays[-2] + RISE_S
        ):  # fmt: skip
            # the queue a one-way cut drains, seen late in the round trips (175-250 ms at the
            # modem when the link halved from a doubled estimate: cut here as the link's
            # slowing, both directions, it took the download too); once the reading is quiet
            # and the round trips still grow, it is the download's (its acknowledgements let go)
            self.decisions.append("rise: the upload's queue, cut, seen late")
            raised = self._state[Direction.DOWN]
            if raised.recent and not self._seen_late(Direction.DOWN, achieved):
                # a download raise made meanwhile, judged so, not by what passed: that is held
                # back with its acknowledgements (AckClocked's 0.4 of it, the toy's)
                self._take_back(Direction.DOWN, raised, {})
            return
        down = active.get(Direction.DOWN)
        under = down is not None and not down.recent and down.capacity is not None \
            and achieved[Direction.DOWN] < UNDER_SHARE * down.capacity * SHAPE_SHARE  # fmt: skip
        drained = min(s.since_cut_s for s in self._state.values()) >= REFRACTORY_S
        # an upload raise back to what it held is no probe: a download's probe first
        order = (
            (Direction.UP, Direction.DOWN)
            if self._probing(Direction.UP)
            else (Direction.DOWN, Direction.UP)
        )
        probed = [d for d in order if self._state[d].recent and not self._seen_late(d, achieved)
                  and not (not_up and d is Direction.UP)]  # fmt: skip
        if probed:
            direction = probed[0]
            self._take_back(
                direction, self._state[direction], achieved if direction in active else {}
            )
            if under and drained:
                self._cut(Direction.DOWN, down, achieved[Direction.DOWN], delay)  # type: ignore[arg-type]
        elif (drained and not under and down is not None and down.since_cut_s < BLAME_S
              and (delay < self._down_cut_delay or down.since_cut_only_s < BLAME_S)
              and (down.since_cut_only_s >= BLAME_S or self._cut_drains(down))):  # fmt: skip
            # cut again for it (the round trips' DEEP_RISE_S, 1-3 s late), the download of a
            # link halved went to 0.44-0.63 of it: shaped at 0.59 of it on average 6-10 s into
            # the toy's 48 halvings, 0.75 at 10-20 s (so, 0.78 and 0.87, the modem's queue as
            # before), its climb back held the upload's turns (E1) or came back from there
            # (back from halved: so, 36 of the 48 within 10 s; with this rule out, 20, to 24 s)
            self.decisions.append("rise: the download's cut queue draining, seen late")
        elif drained and (under or self._since_back_s >= BLAME_S or delay > DEEP_RISE_S):
            # a rise within BLAME_S of a take-back is its queue, seen late: no cut for it
            # unless the download passes less or it is deeper than a failed probe makes
            # (then the link slowed meanwhile: a download link halving while an upload
            # probe was judged kept 200-370 ms at the modem 5-7 s, until BLAME_S ran out)
            if self._since_down_cut_s > DOWN_FIRST_S:
                self._down_cuts = 0
            if under and self._down_cuts < DOWN_ALONE_CUTS:
                active = {Direction.DOWN: down}  # type: ignore[dict-item]
                self._since_down_cut_s, self._down_cuts = 0.0, self._down_cuts + 1
            for direction, state in active.items():
                self._cut(direction, state, achieved[direction], delay)

    @staticmethod
    def _cut_drains(down: _Direction) -> bool:
        """The download's last cut shaped it under what passed then (the modem's rate) by
        NEAR_STEP at least, so the queue beyond drains. A cut held at MAX_CUT_SHARE of the
        capacity need not be: a link that fell twice within BLAME_S (0.5 -> 0.25 of it) was cut
        to about its new rate, its queue at the modem stood full, and the drain rule left it so
        until BLAME_S ran out (review35b's E3: +35-47 ms mean there over 10 s on the toy)."""
        return (down.capacity or 0) * NEAR_STEP <= down.cut_passed

    def _up_link_slowed(self, achieved: Mapping[Direction, float],
                        waits: Mapping[Direction, float]) -> bool:  # fmt: skip
        """A rise while an upload loaded lately (LOADED_SHARE within BLAME_S) passes
        under UNDER_SHARE of its shaping rate with our upload queue empty: its
        senders send only what the modem passes (they lose at its full buffer), so
        the queue is the upload's, past us: its own link slowed. Measured
        (bench/capacity_follow.py --vary up, 5 -> 2.5 Mbit/s): the upload passed
        0.50-0.78 of its shaping with 0 ms queued here, where the download's link
        halving left it at 0.97-0.98 with 34-121 ms queued here."""
        up = self._state[Direction.UP]
        return (up.capacity is not None and Direction.UP in waits
                and waits[Direction.UP] < EMPTY_WAIT_S and up.since_loaded_s <= BLAME_S
                and MIN_TRAFFIC_BPS <= achieved[Direction.UP] < UNDER_SHARE * up.capacity * SHAPE_SHARE)  # fmt: skip

    def _up_slowed(self, achieved: Mapping[Direction, float], delay_s: float, first: bool) -> None:
        """The upload's own link slowed: cut it (again each REFRACTORY_S while the rise
        stays and it is not yet shaped well under the link), and what it goes back up to is the most it passed in a rise since (the
        modem's new rate, or less), not what it held before. The download is left
        alone: its acknowledgements wait in the upload's queue at the modem, so it
        passes less and our download queue runs empty too. At 28a45f1 the download was
        blamed and cut to 0.1-0.3 of its link, and the upload, cut too, went back up
        towards what it held before in 3, 6, 12% steps past the slower link: 200-390 ms
        at the modem for about 5 s. The first tick's bytes straddle the change (3.55
        Mbit/s passed where the link had fallen to 2.48): the next ticks' tell better."""
        up, down = self._state[Direction.UP], self._state[Direction.DOWN]
        if up.capacity is None:
            return
        passed = achieved[Direction.UP]
        self._up_link = 0.0 if first else max(self._up_link, passed)
        link = self._up_link or passed
        if self._up_before is not None:
            up.held = min(
                self._up_before, self._bound(int(link / SHAPE_SHARE * CUT_GOOD), up.ceiling)
            )
        # once shaped under CUT_SHARE of what the modem passed its queue there drains: a rise
        # then is that queue seen late, or the download's (the acknowledgements let go at
        # once, its senders burst: 190-230 ms at the modem for 3 s, bench 16:26 UTC, while
        # the upload was cut twice more, to 0.47 of its link)
        # at once on its first tick, though a take-back came just before it (a turn's failure
        # read on the slowing's first rise: cut a tick later, the download's acknowledgements
        # released then grew its queue at the modem to 397 ms, bench/capacity_follow.py --vary
        # up, est16f 22:21 UTC; 165 ms beside it without that take-back)
        if (
            first or up.since_cut_s >= REFRACTORY_S
        ) and up.capacity * SHAPE_SHARE > CUT_SHARE * link:
            up.recent = []
            self._cut(Direction.UP, up, passed, delay_s)
            self._since_up_slow_s = 0.0  # the rises its queue makes are seen 1-3 s late
        elif (not first and down.capacity is not None and down.since_cut_s >= REFRACTORY_S
              and self._since_try_s >= BLAME_S  # a failed try's queue, seen late: not the download's
              and up.since_cut_s >= REFRACTORY_S and up.capacity * SHAPE_SHARE <= CUT_SHARE * link
              and achieved[Direction.DOWN] >= TOOK_SHARE * down.capacity * SHAPE_SHARE
              and len(self._delays) >= 2 and delay_s > self._delays[-2] + RISE_S):  # fmt: skip
            # shaped under the slower link, the download passes its whole rate again (its
            # acknowledgements no longer wait at the modem) and the delay grows (the upload's
            # queue there, seen late, shrinks): the download's own queue, their release's
            # burst. Left alone, it grew to 140-200 ms for 4 s (bench/capacity_follow.py
            # --vary up, est16f 22:25 UTC; 80-165 at 7d2d316)
            self._cut(Direction.DOWN, down, achieved[Direction.DOWN], delay_s)

    def _seen_late(self, direction: Direction, achieved: Mapping[Direction, float]) -> bool:
        """A download raise that passed at its rate (TOOK_SHARE), or an upload's back up
        to what it held, is not what a rise within BLAME_S of a take-back shows (that
        probe's queue, seen late: a download's blamed on the upload's next raise back
        made it forget what it held, and take turns that paused the download), nor one
        once more passed than where its last probe failed (the link is faster now):
        blamed on the next raise, a link that had just got faster was taken for a
        failure at 0.9 of the old one and climbed again in 2% steps."""
        state = self._state[direction]
        if direction is Direction.UP:  # back up to what it held: no probe, a take-back's queue
            return not self._probing(direction) and self._since_back_s < BLAME_S
        if state.capacity is None:
            return False
        passed = achieved[direction] >= TOOK_SHARE * state.capacity * SHAPE_SHARE
        # more than where it last failed by NEAR_STEP: what passes moves by 1-2% a tick, and a
        # download probe 2% past its link, passing 0.99 of it where it failed at 0.98, was taken
        # for a faster link, the rise blamed on the upload, and its queue at the modem grew to
        # 147 ms in 5 s (bench 01:41 UTC, est16b)
        faster = state.last_failed is not None and (
            achieved[direction] >= state.last_failed * SHAPE_SHARE * NEAR_STEP
        )
        # but not a step past where it failed that passed no more than there (_past_unjudged):
        # only the round trips judge it. Excused a tick after an upload's turn failed early (10 ms
        # at the modem, TURN_RISE_S), it grew 32, 59, 87, 120 ms at the modem unjudged (bench/
        # capacity_follow.py --slow-share 1.0, est16f 22:34 UTC)
        return (
            passed
            and (self._since_back_s < BLAME_S or faster)
            and not self._past_unjudged(state, achieved)
        )

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

    def _not_taken(
        self,
        active: dict[Direction, _Direction],
        achieved: dict[Direction, float],
        waits: Mapping[Direction, float],
    ) -> bool:
        """A download raised a tick ago that did not pass at its new rate (while
        loaded): the modem's rate is under it. What passes the uplink is what
        the modem let through, so this is seen a tick after the raise, before
        the round trips rise; taken back as a failed probe. True if it was.
        Not while an upload probe is judged: its queue at the modem holds the
        download's acknowledgements back, and the download passes less too.
        Nor while our own download queue holds FULL_WAIT_S or more: then the modem
        passed all we were sent, and the shortfall is our shaper's lumpiness (at
        2-3 Mbit/s a second is four 64 KB super-packets; measured: such a download
        passed 0.85-0.95 of its rate with 250-560 ms queued here, each raise was taken
        back under what passed, and it fell from 20 to 1-3 Mbit/s for good)."""
        state = active.get(Direction.DOWN)
        if (
            self._probing(Direction.UP)
            or self._acks_held(deep=True)  # read one way: a deep queue there holds them back
            or state is None
            or not state.recent
            or state.capacity is None
            or state.recent[-1][0] > 1.5
            or waits.get(Direction.DOWN, 0.0) >= FULL_WAIT_S
        ):
            return False
        shaping = state.capacity * SHAPE_SHARE
        if not LOADED_SHARE * shaping <= achieved[Direction.DOWN] < TOOK_SHARE * shaping:
            return False
        self._take_back(Direction.DOWN, state, achieved)
        return True

    def _probe(self, active: dict[Direction, _Direction], achieved: dict[Direction, float]) -> None:
        """Raise one loaded direction whose last raise was judged (JUDGE_S),
        PROBE_GAP_S after any probe: the one raised longer ago. Beside it, an
        upload back up towards what it held (no probe: the download goes on)."""
        self._back_to_held(achieved)
        if (
            min(s.since_probe_s for s in self._state.values()) < PROBE_GAP_S * 0.9
        ):  # a tick comes a little early
            return
        loaded = {d: s for d, s in active.items() if s.capacity is not None and not s.hold_s
                  and achieved[d] >= LOADED_SHARE * s.capacity * SHAPE_SHARE
                  and (not s.recent or s.recent[-1][0] >= self._judge_s(d))}  # fmt: skip
        up, down = self._state[Direction.UP], self._state[Direction.DOWN]
        # the upload's turn: while the download is held, or after UP_TURN_S while the
        # download sits at its link (in its near zone; it pauses meanwhile, so one probe
        # is judged at a time), not while it climbs; never while the upload cannot rise
        near = (  # the download stable in its near zone: failed again at about the same rate
            down.failed_at is not None
            and down.failures >= 2
            and down.good_at <= (down.capacity or 0) <= down.failed_at
        )
        if Direction.UP in loaded:
            self._refresh(up)
        up_step = self._step(Direction.UP, up) if Direction.UP in loaded else None
        # read one way, a turn every ONE_WAY_TURN_S from the last (est16j: a raise past the old
        # rate within ~5 s of any change), near zone or not: a failed one is taken back within a
        # glance or two and pauses the download no longer (its raises back to what it held are
        # no turn); its take-back's queue drained (REFRACTORY_S), not seen in the round trips
        one_way = self._one_way()
        # read one way, not while the download climbs past where it last failed (a faster link:
        # with turns every 5 s regardless, a doubled download link took over 10 s in 109 of 198
        # changes in test_capacity_one_way.py's toy; so, 59; with no reader, 57)
        climbing = (down.streak > 0 and down.since_raise_s <= STREAK_GAP_S
                    and ((down.last_failed is not None and (down.capacity or 0) > down.last_failed)
                         or down.cut_passed * NEAR_STEP < (down.capacity or 0)
                         < KNOWN_SHARE * (down.known or 0)))  # fmt: skip
        # (under KNOWN_SHARE of its rate before its cut only once past what passed at the cut:
        # under that, a link halved for good climbs as one that comes back does; held from the
        # cut, an upload doubled 8 s after the download's link halved waited for its whole
        # climb, within 10 s in 24 of the toy's 48 such changes, up to 24 s; so, 43, up to 11)
        # climbed in a row to where it last failed, not past it yet: its step past is a tick or two
        # away, its near zone no reason for a turn (one there paused a doubled download 3-4 s:
        # bench (B) 12 s twice, est31; the toy's 198 changes: 139 -> 147 within 10 s, max 17 -> 13).
        # Its step past held a tick ("down held: a queue at where it failed", _step: round trips
        # over RISE_S) refreshed its streak to 0, and the turn came between all the same: 3 of 6
        # bench records (est34: b_d3 at 45.2 s, the link back from halved followed in 12 s;
        # a_d2 at 40.3 s; b_B1 at 35.9 s): past_failed (reached, its step past next) holds it
        reached = (
            (down.streak >= 2 or down.past_failed)
            and down.since_raise_s <= STREAK_GAP_S
            and down.last_failed is not None
            and (down.capacity or 0) >= down.last_failed
        )
        climbing = climbing or reached
        if one_way:
            below = self._below_known()
            due = (up.since_probe_s >= (KNOWN_TURN_S if below else ONE_WAY_TURN_S)
                   and ((near and not reached) or not climbing or below))  # fmt: skip
        else:
            due = up.since_raise_s >= UP_TURN_S and near
        up_turn = (
            up_step is not None
            # the download's last failure seen in the round trips
            and down.since_cut_s >= (REFRACTORY_S if one_way else BLAME_S)
            and (Direction.DOWN not in loaded or due)
        )
        if self._probing(Direction.UP):  # judged by the round trips: no download probe meanwhile
            if up_step is None or (
                Direction.DOWN in loaded and up.streak >= self._up_turn_raises()
            ):
                return  # the upload goes on while its turn lasts
            if self._turn_above(TURN_HOLD_S, readings=1):
                return  # the last raise may be past the link: judged on, not raised on
            if self._one_way() and not self._up_fresh:
                return  # no reading at this look: no one-way raise (ONE_WAY_GONE_S says why)
            state, step = up, up_step
        elif up_turn and (one_way or not up.recent):
            if down.recent and down.recent[-1][0] < JUDGE_S[Direction.UP]:
                return  # the download's last raise is still being judged (by the round trips)
            if one_way and not self._up_fresh:
                return  # no reading at this look: no one-way turn (ONE_WAY_GONE_S says why)
            if one_way:  # from the smallest step (its raises back to what it held: no turn's)
                # and the download's after it are not in a row with those before it either: a
                # 12% step 5 s after its last, across a turn, put 104 ms at the modem (owd29, D2)
                up.streak = down.streak = 0
                if (up_step := self._step(Direction.UP, up)) is None:
                    return
            state, step = up, up_step  # type: ignore[assignment]
        elif Direction.DOWN in loaded:  # refreshed only now: its near zone holds the upload's turn
            self._refresh(down)
            if self._past_unjudged(down, achieved):
                return
            if (down_step := self._step(Direction.DOWN, down)) is None:
                return
            state, step = down, down_step
        else:
            return
        self._raise(state, step)
        state.since_probe_s = 0.0

    def _past_queue(self, achieved: Mapping[Direction, float], delay_s: float,
                    waits: Mapping[Direction, float]) -> bool:  # fmt: skip
        """A download step past where it failed, not judged yet (_past_unjudged), whose round
        trips read over RISE_S and NOISE_SHARE of our download queue's wait (not the upload's:
        update() says why): it failed."""
        down = self._state[Direction.DOWN]
        return (not self._trying and bool(down.recent)
                and delay_s > RISE_S + NOISE_SHARE * waits.get(Direction.DOWN, 0.0)
                and self._past_unjudged(down, achieved))  # fmt: skip

    def _turn_above(self, margin_s: float, readings: int) -> bool:
        """An upload turn (its probes, judged by the round trips) whose last `readings` delays
        are all margin_s above what the delay read before its first raise (TURN_HOLD_S says
        why); that reference is read only while the turn lasts (_probing)."""
        if self._one_way():  # the reading instead: held at one look at SEEN_MS, failed at _up_seen
            held = self._up_high >= 1 if margin_s <= TURN_HOLD_S else self._up_seen()
            return self._probing(Direction.UP) and held
        before = self._raise_delay[Direction.UP]
        recent = list(self._delays)[-readings:]
        return (self._probing(Direction.UP) and before is not None and len(recent) == readings
                and min(recent) > before + margin_s)  # fmt: skip

    def _past_unjudged(self, down: _Direction, achieved: Mapping[Direction, float]) -> bool:
        """A download raised past where its probe last failed (within SUSPECT_S) that passed
        at its rate (TOOK_SHARE) but not NEAR_STEP more than where it failed is not judged
        yet: 2-3% past the link passes that test, and the round trips show it a tick or two
        later. Not raised on meanwhile: RAISE_STEPS' 6% on such a step went 1.07-1.09 past the
        link, 55-121 ms at the modem (bench/capacity_follow.py, est16b, est16d)."""
        return (bool(down.recent) and down.last_failed is not None
                and (down.capacity or 0) > down.last_failed
                and achieved[Direction.DOWN] < down.last_failed * SHAPE_SHARE * NEAR_STEP)  # fmt: skip

    def _raise(self, state: _Direction, step: float) -> None:
        self._note_raise(Direction.UP if state is self._state[Direction.UP] else Direction.DOWN)
        state.recent.append((0.0, state.capacity))  # type: ignore[arg-type]
        raised = int(state.capacity * step)  # type: ignore[operator]
        if (state.failed_at is not None and abs(raised - state.failed_at) <= 1
                and state.good_at >= state.failed_at):  # fmt: skip
            # a step up to where a glance's take-back failed (where its raise began: good_at
            # too) landed a byte under it (1242427 for 1242428): not reached (_refresh), under
            # good_at (not across, _step), so the step on was a near step of 2% past it, not
            # PAST_STEP judged in its tick: a download whose link had come back was taken back
            # there at glances for a minute (owd29's 01:04 run, 50-59 s)
            raised = state.failed_at
        state.capacity = self._bound(raised, state.ceiling)
        if state is self._state[Direction.DOWN]:  # what passes from here (_raise_kept_up)
            self._raised_bytes, self._raised_s, self._raised_here = 0.0, 0.0, self._here
        self.decisions.append(f"raise {_name(state, self._state)} x{step:.3f}")
        state.since_raise_s, state.streak, state.past_failed = 0.0, state.streak + 1, False

    def _probing(self, direction: Direction) -> bool:
        """A raise of this direction above what it held is being judged."""
        state = self._state[direction]
        one_way = direction is Direction.UP and self._one_way()
        return bool(state.recent) and state.since_probe_s <= (
            ONE_WAY_SUSPECT_S if one_way else SUSPECT_S
        )

    def _note_held(self, achieved: Mapping[Direction, float]) -> None:
        """No rise this tick: a loaded direction with no raise being judged holds its capacity."""
        for direction, state in self._state.items():
            if (state.capacity is not None and not state.recent and state.capacity >= (state.held or 0)
                    and achieved[direction] >= LOADED_SHARE * state.capacity * SHAPE_SHARE):  # fmt: skip
                state.held, state.since_held_s = state.capacity, 0.0

    def _back_to_held(self, achieved: Mapping[Direction, float]) -> None:
        """An upload cut under what it held lately (a cut of both when the download's
        link slowed, say) goes back up to it in the download's steps, JUDGE_S[DOWN] apart:
        no probe, so the download is not paused for it (its probes are). At 5e87987 it
        came back only in probes, two every 20 s, each pausing the download ~8 s: a link
        that got faster meanwhile was followed in 15-18 s, and the upload sat at 0.54-0.67."""
        up = self._state[Direction.UP]
        # after a failed try, back to the rate it began from (it passed) in one step, and no raise
        # to judge: the next try may start at the next tick (TRY_GAP_S)
        if (up.capacity is None or up.held is None or up.hold_s
                or up.since_raise_s < JUDGE_S[Direction.DOWN]
                or achieved[Direction.UP] < LOADED_SHARE * up.capacity * SHAPE_SHARE
                or up.capacity * 1.001 >= up.held):  # fmt: skip
            return
        self._refresh(up)
        steps = RAISE_STEPS[Direction.DOWN]
        if self._back_from_try == up.held:
            self._back_from_try = None
            self._raise(up, up.held / up.capacity)
            up.recent.pop()
            return
        self._raise(up, min(steps[min(up.streak, len(steps) - 1)], up.held / up.capacity))

    def _refresh(self, state: _Direction) -> None:
        """Before a raise: a capacity past where a probe failed means the link is
        faster now (found again from the smallest step); raises far apart are not in a row."""
        if state.failed_at is not None and (state.capacity or 0) >= state.failed_at:
            down = state is self._state[Direction.DOWN]
            # a download's step past it (_step) was judged and passed: climb on as after PAST_STEP
            stepped = down and (state.capacity or 0) >= state.failed_at * PAST_STEP * 0.999
            state.failed_at, state.streak = None, 1 if stepped else 0
            state.past_failed = down and not stepped
        if state.since_raise_s > STREAK_GAP_S:
            state.streak = 0  # not raises in a row: the next step is the smallest again

    def _step(self, direction: Direction, state: _Direction) -> float | None:
        """The factor of this direction's next raise; None: none now."""
        if state.capacity is None:
            return None
        steps = self._raise_steps(direction)
        step = PAST_STEP if state.past_failed else steps[min(state.streak, len(steps) - 1)]
        top = state.top_failed
        if direction is Direction.DOWN and state.failed_at is None and top is not None \
                and state.capacity * NEAR_STEP < top < state.capacity * step:  # fmt: skip
            # a climb (past a lower failure, or where it failed forgotten) across the highest
            # failure since the last cut, more than a near step on: up to it, then PAST_STEP
            # from there (TOP_FAILED_S)
            state.failed_at, state.good_at, state.last_failed = top, int(top / NEAR_STEP) + 1, top
        if state.failed_at is not None and state.capacity * step > state.good_at:
            if direction is Direction.UP and state.since_raise_s < SUSPECT_S:
                return None  # the last step is still being judged: near the link, one at a time
            # up to where it passed in one step, then small ones (a download up to where it
            # failed, est16e, when that is within a small one: a tick more for each probe else)
            top = state.good_at
            if direction is Direction.DOWN and state.failed_at <= state.good_at * NEAR_STEP:
                top = state.failed_at
            step = max(NEAR_STEP, min(step, top / state.capacity))
            if (
                direction is Direction.UP
            ):  # an overshoot of 1-2% is not seen for seconds: stay under
                step = min(step, state.failed_at / NEAR_STEP / state.capacity)
                if step <= 1.001:
                    return None
        if direction is Direction.DOWN:
            across = state.failed_at is not None and \
                state.good_at <= state.capacity < state.failed_at <= state.capacity * step  # fmt: skip
            shows = bool(self._delays) and self._delays[-1] > RISE_S
            if (across or state.past_failed) and self._since_back_s < BLAME_S and shows:
                # a rise now is blamed on that take-back's queue (_seen_late) until it drained: a
                # step past where it failed a tick after an upload's went unjudged 3 s, 83 ms at
                # the modem (bench/capacity_follow.py, est16e)
                return None
            if across:  # up to it, not across it, then PAST_STEP from there (a step at most)
                assert state.failed_at is not None
                if state.failed_at > state.capacity * 1.005:
                    return state.failed_at / state.capacity
            if (across or state.past_failed) and shows:
                # at where it failed (what passed the modem there: its whole rate) the round trips
                # read a queue, the modem's, its senders' windows growing: PAST_STEP on it added a
                # tick of 4-5% past the modem's rate to it, 35-72 ms at the take-back (median 56;
                # 12 of 37 in the recordings), 13-59 (median 36) from round trips under RISE_S
                # (est16g). Judged on instead: a rise takes the step up to it back (_rise)
                self.decisions.append("down held: a queue at where it failed")
                return None
            if across:
                assert state.failed_at is not None
                return state.failed_at * PAST_STEP / state.capacity
        return step

    def _take_back(self, direction: Direction, state: _Direction, achieved: Mapping[Direction, float],
                   failed_at: int | None = None) -> None:  # fmt: skip
        """A failed probe: back under where it started (and under what passed),
        and the next probes near it go in small steps. A download's raises
        before its last were judged by what passed (TOOK_SHARE): it alone is
        blamed; an upload's, every raise within BLAME_S."""
        window = 0.0 if direction is Direction.DOWN else BLAME_S
        blamed = [i for i, (age, _) in enumerate(state.recent) if age <= window] or [
            len(state.recent) - 1
        ]
        first = blamed[0]  # the earliest raise that can have made the queue
        good = state.recent[first][1]
        back = int(good * BACK_SHARE)
        if direction in achieved:
            back = min(back, int(achieved[direction] * CUT_SHARE / SHAPE_SHARE))
        failed = (
            state.recent[first + 1][1]
            if first + 1 < len(state.recent)
            else (state.capacity or good)
        )
        if direction is Direction.DOWN and direction in achieved:
            # what passed is what the modem let through: when even the rate before
            # the raise did not pass, the link slowed meanwhile; probe near what did
            passed = int(achieved[direction] / SHAPE_SHARE)
            failed, good = min(failed, max(passed, back)), min(good, max(passed, back))
        if failed_at is not None:  # a glance's: where the raise began (glance())
            failed = min(failed, failed_at)
        # the near zone spans NEAR_ZONE at most: past it the link is faster now
        again = state.last_failed is not None and abs(failed / state.last_failed - 1) <= SAME_LINK
        state.failed_at, state.good_at = min(failed, int(good * NEAR_ZONE)), good
        state.since_failed_s, state.last_failed = 0.0, failed
        if direction is Direction.DOWN and failed >= (state.top_failed or 0):
            state.top_failed, state.since_top_s = failed, 0.0
        state.failures = state.failures + 1 if again else 1
        holds = self._hold_s(direction)
        state.hold_s = holds[min(max(state.failures, 1), len(holds)) - 1]
        if direction is Direction.UP and not self._probing(direction):
            state.held = None  # a raise back to what it held failed: the link is slower now
        state.capacity, state.recent, state.streak = self._bound(back, state.ceiling), [], 0
        if direction is Direction.DOWN:  # what the round trips read as it drains (_rise)
            self._down_cut_delay = self._delays[-1] if self._delays else 0.0
        self.decisions.append(f"take back {direction.value} (failed at {failed * 8e-6:.2f})")
        state.since_cut_s, self._since_back_s = 0.0, 0.0

    def _cut(
        self, direction: Direction, state: _Direction, achieved: float, delay_s: float,
        most: float = MAX_CUT_SHARE,
    ) -> None:  # fmt: skip
        """Shape at a share of what passed, so the queue beyond drains; a
        download probes again in small steps near what passed (the modem's rate)."""
        share = DEEP_CUT_SHARE if delay_s > DEEP_RISE_S else CUT_SHARE
        cut, before = int(achieved * share / SHAPE_SHARE), state.capacity or 0
        if (
            state.capacity is not None
        ):  # a stall (little passed, round trips stale) must not drop it to the floor
            cut = min(max(cut, int(state.capacity * most)), state.capacity)
        state.capacity = self._bound(cut, state.ceiling)
        self.decisions.append(f"cut {direction.value}")
        state.since_cut_s, state.streak, state.failures = 0.0, 0, 0
        # an upload cut beside a download whose link slowed keeps where its probe failed
        if direction is Direction.DOWN:
            state.failed_at = None
        if direction is Direction.DOWN:  # what passed, passed the modem: back up to it at once
            self._down_cut_delay = delay_s  # its queue drains from there (_rise)
            # or what it held lately (HELD_S), if more: a probe that failed as the link halved
            # is taken back first and the cut begins from there (14.06 Mbit/s where it held
            # 19.5), so its climb back passed KNOWN_SHARE of that at 0.6 of its old link and an
            # upload turn came between every three raises: back from halved in 14 s on the
            # bench (est34's b_d1), 36 of the toy's 48 within 10 s (so, 45)
            if state.held is not None:
                before = max(before, state.held)
            if state.known is None or state.since_known_s > KNOWN_S or before > state.known:
                state.known = before  # its link passed that lately (climbing, _probe)
            state.since_known_s = 0.0
            state.top_failed = None  # the link slowed: higher failures tell nothing now
            link = achieved / SHAPE_SHARE
            state.cut_passed, state.since_cut_only_s = int(link), 0.0
            state.good_at = max(state.capacity, self._bound(int(link * CUT_GOOD), state.ceiling))
            state.failed_at = max(state.good_at, self._bound(int(link * CUT_FAILED), state.ceiling))
            state.since_failed_s = 0.0

    def _bound(self, bps: int, ceiling: int) -> int:
        return max(min(self.floor_bps, ceiling), min(bps, ceiling))


def _name(state: _Direction, states: Mapping[Direction, _Direction]) -> str:
    return next(str(d) for d, s in states.items() if s is state)
