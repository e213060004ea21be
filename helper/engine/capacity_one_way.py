"""The capacity estimator's rules for the upload's one-way reading (issue 16; owd29-est31):
what a look's reading says (SEEN_MS, the deep hold, a queue standing there), the cut it makes
and the take-back of a raise it judges, and the rate before such a cut (KNOWN_S). Split from
capacity_estimate.py (est32; that file had grown to 1,560 lines) with no behaviour change:
CapacityEstimator inherits them, sets up the state they keep in its __post_init__ and says in
its module docstring when each applies; the constants, in capacity_tuning.py, say why."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from chadthrottle.contract import Direction
from chadthrottle.helper.engine.capacity_tuning import (
    BLAME_S,
    DEEP_CUT_SHARE,
    DEEP_HOLD_MAX_S,
    DEEP_RISE_S,
    DOWN_HOLD_AFTER_S,
    KNOWN_S,
    KNOWN_SHARE,
    MAX_CUT_SHARE,
    MIN_TRAFFIC_BPS,
    NOT_OURS_S,
    ONE_WAY_CLOSE_S,
    ONE_WAY_DRAIN_S,
    ONE_WAY_GONE_S,
    ONE_WAY_HOLD_S,
    ONE_WAY_LATE_S,
    REFRACTORY_S,
    RISE_S,
    SEEN_MS,
    STAND_MS,
    STAND_WOBBLE,
    SURE_ACKS,
)
from chadthrottle.helper.kernel.one_way_reading import UploadQueueReading
from chadthrottle.helper.kernel.priority_classes import SHAPE_SHARE

if TYPE_CHECKING:
    from chadthrottle.helper.engine.capacity_estimate import _Direction


class OneWayRules:
    """The one-way reading's rules, a part of CapacityEstimator (which sets each field below
    in __post_init__, with what it holds, and defines the three methods at the end)."""

    decisions: list[str]
    _state: dict[Direction, _Direction]
    _trying: list[int]
    _since_back_s: float
    _since_reading_s: float
    _since_up_seen_s: float
    _since_up_deep_s: float
    _since_up_low_s: float
    _deep_for_s: float
    _up_ms: float | None
    _up_ms_before: float | None
    _up_gap_s: float
    _up_gap_before_s: float
    _up_high: int
    _up_many: bool
    _up_fresh: bool
    _since_one_way_cut_s: float
    _cut_seen_s: float
    _cut_depth_ms: float
    _cut_reading_ms: float
    _up_loaded: bool
    _tick_delay: float
    _since_one_way_back_s: float
    _up_known: int | None
    _since_known_s: float

    def _note_reading(self, seconds: float, reading: UploadQueueReading | None) -> None:
        """Note a look's one-way reading of the upload's queue (SEEN_MS); none, or one that
        is not a reading (no ACK read, negative, NaN), leaves the count as it stood."""
        self._since_reading_s += seconds
        self._since_up_seen_s += seconds
        self._since_up_deep_s += seconds
        self._since_up_low_s += seconds
        self._up_fresh = False
        ms = None if reading is None else reading.queue_ms
        if ms is None or not 0.0 <= ms < float("inf"):
            return
        assert reading is not None
        self._up_gap_before_s = self._up_gap_s
        self._up_ms_before, self._up_ms, self._up_gap_s = self._up_ms, ms, self._since_reading_s
        self._since_reading_s, self._up_fresh = 0.0, True
        self._up_high = self._up_high + 1 if ms >= SEEN_MS else 0
        if ms >= SEEN_MS:
            self._since_up_seen_s = 0.0
        else:
            self._since_up_low_s = 0.0
        if ms >= DEEP_RISE_S * 1000:
            self._deep_for_s = (
                self._deep_for_s + seconds if self._since_up_deep_s <= DOWN_HOLD_AFTER_S else 0.0
            )
            self._since_up_deep_s = 0.0
        self._up_many = reading.readings >= SURE_ACKS
        # a reading that stands where a cut left it (not_ours) or of few ACKs (a delayed ACK's
        # 40 ms) renews no excuse: a standing forged reading excused every round-trip rise
        # for as long as it stood, the download's own queue never cut (review33a H1)
        level = self._not_ours(ms) or reading.readings < SURE_ACKS
        if ms >= SEEN_MS and self._cut_seen_s < BLAME_S and not level:
            self._cut_seen_s = 0.0  # a cut's queue still draining: its rise is seen later

    def _acks_held(self, deep: bool = False) -> bool:
        """The upload's one-way reading read SEEN_MS within DOWN_HOLD_AFTER_S: the download's
        acknowledgements wait at the modem behind it, and our download queue falls for that.
        Taken for the download's failure, each of three such falls (0.1 s after an upload's
        take-back, 10-11 ms in the modem's upload queue, its download queue empty) took back a
        download raise that had passed its tick (owd29's 01:08 (B) run at 32.0 s, 00:36 and
        00:41 runs): the download kept where it failed and was not followed in 20 s. deep: a
        reading of DEEP_RISE_S (what a second's passing, TOOK_SHARE, shows: with a turn's 5-20
        ms there too, the toy's doubled download took over 10 s in 110 of 198 changes, not 139;
        with the halved link's 396 ms, the download was taken back to 0.35 of its link for 20
        s, owd30's H2 at 21 s)."""
        since = self._since_up_deep_s if deep else self._since_up_seen_s
        if deep and self._deep_for_s > DEEP_HOLD_MAX_S:
            return False  # standing that deep: not a queue of ours, which a cut drains
        return self._one_way() and since <= DOWN_HOLD_AFTER_S

    def _one_way(self) -> bool:
        """The one-way reading arrives: the upload judged by it (SEEN_MS), in its cadence."""
        return self._since_reading_s <= ONE_WAY_GONE_S

    def _up_seen(self) -> bool:
        """The reading shows a queue at the modem: SEEN_MS at two looks in a row, or at one
        of SURE_ACKS ACKs or more."""
        return self._up_high >= 2 or (self._up_high >= 1 and self._up_many)

    def _up_judged(self) -> bool:
        """An upload raise judged by the one-way reading (a try's steps: by the round trips)."""
        up = self._state[Direction.UP]
        return (self._one_way() and not self._trying and self._probing(Direction.UP)
                and bool(up.recent))  # fmt: skip

    def _one_way_take_back(self) -> None:
        """A failed upload raise, seen by the reading: its last raise alone is blamed (the
        round trips show a 1-3% overshoot 3-4 s late, BLAME_S; the reading within the modem's
        bucket: 1.5-1.6 s at 2%, 0.1 s at 25%, owd28), and the download holds while the
        acknowledgements the modem's upload queue held arrive at once (est25: +35-60 KB)."""
        up, down = self._state[Direction.UP], self._state[Direction.DOWN]
        up.recent = up.recent[-1:]
        self._take_back(Direction.UP, up, {})
        down.hold_s = max(down.hold_s, DOWN_HOLD_AFTER_S)
        self._up_high = 0
        # its queue (5-20 ms, drained in a few tenths) excuses a rise for ONE_WAY_LATE_S, not
        # BLAME_S: a download raise past its link made just before the turn grew 20-140 ms at
        # the modem unjudged for BLAME_S (the toy, test_capacity_one_way.py)
        self._since_back_s = BLAME_S - ONE_WAY_LATE_S
        self._since_one_way_back_s = 0.0

    def _up_standing(self) -> bool:
        """This tick's reading shows a queue at the modem (_up_seen) not draining (no lower
        than the look before by more than the far clock's tick) with no upload raise judged:
        the upload's link slowed under what we send (a failed raise's take-back drains it).
        Not within ONE_WAY_DRAIN_S of a take-back (its queue read 10 ms 0.2 s on, as it
        drained: cut for it, owd29's D2 at 58 s), nor of such a cut when the two readings are
        ONE_WAY_CLOSE_S apart at most; REFRACTORY_S when further: a look's least over a second
        while a cut drains is where the drain stood at its end, above the last (the growth's
        start): cut twice so, the toy's upload fell to 0.6-0.7 of its link. Read at glances
        too (wants_glances): at ticks alone, a link halved under the upload filled the modem's
        400 ms over the second before the tick (owd29's H1, 20-21 s)."""
        up = self._state[Direction.UP]
        # two readings each of a glance or two (a tick's of a second is its start's least: read
        # against the next glance's, a draining queue grew, and was cut to 0.44 of its link)
        close = max(self._up_gap_s, self._up_gap_before_s) <= ONE_WAY_CLOSE_S
        # and deeper than at the last cut, the reading no deeper than the round trips' rise
        # (_one_way_cut): a reading standing as it was is cut REFRACTORY_S apart, as the round
        # trips' rule cuts (a forger's 300 ms with round trips at 11 ms: cut each second, to the
        # floor in 30 s where that rule left 0.14 of the upload; review32's E1 residual)
        deeper = min(self._up_ms or 0.0, self._tick_delay * 1000) > self._cut_depth_ms + 1.0
        # not draining: no lower than the look before by more than the far clock's tick, or by
        # STAND_WOBBLE of a deep one (a full buffer's looks read 396, 388, 394, 366, 347, 368 ms:
        # cut only at the sixth, 0.7 s on, owd30's H2 at 21 s; a second cut waits REFRACTORY_S)
        before = self._up_ms_before or 0.0
        # of SURE_ACKS ACKs: a delayed one's 40 ms reads as growth (the toy cut a draining
        # queue for one, to 0.51 of its link)
        # loaded, and the round trips (the last tick's) risen too: STAND_MS says why
        return (self._one_way() and self._up_fresh and self._up_many and self._up_seen()
                and (self._up_ms or 0.0) >= STAND_MS and self._up_loaded
                and self._tick_delay >= RISE_S and not self._trying
                # round trips risen past what the reading explains are another queue's (the
                # download's failed probes), unless the reading grows (review33a H2)
                and (self._tick_delay * 1000 <= (self._up_ms or 0.0) + RISE_S * 1000
                     or (self._up_ms or 0.0) > before + 2.0
                     or self._fresh_deep())
                and up.capacity is not None and not (self._probing(Direction.UP) and up.recent)
                and self._since_one_way_cut_s >= (ONE_WAY_DRAIN_S if close and deeper else REFRACTORY_S)
                and self._since_one_way_back_s >= ONE_WAY_DRAIN_S
                and not (self._since_one_way_cut_s < NOT_OURS_S and self._not_ours(self._up_ms or 0.0))
                and (self._up_ms or 0.0) > before - max(1.0, STAND_WOBBLE * before))  # fmt: skip

    def _fresh_deep(self) -> bool:
        """The reading past DEEP_RISE_S, under SEEN_MS within BLAME_S: a queue that deep grew
        just now. Round trips risen past it are the download's queue too (its probe failed as
        the upload's link halved), not only another queue's: left uncut, the toy's halved upload
        stood at 345-395 ms for 10 s and more in 8 of 48 runs while the download was cut to
        0.05 of its link (est31). A far clock stepped that far stands (_not_ours), so its
        later round trips' rise (the download's queue) cuts nothing for it."""
        return (self._up_ms or 0.0) > DEEP_RISE_S * 1000 and self._since_up_low_s <= BLAME_S

    def _not_ours(self, ms: float) -> bool:
        """REFRACTORY_S after a one-way cut a queue of ours drains (at 1 - CUT_SHARE of the
        link: 150 ms a second); one that has neither fallen 20 ms a second (or half its depth)
        nor grown is not ours: forged, a far clock's step, another device's (review33a)."""
        since = self._since_one_way_cut_s
        if since < REFRACTORY_S or since == float("inf"):
            return False
        fell = self._cut_reading_ms - ms
        return ms <= self._cut_reading_ms + 5.0 and fell < min(
            0.5 * self._cut_reading_ms, 20.0 * since
        )

    def _one_way_cut(self, sent: float) -> None:
        """The upload's link slowed under what we send: cut to CUT_SHARE (DEEP_CUT_SHARE
        past DEEP_RISE_S) of what the modem passed, the bytes we sent less the queue's growth
        between the last two readings (a queue growing by g s a second passes 1 / (1 + g) of
        what enters it), so it drains. Measured before: the link halved from a doubled estimate
        built 175-250 ms at the modem before the round trips' rules cut (owd28)."""
        up, down = self._state[Direction.UP], self._state[Direction.DOWN]
        assert self._up_ms is not None and up.capacity is not None
        sent = sent if sent >= MIN_TRAFFIC_BPS else up.capacity * SHAPE_SHARE
        # both readings no deeper than the round trips' rise (the last tick's): a far end's
        # TSvals are its own, and a forger that also holds its ACKs raises the round trips only
        # by that hold, so its cuts are the round trips' rule's at most (review32's E1 residual:
        # cut by the reading's 300 ms, deep and each second, the upload went to the floor)
        rtt_ms = self._tick_delay * 1000
        depth = min(self._up_ms, rtt_ms)
        before = min(self._up_ms_before or 0.0, rtt_ms)
        growth = max(0.0, depth - before) / 1000 / max(self._up_gap_s, 0.1)
        # what it held or shaped before: its link passed that lately (_below_known)
        known = max(up.held or 0, up.capacity)
        if self._up_known is None or self._since_known_s > KNOWN_S or known > self._up_known:
            self._up_known = known
        self._since_known_s = 0.0
        up.recent, up.held = [], None  # the link is slower than what it held
        # deeper than MAX_CUT_SHARE when the reading is deep (DEEP_RISE_S; the round trips risen,
        # _up_standing): what we sent is what the modem passed, ACKs arrive, no stall (what the
        # bound is for); at MAX_CUT_SHARE of a doubled estimate the halved link's queue drained
        # at 5% of the link (400 ms: 7-8 s). A forger gains little: what we send is ours (but
        # where we send 36-59% of the shaping rate, one forged 300 ms reading with the round
        # trips at 11 ms still cuts to 0.30-0.50, past their rule's 0.5: review34a, toy)
        deep = self._up_ms / 1000 > DEEP_RISE_S
        # but only where what we sent puts the cut at that floor or above it (or the round
        # trips read as deep): a floor that decides is a stall or a reading not ours, bounded as
        # the round trips' rule (review33a M3: a forged 300 ms reading with the upload sending 5%
        # cut it to 0.25 at once, where that rule stops at 0.5; the toy's halved link, the round
        # trips 3 ticks late, sends 0.5 of the estimate: deep still)
        floor_sent = MAX_CUT_SHARE**2 * up.capacity * SHAPE_SHARE / DEEP_CUT_SHARE
        deep = deep and (depth / 1000 > DEEP_RISE_S or sent >= floor_sent)
        self._cut(Direction.UP, up, sent / (1.0 + growth), depth / 1000,
                  MAX_CUT_SHARE**2 if deep else MAX_CUT_SHARE)  # fmt: skip
        self.decisions[-1] += f": its one-way queue stood at {self._up_ms:.0f} ms"
        up.hold_s = max(up.hold_s, ONE_WAY_HOLD_S[0])
        down.hold_s = max(down.hold_s, DOWN_HOLD_AFTER_S)
        self._since_one_way_cut_s = self._cut_seen_s = 0.0
        self._up_high, self._cut_depth_ms = 0, depth
        self._cut_reading_ms = self._up_ms  # what its queue drains from (_not_ours)

    def _below_known(self) -> bool:
        """Read one way, the upload sits under KNOWN_SHARE of its rate before a one-way cut,
        KNOWN_S ago at most: a link that passed it lately may be back."""
        up = self._state[Direction.UP]
        return (self._one_way() and self._up_known is not None and up.capacity is not None
                and up.capacity < KNOWN_SHARE * self._up_known)  # fmt: skip

    # CapacityEstimator's (its own rules): declared here for the rules above
    def _probing(self, direction: Direction) -> bool:
        raise NotImplementedError

    def _take_back(
        self,
        direction: Direction,
        state: _Direction,
        achieved: Mapping[Direction, float],
        failed_at: int | None = None,
    ) -> None:
        raise NotImplementedError

    def _cut(
        self,
        direction: Direction,
        state: _Direction,
        achieved: float,
        delay_s: float,
        most: float = MAX_CUT_SHARE,
    ) -> None:
        raise NotImplementedError
