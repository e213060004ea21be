"""When run_helper writes the helper's run record (helper/run_state.py): "running"
before the engine is built, "stopped" only once the engine closed, and a
start given up with nothing built leaves what was said before (an earlier
killed helper's limits are still in the kernel then). A fake engine, the real
bus; the record in a private directory."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from chadthrottle.helper.errors import StartCancelled
from chadthrottle.helper.main import run_helper
from chadthrottle.helper.run_state import RunRecord
from chadthrottle.helper.standalone import PrivateSystemBus
from chadthrottle.helper_run_state import RUNNING, STOPPED, record_text

from tests.helper.adapter.conftest import FakeEngineForAdapterTests
from tests.support.requirements import require_root


class BrokenClose(FakeEngineForAdapterTests):
    def close(self) -> None:
        raise OSError("the kernel refused")


@pytest.fixture
def record(tmp_path: Path, private_bus: PrivateSystemBus) -> RunRecord:
    require_root()
    folder = tmp_path / "status"
    folder.mkdir(mode=0o755)
    return RunRecord(private_bus.address, folder)


def _state(record: RunRecord) -> str:
    return str(json.loads(record.path.read_text())["state"])


def _serve(address: str, record: RunRecord, make_engine, stop: asyncio.Event | None = None) -> None:  # type: ignore[no-untyped-def]
    async def run() -> None:
        stopping = stop or asyncio.Event()
        seen: list[str] = []

        def engine() -> object:
            seen.append(_state(record))  # said before the engine is built
            return make_engine()

        if stop is None:
            asyncio.get_running_loop().call_later(0.2, stopping.set)
        await asyncio.wait_for(run_helper(address, engine, stopping, run_record=record), 30)
        assert seen == [RUNNING]

    asyncio.run(run())


def test_stopped_once_the_engine_closed(private_bus: PrivateSystemBus, record: RunRecord) -> None:
    engine = FakeEngineForAdapterTests()
    _serve(private_bus.address, record, lambda: engine)
    assert engine.closed and _state(record) == STOPPED


def test_an_engine_that_fails_to_close_is_not_said_stopped(
    private_bus: PrivateSystemBus, record: RunRecord
) -> None:
    with pytest.raises(OSError, match="refused"):
        _serve(private_bus.address, record, BrokenClose)
    assert _state(record) == RUNNING  # once this process is gone: killed, its limits may stay


@pytest.mark.parametrize(
    ("before", "after"), [(STOPPED, STOPPED), (RUNNING, RUNNING), (None, STOPPED)]
)
def test_a_start_given_up_leaves_what_was_said(
    private_bus: PrivateSystemBus, record: RunRecord, before: str | None, after: str
) -> None:
    """Before: stopped cleanly, killed (running of a process gone), or none."""
    if before is not None:
        record.path.write_text(record_text(before, 999_999_999, 1))
        record.path.chmod(0o644)
    stop = asyncio.Event()

    def cancelled() -> object:
        stop.set()
        raise StartCancelled("stopped while compiling")

    _serve(private_bus.address, record, cancelled, stop)
    assert _state(record) == after


def test_a_private_bus_takes_its_record_along(tmp_path: Path) -> None:
    """A test's (or scripts/run-app's) private bus goes, and with it its helper's
    record in /run/chadthrottle-status: nothing of a bus that is gone is left."""
    require_root()
    with PrivateSystemBus() as bus:
        record = RunRecord(bus.address)  # the helper's own place
        _serve(bus.address, record, FakeEngineForAdapterTests)
        assert _state(record) == STOPPED
    assert not record.path.exists()
