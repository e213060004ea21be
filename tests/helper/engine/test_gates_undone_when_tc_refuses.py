"""A caller's change of blocks or quotas writes its gates before its classes
(core.EngineCore._change); when tc then refuses the classes, the change is
refused and its gates are undone before anything else, within the call
(recording stand-ins for the kernel, as tests/helper/engine/test_gate_truth.py).

Until 2026-12-06 the undo came only after the old classes were written again:
where tc refused those too (a foreign root qdisc on the interface refuses
every reconcile), the refused block stayed in the kernel until the next tick,
listed as not there, and a refused unblock let the blocked traffic through
meanwhile, listed as blocked; a refused ClearQuota of a used-up quota held at
its then-rate closed its gate at the next tick (blocked, not at the rate)."""

from __future__ import annotations

import pytest
from chadthrottle.contract import Direction
from chadthrottle.helper.engine.api import ClearQuota, SetBlocked, SetLimit
from chadthrottle.helper.errors import HelperError
from chadthrottle.helper.kernel.gates import GateSetting

from tests.helper.engine.test_gate_truth import (
    CURL,
    RATE_BPS,
    THEN_BPS,
    UP,
    Stage,
    held_at_then_rate,
)

BLOCK = GateSetting(blocked=True)


def _gate_writes(stage: Stage, monkeypatch: pytest.MonkeyPatch) -> list[GateSetting]:
    """Every upload gate setting written from now on, in order."""
    written: list[GateSetting] = []
    write = stage.gates.set

    def recording(slot: int, direction: Direction, setting: GateSetting) -> None:
        if direction is UP:
            written.append(setting)
        write(slot, direction, setting)

    monkeypatch.setattr(stage.gates, "set", recording)
    return written


def _refused(stage: Stage, *changes: object) -> None:
    """tc refuses every class from now on (a foreign root qdisc appeared), and
    each change is refused."""
    stage.shaper.refuse = True
    outcomes = stage.engine.apply_changes(list(changes))  # type: ignore[arg-type]
    assert all(isinstance(outcome, HelperError) for outcome in outcomes), outcomes


def test_a_block_refused_by_tc_is_not_left_in_the_kernel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stage = Stage(monkeypatch)
    stage.change(SetLimit(CURL, UP, RATE_BPS, 0))
    stage.second()
    assert stage.gates.settings == {}
    _refused(stage, SetBlocked(CURL, (UP,), True))
    assert stage.gates.settings == {}, "the refused block held in the kernel"
    assert not stage.listed().up_blocked
    assert [rule.blocked for rule in stage.engine.list_rules()] == [False]


def test_an_unblock_refused_by_tc_leaves_the_block_held(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stage = Stage(monkeypatch)
    stage.change(SetLimit(CURL, UP, RATE_BPS, 0), SetBlocked(CURL, (UP,), True))
    stage.second()
    (gate,) = stage.gates.settings
    _refused(stage, SetBlocked(CURL, (UP,), False))
    assert stage.gates.settings == {gate: BLOCK}, "the blocked upload let through"
    listed = stage.listed()
    assert (listed.up_blocked, listed.up_limit_problem) == (True, "")
    assert [(rule.blocked, rule.in_force) for rule in stage.engine.list_rules()] == [(True, True)]


def test_a_quota_clear_refused_by_tc_keeps_its_then_rate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Used up and held at its then-rate (its gate open, the shaper's class at
    the then-rate): a refused ClearQuota leaves it so, the class as it was."""
    stage = held_at_then_rate(monkeypatch)
    written = _gate_writes(stage, monkeypatch)
    _refused(stage, ClearQuota(CURL, (UP,)))
    for _ in range(2):  # the shaper still refuses: it keeps the then-rate's class
        held = stage.second()
        assert (held.up_blocked, held.up_limit_bps) == (False, THEN_BPS)
    assert written == [], "its gate closed"
