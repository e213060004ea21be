"""The engine's hook between walks of processes' descriptors (pure logic, over
recording ports; the real datapath's walks: tests/helper/kernel/
test_leases_during_walks.py): it renews the gates' leases once RENEW_DUE_S
passed since the last renewal, not at every walk, and a datapath closed
under it (gates gone) is nothing to renew, not a failed walk. And between
ticks, from another thread than the tick's (keep_leases_between_ticks):
while ticks run late and the tick thread shows work (a tick's end, each
process its round trips were read of: _tick_working), not once it showed
none for TICK_SILENCE_S: a tick thread stuck off the lock must let the
blocks lapse within a few leases, not after a minute (review29)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest
from chadthrottle.contract import ADMIN_OWNER, BackendInfo
from chadthrottle.helper.engine.api import SetPriority
from chadthrottle.helper.engine.core import TICK_SILENCE_S
from chadthrottle.helper.engine.gating import RENEW_DUE_S
from chadthrottle.helper.errors import KernelError
from chadthrottle.helper.identity.index import ApplicationIndex
from chadthrottle.helper.kernel.gates import LEASE_S
from chadthrottle.priority import Priority

from tests.helper.engine.admin_engine import AdminEngine
from tests.helper.engine.recording_ports import RecordingDatapath, RecordingGates, RecordingShaper
from tests.helper.engine.test_engine_plan import World

CURL = "exe:/usr/bin/curl"


class ClosedDatapath(RecordingDatapath):
    """As the real Datapath once closed: its gates are gone."""

    @property  # type: ignore[override]
    def gates(self) -> RecordingGates:
        raise KernelError("the datapath is not open")

    @gates.setter
    def gates(self, value: object) -> None:  # the dataclass's __init__ sets None
        pass


def _engine(datapath: RecordingDatapath, clock: list[float]) -> AdminEngine:
    return AdminEngine(datapath, RecordingShaper(), ApplicationIndex(list_pids=lambda: []),
                       lambda active: [BackendInfo("tc", True, "", ())],
                       clock=lambda: clock[0])  # fmt: skip


def _ticked() -> tuple[AdminEngine, RecordingGates, list[float]]:
    """An engine on recording gates after one tick, its clock at 100 s."""
    gates, now = RecordingGates(), [100.0]
    datapath = RecordingDatapath()
    datapath.gates = gates  # type: ignore[assignment]
    engine = _engine(datapath, now)
    engine.tick()
    return engine, gates, now


def test_walks_renew_the_leases_when_due() -> None:
    gates, now = RecordingGates(), [100.0]
    datapath = RecordingDatapath()
    datapath.gates = gates  # type: ignore[assignment]
    _engine(datapath, now)
    assert datapath.between_walks is not None, "the engine gave the datapath no hook"
    datapath.between_walks()
    assert gates.renewed == 1
    now[0] += RENEW_DUE_S / 2
    datapath.between_walks()
    assert gates.renewed == 1, "renewed again before it was due"
    now[0] += RENEW_DUE_S / 2
    datapath.between_walks()
    assert gates.renewed == 2


def test_a_walk_after_the_datapath_closed_is_not_a_failure() -> None:
    datapath = ClosedDatapath()
    _engine(datapath, [0.0])
    assert datapath.between_walks is not None
    datapath.between_walks()  # raised KernelError out of the walk before


def test_leases_are_renewed_between_late_ticks_until_the_ticks_stop() -> None:
    engine, gates, now = _ticked()
    renewed = gates.renewed  # the tick's own
    now[0] += RENEW_DUE_S
    engine.keep_leases_between_ticks()  # a tick running late
    assert gates.renewed == renewed + 1
    engine.keep_leases_between_ticks()
    assert gates.renewed == renewed + 1, "renewed again before it was due"
    now[0] += TICK_SILENCE_S  # no tick ended since: the helper fails open
    engine.keep_leases_between_ticks()
    assert gates.renewed == renewed + 1


def test_a_stuck_tick_thread_lets_the_leases_lapse_within_a_few_of_them() -> None:
    """The house rule: a helper that hangs lets blocked traffic through within
    seconds. Until review29, a tick thread stuck off the lock (a read of
    /proc that never returns) had its leases renewed from the new-owner
    thread for 60 s after its last tick."""
    engine, gates, now = _ticked()
    renewed = gates.renewed
    now[0] += 4 * LEASE_S  # no tick ended, no sign of work since
    engine.keep_leases_between_ticks()
    assert gates.renewed == renewed, (
        f"renewed {4 * LEASE_S:.0f} s after the tick thread's last sign of work"
    )


def test_a_tick_thread_at_work_off_the_lock_keeps_the_leases_however_long() -> None:
    """A user sizes the tick's work off the lock (every descriptor table of a
    program of theirs given "low", each 2 s): while it goes on, process by
    process, the leases hold, past a minute too (until review29 they lapsed
    60 s after the last tick however busy the tick thread was)."""
    engine, gates, now = _ticked()
    renewed = gates.renewed
    steps = int(3 * TICK_SILENCE_S / RENEW_DUE_S) + 1
    for _ in range(steps):  # one process's table read per step, no tick ending
        now[0] += RENEW_DUE_S
        engine._tick_working()
        engine.keep_leases_between_ticks()
    assert gates.renewed == renewed + steps, (
        f"{gates.renewed - renewed} renewals in {steps * RENEW_DUE_S:.0f} s of work off the lock"
    )


def test_the_ticks_own_reads_of_round_trips_count_as_its_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The engine gives RttWatch.measure its sign of work: a measure of a
    program given "low" whose tables take twice TICK_SILENCE_S, process by
    process, leaves the leases to be renewed after it, not lapsing."""
    from chadthrottle.helper.engine.rtt import RttWatch

    now = [100.0]

    class Watch(RttWatch):  # the kernel's side: tests/helper/kernel/test_socket_diag.py
        def measure(self, apps: Mapping[str, list[int]], rtt: bool = True,
                    uids: Mapping[int, int] | None = None,
                    progress: Callable[[], None] = lambda: None) -> None:  # fmt: skip
            self._measured_at, self.measured = self._clock(), frozenset(apps)
            for _ in range(int(2 * TICK_SILENCE_S)):  # a process's table a second
                now[0] += 1.0
                progress()

    world = World(clock=lambda: now[0])
    monkeypatch.setattr("chadthrottle.helper.engine.tracking.read_process", world.processes.get)
    monkeypatch.setattr(
        "chadthrottle.helper.engine.tracking.process_exists", world.processes.__contains__
    )
    gates = RecordingGates()
    world.datapath.gates = gates  # type: ignore[assignment]
    world.engine._rtt = Watch(clock=lambda: now[0])
    world.spawn(10)
    world.engine.tick()
    (outcome,) = world.engine.apply_changes([SetPriority(CURL, Priority.LOW, ADMIN_OWNER)])
    assert outcome == CURL
    world.engine.tick()  # ends with the measure: 2 x TICK_SILENCE_S of work off the lock
    renewed = gates.renewed
    world.engine.keep_leases_between_ticks()
    assert gates.renewed == renewed + 1, "the tick thread's reads were not taken for work"
