"""A block or used-up quota the kernel holds on after a refused change, over
a rate that holds beneath it (the rule's own rate, a quota's then-rate):
once it lapses, traffic goes at that rate, not all of it (recording
stand-ins for the kernel, as tests/helper/engine/test_gate_truth.py).

Until 2026-12-06 the problem said "... then lets all traffic through" there
too, and a used-up quota held at its then-rate whose ClearQuota the kernel
refused was listed, once the old setting lapsed, as "... it does not hold"
with ListRules in_force false, though its gate was open and its then-rate's
class held it: just what the rule asks (gui22's probe, 15:52)."""

from __future__ import annotations

import pytest
from chadthrottle.contract import HELD_BEFORE
from chadthrottle.helper.engine.api import ClearQuota, SetBlocked, SetLimit, SetQuota
from chadthrottle.helper.engine.quotas import Period, Quota
from chadthrottle.helper.errors import KernelError
from chadthrottle.helper.kernel.gates import LEASE_S

from tests.helper.engine.test_gate_truth import (
    BUDGET,
    CURL,
    RATE_BPS,
    THEN_BPS,
    UP,
    Stage,
    kept_live,
    up_rule,
)

ALL_THROUGH = "then lets all traffic through"
RATE_HOLDS = "then only its rate limit holds"


def _refused(stage: Stage, change: object) -> str:
    stage.gates.refuse_writes = {UP}
    (outcome,) = stage.engine.apply_changes([change])  # type: ignore[list-item]
    assert isinstance(outcome, KernelError), outcome
    return str(outcome)


def _lapse(stage: Stage) -> None:
    for _ in range(int(LEASE_S) + 1):
        stage.second()


def test_a_used_up_quota_held_on_over_its_then_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    stage = kept_live(Stage(monkeypatch))
    stage.change(SetQuota(CURL, (UP,), Quota(BUDGET, Period.DAY, 0, THEN_BPS)))
    stage.second()
    stage.gates.counted[(stage.quota_slot(UP), UP)] = BUDGET + 100
    stage.second()  # used up: the shaper given its then-rate, the gate opens a tick after
    told = _refused(stage, ClearQuota(CURL, (UP,)))
    held = stage.listed()
    assert held.up_blocked and HELD_BEFORE in held.up_limit_problem
    for text in (told, held.up_limit_problem):
        assert text.endswith(RATE_HOLDS) and ALL_THROUGH not in text, text
    _lapse(stage)
    lapsed = stage.listed()
    assert [spec.rate_bps for spec in stage.shaper.wanted[UP].values()] == [THEN_BPS]
    assert (lapsed.up_blocked, lapsed.up_limit_bps, lapsed.up_limit_problem) == (
        False,
        THEN_BPS,
        "",
    )
    assert (up_rule(stage).quota_bytes, up_rule(stage).in_force) == (BUDGET, True)


def test_a_block_held_on_over_a_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    """The block does not hold once lapsed (the rule asks it): said so; the rate does."""
    stage = Stage(monkeypatch)
    stage.change(SetLimit(CURL, UP, RATE_BPS, 0), SetBlocked(CURL, (UP,), True))
    stage.second()
    told = _refused(stage, SetBlocked(CURL, (UP,), False))
    held = stage.listed()
    for text in (told, held.up_limit_problem):
        assert text.endswith(RATE_HOLDS) and ALL_THROUGH not in text, text
    _lapse(stage)
    lapsed = stage.listed()
    assert (lapsed.up_blocked, lapsed.up_limit_bps) == (False, RATE_BPS)
    assert "it does not hold" in lapsed.up_limit_problem
    assert [rule.in_force for rule in stage.engine.list_rules()] == [False]


def test_a_block_held_on_over_nothing_lets_all_through(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing beneath the upload's block (the rule kept live by its download's limit)."""
    stage = kept_live(Stage(monkeypatch))
    stage.change(SetBlocked(CURL, (UP,), True))
    stage.second()
    told = _refused(stage, SetBlocked(CURL, (UP,), False))
    for text in (told, stage.listed().up_limit_problem):
        assert text.endswith(ALL_THROUGH), text
