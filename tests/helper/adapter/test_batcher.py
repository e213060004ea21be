"""Calls queue while the engine thread is busy and go to it as one batch."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest
from chadthrottle.contract import Direction
from chadthrottle.helper.adapter.batcher import Batcher, one_by_one
from chadthrottle.helper.adapter.engine_thread import EngineThread
from chadthrottle.helper.engine.api import ChangeOutcome, ClearLimit, LimitChange, SetLimit
from chadthrottle.helper.errors import NoSuchApplication


class GatedEngine:
    """Records each batch; the first batch waits until the test opens the gate."""

    def __init__(self) -> None:
        self.batches: list[list[LimitChange]] = []
        self.gate = threading.Event()
        self.explode = False

    def apply_changes(self, changes: Sequence[LimitChange]) -> list[ChangeOutcome]:
        self.batches.append(list(changes))
        self.gate.wait(10)
        if self.explode:
            raise RuntimeError("unexpected")
        return [
            NoSuchApplication(c.app_id) if c.app_id == "exe:/gone" else c.app_id.upper()
            for c in changes
        ]


@pytest.fixture
def engine_thread() -> EngineThread:
    thread = EngineThread()
    yield thread
    thread.shutdown()


def test_changes_queued_behind_a_busy_engine_go_as_one_batch(engine_thread: EngineThread) -> None:
    engine = GatedEngine()
    batcher = Batcher(engine_thread, engine.apply_changes)

    async def run() -> None:
        first = asyncio.ensure_future(batcher.submit(SetLimit("exe:/a", Direction.UP, 5000, 0)))
        await asyncio.sleep(0.1)  # the engine thread is now inside the first batch
        queued = [
            asyncio.ensure_future(batcher.submit(SetLimit(f"exe:/q{n}", Direction.DOWN, 5000, 0)))
            for n in range(10)
        ]
        gone = asyncio.ensure_future(batcher.submit(ClearLimit("exe:/gone", (Direction.UP,))))
        await asyncio.sleep(0.1)
        engine.gate.set()
        assert await first == "EXE:/A"
        assert await asyncio.gather(*queued) == [f"EXE:/Q{n}" for n in range(10)]
        with pytest.raises(NoSuchApplication):
            await gone
        assert [len(batch) for batch in engine.batches] == [1, 11]
        # Idle again: a lone change goes at once, in a batch of its own.
        assert await batcher.submit(SetLimit("exe:/b", Direction.UP, 5000, 0)) == "EXE:/B"
        assert [len(batch) for batch in engine.batches] == [1, 11, 1]

    asyncio.run(run())


def test_an_unexpected_error_fails_every_call_of_its_batch_and_no_other(
    engine_thread: EngineThread,
) -> None:
    engine = GatedEngine()
    batcher = Batcher(engine_thread, engine.apply_changes)

    async def run() -> None:
        engine.explode = True
        calls = [
            asyncio.ensure_future(batcher.submit(SetLimit(f"exe:/e{n}", Direction.UP, 5000, 0)))
            for n in range(3)
        ]
        engine.gate.set()
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(result, RuntimeError) for result in results)
        engine.explode = False
        assert await batcher.submit(SetLimit("exe:/ok", Direction.UP, 5000, 0)) == "EXE:/OK"

    asyncio.run(run())


def test_one_by_one_gives_each_item_its_own_error(engine_thread: EngineThread) -> None:
    def resolve(app_id: str) -> str:
        if app_id == "exe:/gone":
            raise NoSuchApplication(app_id)
        if app_id == "exe:/bug":
            raise RuntimeError("unexpected")
        return app_id.upper()

    batcher = Batcher(engine_thread, one_by_one(resolve))

    async def run() -> None:
        results = await asyncio.gather(
            *(batcher.submit(app_id) for app_id in ("exe:/a", "exe:/gone", "exe:/bug", "exe:/b")),
            return_exceptions=True,
        )
        assert results[0] == "EXE:/A" and results[3] == "EXE:/B"
        assert isinstance(results[1], NoSuchApplication) and isinstance(results[2], RuntimeError)

    asyncio.run(run())
