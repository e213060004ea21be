"""A gate the kernel refuses refuses only the changes of the rule it is the
gate of (recording stand-ins for the kernel, one slot's gate refused; the
real datapath's: tests/helper/kernel/test_gate_write_failure.py).

Two users run curl; each rule has its own slot, so its own gates. The
kernel refusing user A's gate says nothing of user B's: B's block, quota
and unblock are written to B's gates and taken (until 2026-12-06 a change
was refused for any rule's failing gate of the same application and
direction, with A's error: a user's rights end at that user's processes)."""

from __future__ import annotations

import pytest
from chadthrottle.contract import Direction
from chadthrottle.helper.engine.api import ClearQuota, SetBlocked, SetLimit, SetQuota
from chadthrottle.helper.engine.quotas import Period, Quota
from chadthrottle.helper.errors import KernelError
from chadthrottle.helper.identity.index import ApplicationIndex
from chadthrottle.helper.identity.processes import ProcessInfo
from chadthrottle.helper.kernel.gates import GateSetting

from tests.helper.engine.test_gate_truth import BUDGET, CURL, RATE_BPS, UP, Stage

A, B = 1000, 1001
BLOCK = GateSetting(blocked=True)


def _two_users(monkeypatch: pytest.MonkeyPatch) -> ApplicationIndex:
    """/proc as two curls: pid 10 of uid A, pid 11 of uid B."""
    processes = {
        pid: ProcessInfo(pid, 1, uid, "/usr/bin/curl", ("curl",), "curl", "/")
        for pid, uid in ((10, A), (11, B))
    }
    monkeypatch.setattr("chadthrottle.helper.engine.tracking.read_process", processes.get)
    monkeypatch.setattr(
        "chadthrottle.helper.engine.tracking.process_exists", processes.__contains__
    )
    return ApplicationIndex(
        list_pids=lambda: list(processes), read=processes.get, read_exe=lambda pid: "/usr/bin/curl"
    )


def _slot(stage: Stage, owner: int) -> int:
    slot = stage.engine._applier.slots.slot_of((CURL, owner))
    assert slot is not None
    return slot


def _as_refused_for_a(monkeypatch: pytest.MonkeyPatch) -> Stage:
    """A's upload blocked (A's download limited: A's rule stays live), then
    A's gate refused by the kernel: A's unblock is refused (A's block holds
    on, lapsing)."""
    stage = Stage(monkeypatch, index=_two_users(monkeypatch))
    stage.change(SetLimit(CURL, Direction.DOWN, RATE_BPS, 0, A), SetBlocked(CURL, (UP,), True, A))
    stage.second()
    stage.gates.refuse_gates = {(_slot(stage, A), UP)}
    (outcome,) = stage.engine.apply_changes([SetBlocked(CURL, (UP,), False, A)])
    assert isinstance(outcome, KernelError), outcome
    return stage


def _refused(outcome: object) -> str:
    return str(outcome) if isinstance(outcome, KernelError) else ""


def test_another_users_refused_gate_refuses_none_of_your_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """B blocks, sets a quota, unblocks and clears it, all beside A's gate
    the kernel refuses: each is written to B's own gate and taken."""
    stage = _as_refused_for_a(monkeypatch)
    outcome = stage.engine.apply_changes([SetBlocked(CURL, (UP,), True, B)])
    assert outcome == [CURL], f"B's block refused with A's gate: {_refused(outcome[0])}"
    b_slot = _slot(stage, B)
    assert stage.gates.settings[(b_slot, UP)] == BLOCK
    quota = Quota(BUDGET, Period.DAY, 0, 0)
    assert stage.engine.apply_changes([SetQuota(CURL, (UP,), quota, B)]) == [CURL]
    assert stage.engine.apply_changes([SetBlocked(CURL, (UP,), False, B)]) == [CURL]
    assert stage.gates.settings[(b_slot, UP)] == GateSetting(budget_bytes=BUDGET)
    assert stage.engine.apply_changes([ClearQuota(CURL, (UP,), B)]) == [CURL]
    assert (b_slot, UP) not in stage.gates.settings
    assert stage.gates.settings[(_slot(stage, A), UP)] == BLOCK, "A's gate as the kernel holds it"
    (outcome,) = stage.engine.apply_changes([SetBlocked(CURL, (UP,), False, A)])
    assert isinstance(outcome, KernelError), "A's own change taken past A's refused gate"


def test_your_rule_is_listed_as_your_gate_holds_it_beside_another_users_refused_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ListRules: B's block in force (B's gate took it), A's as A's gate holds it."""
    stage = _as_refused_for_a(monkeypatch)
    assert stage.engine.apply_changes([SetBlocked(CURL, (UP,), True, B)]) == [CURL]
    stage.second()
    rules = {(rule.owner, rule.direction): rule for rule in stage.engine.list_rules()}
    assert rules[(B, UP.value)].in_force and rules[(B, UP.value)].blocked
    assert rules[(A, UP.value)].blocked


def test_the_refused_users_own_direction_is_theirs_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """A's other direction, whose gate the kernel takes, is taken too."""
    stage = _as_refused_for_a(monkeypatch)
    assert stage.engine.apply_changes([SetBlocked(CURL, (Direction.DOWN,), True, A)]) == [CURL]
