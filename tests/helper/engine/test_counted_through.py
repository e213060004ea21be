"""ListApplications' counted_through_ns (API 9): the helper's word that the
counts listed follow every process's first socket announced before that
moment. A tick claims only what the new-owner thread had read before the
tick read its counters: a stamp that came while it read them is the next
tick's (the accounting benchmark waits on it, docs/benchmarks/flakes.md,
bare32). A real process and /proc; a recording stand-in for the datapath."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

from chadthrottle.contract import BackendInfo
from chadthrottle.helper.engine.factory import RunningEngine
from chadthrottle.helper.identity.index import ApplicationIndex
from chadthrottle.helper.identity.processes import read_start

from tests.helper.engine.admin_engine import AdminEngine
from tests.helper.engine.recording_ports import RecordingDatapath, RecordingShaper, Traffic
from tests.support.reused_pids import wait_for_exec


class _StampedWhileRead(RecordingDatapath):
    """The new-owner thread finishes a poll while the tick reads the counters."""

    def __init__(self) -> None:
        super().__init__()
        self.on_read: list[int] = []  # stamps noted during the next reads, one each
        self.engine: AdminEngine | None = None

    def read_traffic(self) -> list[object]:
        if self.on_read and self.engine is not None:
            self.engine.note_owners_read(self.on_read.pop(0))
        return super().read_traffic()


def test_a_tick_claims_only_the_announcements_read_before_its_counters(program: Path) -> None:
    datapath = _StampedWhileRead()
    engine = AdminEngine(datapath, RecordingShaper(), ApplicationIndex(),
                         lambda active: [BackendInfo("tc", True, "", ())])  # fmt: skip
    datapath.engine = engine
    process = subprocess.Popen([str(program), "600"])
    try:
        wait_for_exec(process.pid, program)
        start = read_start(process.pid)
        assert start is not None
        engine.note_new_owner(process.pid, start=start)
        datapath.traffic.append(Traffic(process.pid, 4000, 3000, owner_start=start))

        def through() -> int:
            (app,) = [a for a in engine.list_applications() if a.id == f"exe:{program}"]
            return app.counted_through_ns

        engine.tick()
        assert through() == 0  # no poll of the new-owner thread had ended
        engine.note_owners_read(1_000)
        assert through() == 0, "said before a tick read the counters after it"
        datapath.on_read.append(2_000)  # read while this tick reads its counters
        engine.tick()
        assert through() == 1_000, "a stamp that came as the counters were read is claimed"
        engine.tick()
        assert through() == 2_000
        engine.note_owners_read(1_500)  # an older poll's end, noted late, takes nothing back
        engine.tick()
        assert through() == 2_000
    finally:
        process.kill()
        process.wait()


class _OwnerLoop:
    """What RunningEngine._watch_owners uses of its engine, recorded in order:
    the datapath's poll and the process events' drain, each with the time it
    ran, then the stamp noted."""

    def __init__(self, lost: int = 0) -> None:
        self.seen: list[tuple[str, int]] = []
        self.lost = lost  # what the poll says the kernel could keep nowhere
        self._stop = threading.Event()
        self._proc_events = self
        self._kernel_parts = (self,)

    def poll_new_owners(self, timeout_ms: int) -> int:
        began = time.monotonic_ns()
        while time.monotonic_ns() == began:  # the poll takes time: a stamp after it is later
            pass
        self.seen.append(("poll", began))
        self._stop.set()  # one round
        return self.lost

    def note_owners_lost(self, count: int) -> None:
        self.seen.append(("lost", count))

    def drain(self) -> None:
        self.seen.append(("drain", time.monotonic_ns()))

    def note_owners_read(self, began_ns: int) -> None:
        self.seen.append(("noted", began_ns))

    def keep_leases_between_ticks(self) -> None:
        pass


def test_the_owner_thread_vouches_for_when_its_poll_began_once_events_are_read() -> None:
    """The stamp is what makes the listing's word true: an announcement made
    while a poll runs may be missed by it, so the thread vouches only for the
    moment before it began, and only once the fork events after the poll
    (which name a child that exited) are read too."""
    loop = _OwnerLoop()
    RunningEngine._watch_owners(loop)  # type: ignore[arg-type]
    assert [kind for kind, _ in loop.seen] == ["poll", "drain", "noted"], loop.seen
    (_, polled), _, (_, noted) = loop.seen
    assert noted <= polled, "vouched for announcements made after the poll began"


def test_the_owner_thread_says_what_the_kernel_lost_before_it_vouches() -> None:
    """Announcements the kernel kept nowhere (test_owner_drops.py) are told
    before the poll's word, which the engine then holds back until a tick
    looked for their bytes' owners; none lost, nothing told."""
    loop = _OwnerLoop(lost=3)
    RunningEngine._watch_owners(loop)  # type: ignore[arg-type]
    assert ("lost", 3) in loop.seen
    assert [kind for kind, _ in loop.seen] == ["poll", "drain", "lost", "noted"], loop.seen
    quiet = _OwnerLoop()
    RunningEngine._watch_owners(quiet)  # type: ignore[arg-type]
    assert "lost" not in [kind for kind, _ in quiet.seen]


def test_a_loss_holds_the_word_back_until_a_tick_looked() -> None:
    """note_owners_lost: no poll's word is taken until a tick has read the
    counters (and looked there for the lost owners) after it."""
    datapath = RecordingDatapath()
    engine = AdminEngine(datapath, RecordingShaper(), ApplicationIndex(),
                         lambda active: [BackendInfo("tc", True, "", ())])  # fmt: skip
    engine.note_owners_read(1_000)
    engine.tick()
    engine.note_owners_lost(2)
    engine.note_owners_read(2_000)
    engine.tick()  # looks
    assert engine._counted_through_ns == 1_000, "vouched past a loss no tick had looked for"
    engine.note_owners_read(3_000)
    engine.tick()
    assert engine._counted_through_ns == 3_000
