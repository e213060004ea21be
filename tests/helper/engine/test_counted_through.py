"""ListApplications' counted_through_ns (API 9): the helper's word that the
counts listed follow every process's first socket announced before that
moment. A tick claims only what the new-owner thread had read before the
tick read its counters: a stamp that came while it read them is the next
tick's (the accounting benchmark waits on it, docs/benchmarks/flakes.md,
bare32). A real process and /proc; a recording stand-in for the datapath."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from chadthrottle.contract import BackendInfo
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


@pytest.fixture
def program() -> Iterator[Path]:
    """A copy of sleep under a name no other test runs (its own application)."""
    directory = Path(tempfile.mkdtemp(prefix="ct-through-"))
    try:
        shutil.copy("/bin/sleep", directory / "sleep")
        yield directory / "sleep"
    finally:
        shutil.rmtree(directory)


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
