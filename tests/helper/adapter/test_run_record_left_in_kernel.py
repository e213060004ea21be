"""The run record says "stopped" only where nothing of this helper may be left
(close26): not after a start whose undo could not remove what it made (a
datapath that would not detach, a first tick's shapers), and not from a
helper refused the bus name, whose "stopped" would stand for the serving
helper's when that one's own record could not be written. The real bus and
run_helper; build_engine's kernel parts faked where a failure must be made."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from chadthrottle.contract import Direction
from chadthrottle.helper.engine import factory
from chadthrottle.helper.engine.factory import EngineOptions, build_engine
from chadthrottle.helper.errors import LeftInKernel
from chadthrottle.helper.main import run_helper
from chadthrottle.helper.run_state import RunRecord
from chadthrottle.helper.standalone import PrivateSystemBus
from chadthrottle.helper_run_state import STOPPED, LastStop, read_last_stop

from tests.helper.adapter.conftest import (
    FakeEngineForAdapterTests,
    InProcessHelper,
    run_refused_second_helper,
)
from tests.support.status_folder import status_folder


class _StuckDatapath:
    """A datapath attached whose programs cannot be detached again."""

    def __init__(self, **_: Any) -> None:
        self.tc_program = None

    def open(self) -> None:
        pass

    def adopt_open_sockets(self, pids: list[int]) -> dict[int, int]:
        return {}

    def close(self) -> None:
        raise OSError("could not detach a program from the cgroup root")


class _Enforcer:
    """The policer, as the router closes it."""

    closed = False

    def close(self) -> None:
        type(self).closed = True


class _Ipr:
    def close(self) -> None:
        pass


def _first_tick_fails(*_: Any, **__: Any) -> None:
    raise RuntimeError("the first tick failed")


@pytest.fixture
def failing_build(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> EngineOptions:
    """build_engine whose engine's first tick fails and whose datapath then
    cannot detach; its shapers (the policer) made already."""
    monkeypatch.setattr(factory, "kernel_config", lambda: None)
    monkeypatch.setattr(factory, "choose_backends",
                        lambda _b, _c: {direction: factory.EBPF for direction in Direction})  # fmt: skip
    monkeypatch.setattr(factory, "IPRoute", _Ipr)
    monkeypatch.setattr(factory, "Datapath", _StuckDatapath)
    monkeypatch.setattr(factory, "remove_leftovers", lambda _ipr: 0)
    monkeypatch.setattr(factory, "all_pids", list)
    monkeypatch.setattr(factory, "EbpfPolicer", lambda _datapath: _Enforcer())
    monkeypatch.setattr(factory, "RunningEngine", _first_tick_fails)
    _Enforcer.closed = False
    return EngineOptions(state_dir=tmp_path / "state")


def test_a_build_whose_undo_cannot_detach_says_what_is_left(failing_build: EngineOptions) -> None:
    with pytest.raises(LeftInKernel, match="the datapath: could not detach") as raised:
        build_engine(failing_build)
    assert isinstance(raised.value.__cause__, RuntimeError)
    assert _Enforcer.closed, "the shapers a first tick made were never closed"


def test_a_failed_start_that_left_objects_is_not_said_stopped(
    private_bus: PrivateSystemBus, tmp_path: Path, failing_build: EngineOptions
) -> None:
    """The helper before stopped cleanly; this one's start fails and its undo
    cannot detach: its record must not say "stopped" (its limits are off).
    Before: the older "stopped" was written again."""
    folder = status_folder(tmp_path)
    before = RunRecord(private_bus.address, folder)
    before.start()
    before.stopped()
    record = RunRecord(private_bus.address, folder)  # the next helper's

    async def start() -> None:
        await run_helper(private_bus.address, lambda: build_engine(failing_build),
                         asyncio.Event(), run_record=record)  # fmt: skip

    with pytest.raises(LeftInKernel):
        asyncio.run(start())
    assert json.loads(record.path.read_text())["state"] != STOPPED


def test_a_helper_refused_the_bus_name_writes_no_stopped(
    private_bus: PrivateSystemBus, tmp_path: Path
) -> None:
    """Helper A serves the bus, but its record could not be written (none is
    there). B, started by hand, is refused the name: it must not leave
    "stopped", read as A's limits being off once A is killed. Before: B wrote
    "running" then "stopped" of itself."""
    folder = status_folder(tmp_path)
    serving = InProcessHelper(private_bus.address, FakeEngineForAdapterTests())
    serving.start()  # holds the bus name; wrote no record
    try:
        record = RunRecord(private_bus.address, folder)
        run_refused_second_helper(private_bus.address, record)
    finally:
        serving.stop()
    assert read_last_stop(private_bus.address, folder) is not LastStop.STOPPED
    assert not record.path.exists()  # A's state is not known: no record says it
