"""One gate the kernel does not take, on the real datapath (its slot_gates
array; the write made to raise for that one application's key): the tick
goes on past it to the other applications' gates, the classes and the tags,
says so once in the log, and lists that block as not holding; a change that
needs it is refused, and the others in its batch are not."""

from __future__ import annotations

import errno
import logging
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from chadthrottle.contract import ADMIN_OWNER, HELD_BEFORE, BackendInfo, Direction
from chadthrottle.helper.engine.api import SetBlocked, SetLimit
from chadthrottle.helper.engine.limits import Limit, LimitTable
from chadthrottle.helper.engine.quotas import Period, Quota
from chadthrottle.helper.errors import KernelError
from chadthrottle.helper.identity.index import ApplicationIndex
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.gates import SlotGates, monotonic_ns
from chadthrottle.helper.kernel.layout import (
    GATE_BLOCK,
    GATE_QUOTA,
    POLICE_DOWN,
    SlotGate,
    policer_key,
)

from tests.helper.engine.admin_engine import AdminEngine
from tests.helper.engine.recording_ports import RecordingShaper
from tests.support.reused_pids import stop, wait_for_exec
from tests.support.waiting import eventually

DOWN, UP = Direction.DOWN, Direction.UP
REFUSED = "could not write its gate"  # the log line, once per gate and reason


@pytest.fixture
def programs() -> Iterator[tuple[Path, Path]]:
    """Two copies of sleep under names no other test runs: two applications."""
    directory = Path(tempfile.mkdtemp(prefix="ct-gates-"))
    try:
        for name in ("refused", "other"):
            shutil.copy("/bin/sleep", directory / name)
        yield directory / "refused", directory / "other"
    finally:
        shutil.rmtree(directory)


@pytest.fixture
def running(programs: tuple[Path, Path]) -> Iterator[list[subprocess.Popen[bytes]]]:
    processes = [subprocess.Popen([str(program), "600"]) for program in programs]
    try:
        for process, program in zip(processes, programs, strict=True):
            wait_for_exec(process.pid, program)
        yield processes
    finally:
        stop(*processes)


def _engine(datapath: Datapath, shaper: RecordingShaper | None = None,
            rules: LimitTable | None = None) -> AdminEngine:  # fmt: skip
    """The engine on the real datapath, tc said to be its backend."""
    return AdminEngine(datapath, shaper or RecordingShaper(), ApplicationIndex(),
                       lambda active: [BackendInfo("tc", True, "", ())], rules=rules)  # fmt: skip


def _refuse_gate_of(engine: AdminEngine, app_id: str, monkeypatch: pytest.MonkeyPatch,
                    owner: int = ADMIN_OWNER, police: int = POLICE_DOWN
                    ) -> Callable[[int], SlotGate]:  # fmt: skip
    """Every map access to the download gate (police: POLICE_UP, the
    upload's) of app_id's rule of owner raises, as a kernel refusing it;
    returns how to read any gate's entry as the kernel holds it."""
    entry = SlotGates._entry

    def refusing(gates: SlotGates, key: int) -> SlotGate:
        slot = engine._applier.slots.slot_of((app_id, owner))
        if slot is not None and key == policer_key(slot, police):
            raise OSError(errno.EFAULT, "refused by the test")
        return entry(gates, key)

    monkeypatch.setattr(SlotGates, "_entry", refusing)
    return lambda key: entry(engine._datapath.gates, key)  # type: ignore[arg-type]


def _download_gate(engine: AdminEngine, app_id: str, read: Callable[[int], SlotGate],
                   owner: int = ADMIN_OWNER) -> int:  # fmt: skip
    slot = engine._applier.slots.slot_of((app_id, owner))
    assert slot is not None
    return int(read(policer_key(slot, POLICE_DOWN)).flags)


def _in_force(engine: AdminEngine) -> dict[tuple[str, str], bool]:
    """ListRules' in_force of each rule's direction."""
    return {(rule.app_id, rule.direction): rule.in_force for rule in engine.list_rules()}


def test_a_gate_the_kernel_refuses_leaves_the_rest_of_the_tick_done(
    datapath: Datapath,
    programs: tuple[Path, Path],
    running: list[subprocess.Popen[bytes]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Stored rules applied at the helper's first tick: one application's
    block refused by the kernel raised out of the tick, so the other's block,
    its upload limit's class and both tags were not written, that tick or any
    after while the write kept failing ("engine tick failed" every second).
    ListRules then still said that block was in force (in_force true) while
    ListApplications said it did not hold."""
    caplog.set_level(logging.INFO, logger="chadthrottle.engine.gating")
    refused, other = (f"exe:{program}" for program in programs)
    table = LimitTable()
    table.set((refused, ADMIN_OWNER), DOWN, Limit(0, 0, blocked=True))
    table.set((other, ADMIN_OWNER), DOWN, Limit(0, 0, blocked=True))
    table.set((other, ADMIN_OWNER), UP, Limit.with_default_burst(100_000, 0))
    table.set((refused, ADMIN_OWNER), UP, Limit.with_default_burst(200_000, 0))  # keeps its slot
    shaper = RecordingShaper()
    engine = _engine(datapath, shaper, table)
    read = _refuse_gate_of(engine, refused, monkeypatch)
    for _ in range(3):
        engine.tick()
    assert _download_gate(engine, other, read) & GATE_BLOCK, "the other's block"
    assert sorted(spec.rate_bps for spec in shaper.wanted[UP].values()) == [100_000, 200_000]
    pids = [process.pid for process in running]
    assert all(engine._applier.hold.slot_of_process(pid) for pid in pids), "tagged"
    assert _download_gate(engine, refused, read) == 0  # traffic flows: fails open
    listed = {app.id: app for app in engine.list_applications()}
    assert "did not take its block" in listed[refused].down_limit_problem
    assert (listed[other].down_limit_problem, listed[other].up_limit_problem) == ("", "")
    assert caplog.text.count(REFUSED) == 1, "logged once, not every tick"
    assert _in_force(engine) == {(refused, "down"): False, (refused, "up"): True,
                                 (other, "down"): True, (other, "up"): True}, "ListRules"  # fmt: skip

    monkeypatch.undo()  # the kernel takes it again: written at the next tick
    engine.tick()
    assert _download_gate(engine, refused, read) & GATE_BLOCK
    assert {app.id: app for app in engine.list_applications()}[refused].down_limit_problem == ""
    assert all(_in_force(engine).values())
    assert "its gate written again" in caplog.text

    # An unblock whose gate the kernel refuses is refused (the block stays
    # the rule); that gate is no longer renewed: the block is listed while
    # its lease runs, then it lapses (fails open) and is listed open. The
    # others' leases are renewed as before.
    read = _refuse_gate_of(engine, refused, monkeypatch)
    (outcome,) = engine.apply_changes([SetBlocked(refused, (DOWN,), False)])
    assert isinstance(outcome, KernelError) and "refused by the test" in str(outcome)
    slots = [engine._applier.slots.slot_of((app, ADMIN_OWNER)) for app in (refused, other)]
    keys = [policer_key(slot, POLICE_DOWN) for slot in slots if slot is not None]
    leases = [read(key).lease_until_ns for key in keys]
    assert read(keys[0]).flags & GATE_BLOCK, "the kernel's gate still blocks"
    held = {app.id: app for app in engine.list_applications()}[refused]
    assert held.down_blocked and HELD_BEFORE in held.down_limit_problem
    engine.tick()
    assert read(keys[0]).lease_until_ns == leases[0], "the refused gate's lease was renewed"
    assert read(keys[1]).lease_until_ns > leases[1], "the other's lease was not renewed"
    assert "could not renew" not in caplog.text
    assert eventually(lambda: monotonic_ns() >= leases[0], 60.0), "its lease never ended"
    engine.tick()
    lapsed = {app.id: app for app in engine.list_applications()}[refused]
    assert not lapsed.down_blocked and "it does not hold" in lapsed.down_limit_problem


def test_a_change_whose_gate_the_kernel_refuses_is_refused_alone(
    datapath: Datapath,
    programs: tuple[Path, Path],
    running: list[subprocess.Popen[bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before, the raw error left apply_changes: the whole batch failed with
    no named error (the adapter's generic Failed), the other's block too."""
    refused, other = (f"exe:{program}" for program in programs)
    engine = _engine(datapath)
    engine.tick()
    read = _refuse_gate_of(engine, refused, monkeypatch)
    outcomes = engine.apply_changes(
        [SetBlocked(refused, (DOWN,), True), SetBlocked(other, (DOWN,), True)]
    )
    assert isinstance(outcomes[0], KernelError) and "refused by the test" in str(outcomes[0])
    assert outcomes[1] == other
    assert _download_gate(engine, other, read) & GATE_BLOCK
    assert [(rule.app_id, rule.blocked) for rule in engine.list_rules()] == [(other, True)]


def test_limits_resumed_past_a_gate_the_kernel_refuses(
    datapath: Datapath,
    programs: tuple[Path, Path],
    running: list[subprocess.Popen[bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A resume (no caller's rule of its own) goes on past one gate as a tick
    does: before, the raw error undid it, and every limit stayed paused."""
    refused, other = (f"exe:{program}" for program in programs)
    table = LimitTable()
    for app_id in (refused, other):
        table.set((app_id, ADMIN_OWNER), DOWN, Limit(0, 0, blocked=True))
    table.set_paused(True)
    engine = _engine(datapath, rules=table)
    engine.tick()
    read = _refuse_gate_of(engine, refused, monkeypatch)
    engine.set_limits_paused(False)
    assert not engine.limits_paused()
    assert _download_gate(engine, other, read) & GATE_BLOCK
    listed = {app.id: app for app in engine.list_applications()}
    assert "did not take its block" in listed[refused].down_limit_problem


def test_a_quota_count_the_kernel_will_not_give_stops_nothing_else(
    datapath: Datapath,
    programs: tuple[Path, Path],
    running: list[subprocess.Popen[bytes]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The count of one application's download quota cannot be read (the
    read raises for that one slot): before, it raised out of the tick at the
    gates, so nothing after them (the other's gate, classes, tags, counts)
    was done while it kept failing."""
    caplog.set_level(logging.INFO, logger="chadthrottle.engine.gating")
    refused, other = (f"exe:{program}" for program in programs)
    table = LimitTable()
    for app_id in (refused, other):
        table.set((app_id, ADMIN_OWNER), DOWN,
                  Limit(0, 0, quota=Quota(5_000_000, Period.DAY, 0, 100_000)))  # fmt: skip
    table.set((other, ADMIN_OWNER), UP, Limit.with_default_burst(100_000, 0))
    shaper = RecordingShaper()
    engine = _engine(datapath, shaper, table)
    engine.tick()  # both quotas' gates written: each read at every tick from here
    read = engine._datapath.gates.used_since_set
    unreadable = engine._applier.slots.slot_of((refused, ADMIN_OWNER))

    def reading(gates: SlotGates, slot: int, direction: Direction) -> tuple[int, int] | None:
        if slot == unreadable:
            raise OSError(errno.EFAULT, "count refused by the test")
        return read(slot, direction)

    monkeypatch.setattr(SlotGates, "used_since_set", reading)
    for _ in range(3):
        engine.tick()
    assert engine.set_limit(other, UP, 200_000, 0) == other  # a change past it, too
    assert [spec.rate_bps for spec in shaper.wanted[UP].values()] == [200_000]
    assert _download_gate(engine, other, engine._datapath.gates._entry) & GATE_QUOTA
    listed = {app.id: app for app in engine.list_applications()}
    assert "could not be read" in listed[refused].down_limit_problem
    assert listed[other].down_limit_problem == ""
    assert "holds it as last set" in listed[refused].down_limit_problem
    assert _in_force(engine)[(refused, "down")] is True, "its gate renewed as last set"
    assert caplog.text.count("could not read its quota's count") == 1, "logged once"

    monkeypatch.undo()
    engine.tick()
    assert {app.id: app for app in engine.list_applications()}[refused].down_limit_problem == ""


def test_a_rate_is_taken_beside_a_block_the_kernel_will_not_lift(
    datapath: Datapath,
    programs: tuple[Path, Path],
    running: list[subprocess.Popen[bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The kernel refuses one application's download gate after its block:
    the unblock is refused, and asked again tries the gate again (refused
    again); a rate limit of that direction, which needs nothing of the gate,
    is taken. Before, every change of that direction was refused. (Its
    upload limit keeps its rule live: with nothing left, the unblock is
    taken, test_refused_gate_of_untagged_sockets.py.)"""
    refused, _other = (f"exe:{program}" for program in programs)
    shaper = RecordingShaper()
    engine = _engine(datapath, shaper)
    engine.tick()
    assert engine.apply_changes(
        [SetLimit(refused, UP, 100_000, 0), SetBlocked(refused, (DOWN,), True)]
    ) == [refused, refused]
    read = _refuse_gate_of(engine, refused, monkeypatch)
    for _ in range(2):
        (outcome,) = engine.apply_changes([SetBlocked(refused, (DOWN,), False)])
        assert isinstance(outcome, KernelError) and "refused by the test" in str(outcome)
    assert engine.set_limit(refused, DOWN, 300_000, 0) == refused
    assert [spec.rate_bps for spec in shaper.wanted[DOWN].values()] == [300_000]
    (rule,) = [rule for rule in engine.list_rules() if rule.direction == DOWN.value]
    assert (rule.rate_bps, rule.blocked) == (300_000, True)
    monkeypatch.undo()
    assert _download_gate(engine, refused, read) & GATE_BLOCK, "the kernel's gate"
    assert engine.apply_changes([SetBlocked(refused, (DOWN,), False)]) == [refused]
    assert _download_gate(engine, refused, read) == 0


def test_one_users_refused_gate_refuses_no_other_users_change(
    datapath: Datapath, programs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two users run one program, each blocks its downloads; the kernel then
    refuses user A's gate. A's unblock is refused; B's, and B's block again,
    are written to B's own gate and taken. Before, B's were refused with A's
    error: refusals were keyed by application, not by rule."""
    program = programs[0]
    program.parent.chmod(0o755)  # the users' processes exec it
    users = (60_001, 60_002)
    processes = [subprocess.Popen([str(program), "600"], user=uid) for uid in users]
    try:
        for process in processes:
            wait_for_exec(process.pid, program)
        app = f"exe:{program}"
        engine = _engine(datapath)
        engine.tick()
        for uid in users:
            assert engine.apply_changes([SetBlocked(app, (DOWN,), True, uid)]) == [app]
        assert engine.apply_changes([SetLimit(app, UP, 100_000, 0, users[0])]) == [app]  # live
        read = _refuse_gate_of(engine, app, monkeypatch, users[0])
        (refused,) = engine.apply_changes([SetBlocked(app, (DOWN,), False, users[0])])
        assert isinstance(refused, KernelError) and "refused by the test" in str(refused)
        for blocked in (False, True):
            slot = engine._applier.slots.slot_of((app, users[1]))  # B's, while B has a rule
            outcome = engine.apply_changes([SetBlocked(app, (DOWN,), blocked, users[1])])
            assert outcome == [app], f"B's change refused with A's gate: {outcome}"
            slot = engine._applier.slots.slot_of((app, users[1])) or slot
            assert slot is not None
            assert bool(int(read(policer_key(slot, POLICE_DOWN)).flags) & GATE_BLOCK) is blocked
        assert _download_gate(engine, app, read, users[0]) & GATE_BLOCK, "A's gate as it was"
    finally:
        stop(*processes)
