"""Blocks and quotas: what each live rule's gates should hold, and what is left
of its rates for the shaper.

The kernel holds a block, and a quota's budget, in the gate of the rule's slot
and direction (helper/kernel/gates.py): no packet passes a block, and a quota
lets packets through until its budget is spent. At a quota spent, a rule that
then throttles opens its gate and is shaped at its then-rate instead (within a
tick; until then the kernel holds it blocked), until the next period.

A write the kernel refuses changes nothing in the gate, and that gate is no
longer renewed (gates.py): what it held before (a block, a quota) holds on
until its lease lapses, LEASE_S at most, then it lets everything pass. Until
then the listing shows that old setting (Gating.truth), after it an open gate.
Only live rules' gates count there (and refuse a change): a rule taken out of
force has its processes untagged in the same apply, and the kernel finds a
packet's gate by its socket's tag, so that gate holds none of the sockets they
hold; one the untag cannot reach (handed to another process, a connection not
yet accepted) keeps the slot, and the old setting until the lapse: listed so
(GateTruth.untagged).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from chadthrottle.contract import HELD_BEFORE, Direction
from chadthrottle.helper.engine.limits import Limit, RuleKey, default_burst_bytes
from chadthrottle.helper.engine.quota_book import QuotaBook, QuotaState
from chadthrottle.helper.engine.quotas import Quota, period_start
from chadthrottle.helper.kernel.gates import LEASE_S, OPEN, GateSetting

log = logging.getLogger("chadthrottle.engine.gating")


class GatePort(Protocol):
    def set(self, slot: int, direction: Direction, setting: GateSetting) -> None: ...
    def used_since_set(self, slot: int, direction: Direction) -> tuple[int, int] | None: ...
    def renew(self) -> None: ...


Gate = tuple[int, Direction]  # slot, direction
# what a gate is to hold: a block, or a quota in the period it began (unix seconds)
Asked = tuple[Quota, float] | str
BLOCK = "block"


@dataclass(frozen=True)
class Lapsing:
    """A gate whose last write the kernel refused: what it held before holds
    on, unrenewed, until its lease ends."""

    until: float  # the clock's time its lease ends (open from then)
    closed: bool  # whether it refused all but bare ACKs then (a block, a spent quota)


@dataclass(frozen=True)
class GateTruth:
    """What the kernel holds for one rule's direction, as the last apply
    left it (Gating.truth): the one place the listing, closed() and a
    refusal read it from."""

    setting: GateSetting | None = None  # what its gate holds now (None: open, or lapsed)
    lapses_in_s: float = 0.0  # > 0: the setting before a refused write, held on this long more
    closed: bool = False  # it refuses all but bare ACKs now (a block, a quota spent)
    failed: str = ""  # why the kernel did not take its last write, or give its count
    unread: str = ""  # why its quota's count could not be read
    as_asked: bool = True  # the kernel holds what the rule asks (ListRules' in_force)
    # a rule taken out of force past a refused gate: its processes' sockets
    # pass, the old setting holds on (lapses_in_s) only where the untag could not reach
    untagged: bool = False


@dataclass
class Kept:
    """What the kernel holds in one gate, as the last write it took left it:
    the one record of it (until 2026-12-06 five parallel maps: the setting,
    what it meant, its rule, its lease, its lapse, kept in step by hand)."""

    setting: GateSetting  # as written (never OPEN: an opened gate has no record)
    means: Asked  # what it holds: a block, or a quota in the period it began
    rule: RuleKey  # the rule it was written for
    leased_at: float  # when its lease was last given (renew)
    lapsing: Lapsing | None = None  # a later write refused: no longer renewed


def held_on(lapses_in_s: float, rated: bool) -> str:
    """What the kernel holds after a refused write, in plain words: the
    setting before, lapses_in_s more at most (its lease), then nothing but
    the rate beneath where one holds (rated: the rule's own, a used-up
    quota's then-rate; until 2026-12-06 "all traffic" there too)."""
    then = "then only its rate limit holds" if rated else "then lets all traffic through"
    return f"{HELD_BEFORE} for {math.ceil(lapses_in_s):d} s more at most, {then}"


# Between walks of descriptors the leases are renewed this often at most (a
# lease is LEASE_S: well under it, so one walk of its own may take the rest).
RENEW_DUE_S = 0.5


class Gating:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        """clock: CLOCK_MONOTONIC's seconds, the clock the leases run on."""
        self._clock = clock
        self._quotas = QuotaBook()
        # what the kernel holds in each gate not open; one whose last write was
        # refused (lapsing) is tried again at every apply until a write is taken
        self._kept: dict[Gate, Kept] = {}
        self._closed: set[Gate] = set()  # the gates closed as the last apply left them
        # quotas spent whose then-rate rated() has given the shaper: only these
        # open their gate (before, the kernel keeps them blocked)
        self._shaped_at_then: set[tuple[RuleKey, Direction]] = set()
        # quotas spent whose gate the last apply left open for the shaper's then-rate
        self._opened_at_then: set[tuple[RuleKey, Direction]] = set()
        # the gates whose last write raised, and why (logged once, tried again
        # each apply); failed: the same by rule, listed with why (rule_listing)
        self._failing: dict[tuple[int, Direction], str] = {}
        self.failed: dict[tuple[RuleKey, Direction], str] = {}
        # the quota counts the last apply could not read (the read raised), and
        # why: by gate, and by rule (for a caller's refusal)
        self._unread: dict[tuple[int, Direction], str] = {}
        self._unread_of: dict[tuple[RuleKey, Direction], str] = {}
        # the gate of each rule's direction that holds something: its setting
        # is the one last written (a refused write leaves the one before, lapsing)
        self._held: dict[tuple[RuleKey, Direction], Gate] = {}
        # the refused gates of rules taken out of force: their processes were
        # untagged, but a socket the untag cannot reach keeps the slot, so the
        # gate's old setting, until its lease lapses (Gating.truth: untagged)
        self._untagged: dict[tuple[RuleKey, Direction], Gate] = {}
        # what the last apply asked of each gate: a block, or a quota in its period
        self._asked: dict[Gate, Asked] = {}
        self._renew_failed = ""  # why the last renew raised, "" when it did not
        self._renewed_at = float("-inf")  # when the leases were last renewed (renew)
        self.renew_due_s = RENEW_DUE_S  # renew_if_due's interval

    def apply(self, live: Iterable[tuple[RuleKey, int, dict[Direction, Limit]]], now: datetime,
              gates: GatePort, use: dict[tuple[RuleKey, Direction], tuple[float, int]]
              ) -> tuple[bool, set[tuple[str, Direction]]]:  # fmt: skip
        """Make the gates hold the live rules' blocks and quotas (live: rule,
        slot, limits), open every other, and renew the leases. use: what each
        quota's period used, as stored, brought up to date here. Returns
        whether a period began or a quota was spent (worth storing at once),
        and the (application, direction)s a quota now holds otherwise than at the last
        apply: spent (the kernel refuses since), whole again in a new period,
        or at its then-rate; their rates are measured afresh from here, as
        after a change of rules (RateMeter.restart)."""
        live = list(live)
        turned = False
        turned_apps: set[tuple[str, Direction]] = set()
        opened: set[tuple[RuleKey, Direction]] = set()
        wanted: dict[tuple[int, Direction], GateSetting] = {}
        whose: dict[tuple[int, Direction], RuleKey] = {}
        unread: dict[tuple[int, Direction], str] = {}
        anew: set[Gate] = set()  # quotas whose budget is set again (quota_book.py)
        book_was: dict[Gate, QuotaState | None] = {}  # the book's quota before it, for a refusal
        asked: dict[Gate, Asked] = {}
        followed = set()
        for key, slot, limits in live:
            for direction, limit in limits.items():
                if limit.quota is not None:
                    stored = use.get((key, direction))
                    was = self._quotas.state(key, direction)
                    followed.add((key, direction))
                    try:
                        state = self._quotas.follow(
                            key, direction, limit.quota, slot, now, gates.used_since_set, stored
                        )
                    except Exception as error:  # one count unread: its gate left as it is
                        unread[(slot, direction)] = str(error) or type(error).__name__
                        whose[(slot, direction)] = key
                        record = self._kept.get((slot, direction))
                        kept = (
                            GateSetting(blocked=True)
                            if limit.blocked
                            else (record.setting if record is not None else None)
                        )
                        if kept is not None:
                            wanted[(slot, direction)] = kept
                        asked[(slot, direction)] = (
                            BLOCK
                            if limit.blocked
                            else (limit.quota, period_start(limit.quota, now).timestamp())
                        )
                        continue
                    if was is not None and was.spent != state.spent:
                        turned_apps.add((key[0], direction))
                    use[(key, direction)] = (state.period_start, state.used)
                    turned |= (
                        stored is None
                        or stored[0] != state.period_start
                        or (state.spent and stored[1] < limit.quota.budget_bytes)
                    )
                    throttles = (
                        limit.quota.then_rate_bps and (key, direction) in self._shaped_at_then
                    )
                    if state.spent and not limit.blocked and throttles:
                        opened.add((key, direction))
                        if (key, direction) not in self._opened_at_then:
                            turned_apps.add((key[0], direction))
                        continue  # the shaper holds it at its then-rate now: rated()
                    if not limit.blocked:
                        record = self._kept.get((slot, direction))
                        if record and record.lapsing and (slot, direction) not in anew:
                            # written again, the kernel counts afresh: the budget left now
                            state = self._quotas.set_again(key, direction)
                        wanted[(slot, direction)] = GateSetting(budget_bytes=state.budget_at_set)
                        whose[(slot, direction)] = key
                        book_was[(slot, direction)] = was
                        asked[(slot, direction)] = (state.quota, state.period_start)
                        if was is None or (was.quota, was.period_start, was.slot) != (
                            state.quota,
                            state.period_start,
                            state.slot,
                        ):  # set again (a new period): written even if the same budget, so
                            # the kernel counts afresh (until 2026-12-06 a spent one stayed shut)
                            anew.add((slot, direction))
                if limit.blocked:
                    wanted[(slot, direction)] = GateSetting(blocked=True)
                    whose[(slot, direction)] = key
                    asked[(slot, direction)] = BLOCK
        self._asked = asked
        self._opened_at_then = opened
        self._shaped_at_then &= {
            k for k in followed if (held := self._quotas.state(*k)) and held.spent
        }
        for gate in set(self._kept) - set(wanted):
            if self._write(gates, gate, OPEN, self._kept[gate].means, self._kept[gate].rule):
                log.info("slot %d %s: open", gate[0], gate[1].value)
        for (slot, direction), setting in wanted.items():
            gate = (slot, direction)
            record = self._kept.get(gate)
            if record is None or record.setting != setting or record.lapsing or gate in anew:
                if not self._write(gates, gate, setting, asked[gate], whose[gate]):
                    if gate in book_was:  # the kernel counts from the set before
                        self._quotas.refused(whose[gate], direction, book_was[gate],
                                             gates.used_since_set)  # fmt: skip
                    continue  # not written: tried again at the next apply
                log.info(
                    "slot %d %s: %s",
                    slot,
                    direction.value,
                    "blocked" if setting.blocked else f"{setting.budget_bytes} bytes of quota left",
                )
        # a quota no longer asked for whose gate the kernel would not open
        # still counts there: the book follows it until the gate opens
        unopened = {(record.rule, g[1]) for g, record in self._kept.items() if g not in wanted}
        self._quotas.keep_only(followed | unopened)
        self._failing = {
            gate: why for gate, why in self._failing.items() if gate in wanted or gate in self._kept
        }
        self._note_unread(unread)
        unread_why = {g: f"its quota's count could not be read: {why}" for g, why in unread.items()}
        # a gate no longer wanted: the rule it was written for, while that rule
        # is live; one no longer live has its processes untagged by this apply
        # (Apply.tags), so its gate, refused or not, holds none of their sockets
        alive = {key for key, _slot, _limits in live}
        written = {g: record.rule for g, record in self._kept.items()}
        owners = {g: key for g, key in {**written, **whose}.items() if key in alive}
        self.failed = {
            (owners[g], g[1]): why
            for g, why in {**unread_why, **self._failing}.items()
            if g in owners
        }
        self._unread_of = {(whose[g], g[1]): why for g, why in unread.items() if g in whose}
        self._held = {(owners[g], g[1]): g for g in self._kept if g in owners}
        self._untagged = {(record.rule, g[1]): g for g, record in self._kept.items()
                          if record.rule not in alive and record.lapsing is not None}  # fmt: skip
        self._closed = {gate for (key, d), gate in self._held.items() if self.truth(key, d).closed}
        self.renew(gates)
        return turned, turned_apps

    def renew(self, gates: GatePort) -> None:
        """Extend the lease of every gate written and taken (apply does it at
        its end). A failure is logged once: the leases lapse (traffic fails
        open), the caller goes on."""
        renewed_at = self._clock()  # before: the kernel's lease ends no sooner than this says
        self._renewed_at = renewed_at
        try:
            gates.renew()
            for record in self._kept.values():
                if record.lapsing is None:
                    record.leased_at = renewed_at
            self._renew_failed = ""
        except Exception as error:  # the leases lapse (traffic fails open); the tick goes on
            if str(error) != self._renew_failed:
                log.error("could not renew the gates' leases: %s", error)
            self._renew_failed = str(error)

    def renew_due(self) -> bool:
        """Whether RENEW_DUE_S passed since the leases were last renewed."""
        return self._clock() - self._renewed_at >= self.renew_due_s

    def renew_if_due(self, gates: GatePort) -> None:
        """renew, if RENEW_DUE_S passed since the last: called between walks of
        processes' descriptors, which may hold the engine's lock for seconds
        (a limited program of 19,000 descriptors forking a child every 50 ms:
        2-2.4 s a tick), so that no block or quota lapses meanwhile (an
        administrator's block let 0.9 MB through in 20 s; rights28)."""
        if self.renew_due():
            self.renew(gates)

    def _write(self, gates: GatePort, gate: Gate, setting: GateSetting, means: Asked,
               rule: RuleKey) -> bool:  # fmt: skip
        """One gate written, and its record (Kept: means and rule, what the
        setting stands for and whose), or its failure kept and logged once
        (not every tick): one gate the kernel refuses must not keep the
        others, nor the tick's classes and caps after them, from being written."""
        slot, direction = gate
        at = self._clock()  # before the lease given: as renew()
        held = self._kept.get(gate)
        lapses = held is not None and held.lapsing is None  # if this write is refused
        closed = lapses and self._closed_now(gates, gate)  # read before: a refused set forgets it
        try:
            gates.set(slot, direction, setting)
        except Exception as error:
            why = str(error) or type(error).__name__
            if self._failing.get(gate) != why:
                log.error("slot %d %s: could not write its gate: %s", slot, direction.value, why)
            self._failing[gate] = why
            if held is not None and lapses:
                # unrenewed from here: what it holds holds on until its lease ends
                held.lapsing = Lapsing(held.leased_at + LEASE_S, closed)
            return False
        if setting == OPEN:
            self._kept.pop(gate, None)
        else:
            self._kept[gate] = Kept(setting, means, rule, at)
        if self._failing.pop(gate, None) is not None:
            log.info("slot %d %s: its gate written again", slot, direction.value)
        return True

    def _closed_now(self, gates: GatePort, gate: Gate) -> bool:
        """Whether a written gate refuses all but bare ACKs at this moment: as
        the last apply left it, or a quota the kernel counted past its budget
        since (a second's traffic: listed open, it blocked until the lapse)."""
        setting = self._kept[gate].setting
        if gate in self._closed or setting.blocked:
            return True
        if setting.budget_bytes is None:
            return False
        try:
            count = gates.used_since_set(*gate)
        except Exception:  # unread (logged by apply): as the last apply left it
            return False
        return count is not None and count[0] >= count[1]

    def _note_unread(self, unread: dict[tuple[int, Direction], str]) -> None:
        """Quota counts that could not be read (the read raised), logged once
        (again when the reason changes; once more when read again): the tick
        goes on past them, as past a gate write refused (_write)."""
        for (slot, direction), why in unread.items():
            if self._unread.get((slot, direction)) != why:
                log.error("slot %d %s: could not read its quota's count: %s",
                          slot, direction.value, why)  # fmt: skip
        for slot, direction in set(self._unread) - set(unread):
            log.info("slot %d %s: its quota's count read again", slot, direction.value)
        self._unread = unread

    def refusal(self, key: RuleKey, direction: Direction, rated: bool = False,
                held: bool = True) -> str:  # fmt: skip
        """Why a caller's change of a rule's direction is refused, in plain
        words (KernelError's text; "" when its gate holds): the change is
        undone (core._change). A gate whose write the kernel refused is no
        longer renewed: what it held before lapses, and the text says so, as
        the listing does (until 2026-12-06 it said "nothing changed" there).
        rated: a rate holds the direction beneath it (held_on); held: the
        rule is live once the change is undone (its processes tagged): else
        its gate holds none of their sockets, and nothing changed for them."""
        truth = self.truth(key, direction)
        if why := truth.unread:
            failed = f"could not read how much of {key[0]}'s {direction.value} quota is used"
        elif why := truth.failed:
            failed = f"could not write {key[0]}'s {direction.value} block or quota to the kernel"
        else:
            return ""
        if held and truth.lapses_in_s > 0:
            return f"{failed} ({why}): the change was not made; {held_on(truth.lapses_in_s, rated)}"
        return f"{failed} ({why}): the change was not made, nothing changed"

    def truth(self, key: RuleKey, direction: Direction) -> GateTruth:
        """What the kernel holds for a live rule's direction: the setting last
        written to its gate, whatever the rule asks; after a refused write,
        the one before while its lease runs (no longer renewed), then nothing.
        As asked (in force): its gate's last write taken, or the setting it
        holds on the very one the rule asks: left lapsing by a refused write (a
        refused unblock undone: the block holds until its lease lapses), or
        kept and renewed while its quota's count cannot be read (the quota as
        last set in this period; not once a new period began, which needs the
        count); or, lapsed, open where the rule asks nothing of its gate (a
        used-up quota opened to its then-rate; until 2026-12-06 listed as not
        holding, while its then-rate's class held it)."""
        failed = self.failed.get((key, direction), "")
        unread = self._unread_of.get((key, direction), "")
        gate = self._held.get((key, direction))
        record = self._kept.get(gate) if gate is not None else None
        now = self._clock()
        if (left := self._untagged.get((key, direction))) is not None and left in self._kept:
            # not live: its processes untagged, their sockets pass; the old setting
            # holds on where the untag could not reach (a socket handed to another
            # process, a connection not yet accepted: it carries the slot)
            lapsing = self._kept[left].lapsing
            if lapsing is not None and now < lapsing.until:
                return GateTruth(lapses_in_s=lapsing.until - now,
                                 failed=self._failing.get(left, ""), untagged=True)  # fmt: skip
        if gate is None or record is None:  # its gate open
            return GateTruth(failed=failed, unread=unread, as_asked=not failed)
        if record.lapsing is not None and now >= record.lapsing.until:  # lapsed: open
            return GateTruth(failed=failed, unread=unread,
                             as_asked=not failed or gate not in self._asked)  # fmt: skip
        if record.lapsing is not None:
            lapses_in_s, closed = record.lapsing.until - now, record.lapsing.closed
        else:
            state = self._quotas.state(key, direction)
            spent = record.setting.budget_bytes is not None and state is not None and state.spent
            lapses_in_s, closed = 0.0, record.setting.blocked or spent
        holds_on = record.lapsing is None if unread else record.lapsing is not None
        as_asked = not failed or (holds_on and record.means == self._asked.get(gate))
        return GateTruth(record.setting, lapses_in_s, closed, failed, unread, as_asked)

    def shaped_at_then(self) -> frozenset[tuple[RuleKey, Direction]]:
        """The used-up quotas whose then-rate the shaper has been given."""
        return frozenset(self._shaped_at_then)

    def shaper_holds_then_rates(self, shaped: frozenset[tuple[RuleKey, Direction]]) -> None:
        """The shaper holds these then-rates, as before a change tc refused
        (core._undo_gates): a gates apply of the changed table forgot those it
        no longer asked, and would close their gates again."""
        self._shaped_at_then = set(shaped)

    def lapsing_rules(self) -> dict[RuleKey, set[Direction]]:
        """The rules whose gates hold an old setting after a refused write,
        while its lease runs, with those directions: a rule no longer asking
        for anything there (a schedule ended) is listed with it meanwhile, and
        one taken out of force (untagged: GateTruth.untagged) too, open."""
        rules: dict[RuleKey, set[Direction]] = {}
        for key, direction in [*self._held, *self._untagged]:
            if self.truth(key, direction).lapses_in_s > 0:
                rules.setdefault(key, set()).add(direction)
        return rules

    def holds_slot(self, slot: int) -> bool:
        """Whether a gate of slot may still hold something (not written open):
        its slot is not given to another rule until it is."""
        return any(gate[0] == slot for gate in self._kept)

    def quota_state(
        self, key: RuleKey, direction: Direction, gates: GatePort | None = None
    ) -> QuotaState | None:
        """As the last apply left it, with the kernel's count read now when
        gates are given (a listing is then not a tick behind)."""
        state = self._quotas.state(key, direction)
        try:
            kernel = (
                gates.used_since_set(state.slot, direction)
                if gates is not None and state is not None
                else None
            )
        except Exception:  # the tick logs it; listed as the last apply read it (apply)
            kernel = None
        if state is None or kernel is None or (state.slot, direction) not in self._kept:
            return state
        return replace(state, used=state.used_at_set + kernel[0])

    def closed(self, key: RuleKey, limits: Mapping[Direction, Limit]) -> set[Direction]:
        """The directions whose gate refuses all but bare TCP acknowledgements
        now, as the kernel holds them (the setting last written to the gate,
        as the last apply left it): blocked, or a quota spent and not opened
        to its then-rate (a quota that blocks, or one whose then-rate the
        shaper is only being given). Their rate beneath (rated()) holds
        nothing meanwhile, and its class passes nothing. A block or quota
        whose gate the kernel refused is not closed (once what the gate held
        before lapsed): traffic fails open, through the rate's class where
        there is one."""
        return {direction for direction in limits if self.truth(key, direction).closed}

    def rated(self, key: RuleKey, limits: dict[Direction, Limit]) -> dict[Direction, Limit]:
        """The directions the shaper should hold at a rate, and at which: the
        rule's own, or its quota's then-rate once spent (the lower of both)."""
        rated = {}
        for direction, limit in limits.items():
            state = self._quotas.state(key, direction)
            rate = limit.rate_bps
            if (
                limit.quota is not None
                and limit.quota.then_rate_bps
                and state is not None
                and state.spent
            ):
                self._shaped_at_then.add((key, direction))
                then = limit.quota.then_rate_bps
                if not rate or then < rate:
                    rated[direction] = Limit(then, default_burst_bytes(then))
                    continue
            if rate:
                rated[direction] = Limit(rate, limit.burst_bytes)
        return rated
