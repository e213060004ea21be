"""The helper's run record never says less is in force than the kernel may
hold (helper/run_state.py), read as the window and the CLI read it: not
"paused, none in force" while a resume is putting the limits back, not an
older "stopped" where this helper's "running" could not be written, and not
"stopped" by a second helper of the same bus (one that never got the bus
name) over the serving helper's record. The real service on a real private
bus, fake engines; the record in a private directory (review25)."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from chadthrottle.helper.main import run_helper
from chadthrottle.helper.run_state import RunRecord
from chadthrottle.helper.standalone import PrivateSystemBus
from chadthrottle.helper_run_state import (
    RUNNING,
    STOPPED,
    LastStop,
    process_start,
    read_last_stop,
    record_text,
)

from tests.helper.adapter.conftest import (
    FakeEngineForAdapterTests,
    InProcessHelper,
    run_refused_second_helper,
)
from tests.helper.adapter.test_adapter_service import client_call
from tests.support.compiling_helper import wait_until
from tests.support.status_folder import status_folder


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return status_folder(tmp_path)


def _record(record: RunRecord) -> dict[str, object]:
    found = json.loads(record.path.read_text())
    assert isinstance(found, dict)
    return found


class RecordedHelper(InProcessHelper):
    """The in-process helper, keeping its run record."""

    def __init__(self, address: str, engine: FakeEngineForAdapterTests, record: RunRecord) -> None:
        super().__init__(address, engine)
        self.record = record

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        await run_helper(self.address, lambda: self.engine, self._stop,
                         make_service=self._make_service, run_record=self.record)  # fmt: skip


class PauseWatcher(FakeEngineForAdapterTests):
    """Paused as stored; notes whether the record says "paused" as each pause
    or resume reaches the engine (a resume puts limits into the kernel)."""

    def __init__(self, record: RunRecord) -> None:
        super().__init__()
        self.paused = True
        self.record = record
        self.said: list[tuple[bool, object]] = []

    def set_limits_paused(self, paused: bool) -> None:
        self.said.append((paused, _record(self.record).get("paused")))
        super().set_limits_paused(paused)


def test_a_resume_is_said_before_the_kernel_holds_the_limits_again(
    private_bus: PrivateSystemBus, folder: Path
) -> None:
    """Killed while resuming (windows clamped, classes and gates written), the
    record must not say "paused": the window would say none is in force.
    Before: written once the engine had resumed them."""
    record = RunRecord(private_bus.address, folder)
    engine = PauseWatcher(record)
    helper = RecordedHelper(private_bus.address, engine, record)
    helper.start()
    try:
        # as stored, written just after the bus name is owned (which start() waits for)
        assert wait_until(lambda: _record(record)["paused"] is True, 30)
        client_call(private_bus.address, "set_limits_paused", False)
        assert _record(record)["paused"] is False
        client_call(private_bus.address, "set_limits_paused", True)
        assert _record(record)["paused"] is True
    finally:
        helper.stop()
    assert engine.said == [(False, False), (True, False)], (
        "a resume reached the engine while the record still said paused"
        if engine.said[:1] == [(False, True)]
        else engine.said
    )


def test_a_running_that_cannot_be_written_leaves_no_older_stopped(folder: Path) -> None:
    """An earlier helper stopped cleanly; this one cannot write "running" (its
    file cannot be made): killed later, its limits would be read as off.
    Before: the older "stopped" stayed."""
    record = RunRecord("unix:path=/tmp/no-such-bus-of-review25", folder)
    record.start()
    record.stopped()
    assert read_last_stop("unix:path=/tmp/no-such-bus-of-review25", folder) is LastStop.STOPPED
    blocker = folder / f".{record.path.name}.{record._pid}"
    blocker.mkdir()  # the writer's own temporary name: open() fails
    try:
        record.start()
        said = read_last_stop("unix:path=/tmp/no-such-bus-of-review25", folder)
        assert said is not LastStop.STOPPED, "a helper starting is read as stopped cleanly"
    finally:
        blocker.rmdir()


@pytest.fixture
def live_other() -> Iterator[subprocess.Popen[bytes]]:
    """A process standing for the helper that serves the bus."""
    process = subprocess.Popen(["sleep", "600"])
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def test_a_second_helper_of_the_bus_leaves_the_serving_helpers_record(
    private_bus: PrivateSystemBus, folder: Path, live_other: subprocess.Popen[bytes]
) -> None:
    """Helper A serves the bus (its name owned, its record "running"); B,
    started by hand, builds an engine and is refused the name. B must leave
    A's record: A killed later leaves its limits in force. Before: B wrote
    "running" of itself, then "stopped", read as "its limits are off"."""
    serving = InProcessHelper(private_bus.address, FakeEngineForAdapterTests())
    serving.start()  # holds the bus name
    try:
        record = RunRecord(private_bus.address, folder)
        started = process_start(live_other.pid)
        assert started is not None
        record.path.write_text(record_text(RUNNING, live_other.pid, started))
        record.path.chmod(0o644)
        run_refused_second_helper(private_bus.address, record)
    finally:
        serving.stop()
    assert _record(record)["pid"] == live_other.pid, _record(record)
    live_other.kill()
    live_other.wait()
    assert read_last_stop(private_bus.address, folder) is LastStop.KILLED


def test_a_helper_stops_over_its_own_record(private_bus: PrivateSystemBus, folder: Path) -> None:
    """The usual case, kept: running while serving, stopped once closed."""
    record = RunRecord(private_bus.address, folder)
    helper = RecordedHelper(private_bus.address, FakeEngineForAdapterTests(), record)
    helper.start()
    try:
        assert _record(record)["state"] == RUNNING
    finally:
        helper.stop()
    assert _record(record)["state"] == STOPPED
