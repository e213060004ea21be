"""A caller's change refused because the kernel did not take its gate's
write says what the kernel holds from then on (recording stand-ins for the
kernel, as tests/helper/engine/test_gate_truth.py): a gate whose write was
refused is no longer renewed (helper/kernel/gates.py), so the setting before
(a block, a quota) holds only until its lease lapses, then all traffic
passes. Until 2026-12-06 the refusal said "nothing changed" there, while the
listing said the old block or quota lapses within seconds."""

from __future__ import annotations

import pytest
from chadthrottle.contract import HELD_BEFORE
from chadthrottle.helper.engine.api import SetBlocked, SetQuota
from chadthrottle.helper.engine.quotas import Period, Quota
from chadthrottle.helper.errors import KernelError
from chadthrottle.helper.kernel.gates import LEASE_S

from tests.helper.engine.test_gate_truth import BUDGET, CURL, UP, Stage, kept_live


def _refused(stage: Stage, change: object) -> str:
    stage.gates.refuse_writes = {UP}
    (outcome,) = stage.engine.apply_changes([change])  # type: ignore[list-item]
    assert isinstance(outcome, KernelError), outcome
    return str(outcome)


def test_a_refused_unblock_says_the_block_lapses(monkeypatch: pytest.MonkeyPatch) -> None:
    stage = kept_live(Stage(monkeypatch))
    stage.change(SetBlocked(CURL, (UP,), True))
    stage.second()
    told = _refused(stage, SetBlocked(CURL, (UP,), False))
    assert "nothing changed" not in told, told
    assert f"{HELD_BEFORE} for {int(LEASE_S)} s more at most" in told, told
    assert told.endswith("then lets all traffic through"), told
    assert HELD_BEFORE in stage.listed().up_limit_problem


def test_a_block_refused_over_a_quota_says_the_quota_lapses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stage = Stage(monkeypatch)
    stage.change(SetQuota(CURL, (UP,), Quota(BUDGET, Period.DAY, 0, 0)))
    stage.second()
    told = _refused(stage, SetBlocked(CURL, (UP,), True))
    assert "nothing changed" not in told and "then lets all traffic through" in told, told


def test_a_block_refused_on_an_open_gate_changed_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing held there before: nothing lapses."""
    stage = Stage(monkeypatch)
    told = _refused(stage, SetBlocked(CURL, (UP,), True))
    assert told.endswith("the change was not made, nothing changed"), told
    assert stage.gates.settings == {} and not stage.listed().up_limit_problem
