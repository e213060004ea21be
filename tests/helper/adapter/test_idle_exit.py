"""The helper stops by itself when idle with no limits (D-Bus activation starts
it again), and stays while a limit is set or calls keep coming."""

from __future__ import annotations

import asyncio
import time

from chadthrottle.client import HelperClient
from chadthrottle.helper.main import IDLE_POLL_LEAST_S, run_helper
from chadthrottle.helper.standalone import PrivateSystemBus

from tests.helper.adapter.conftest import FakeEngineForAdapterTests

IDLE_EXIT_S = 1.0


class EngineWithLimits(FakeEngineForAdapterTests):
    def __init__(self, limited: bool) -> None:
        super().__init__()
        self.limited = limited

    def has_limits(self) -> bool:
        return self.limited


def test_an_idle_helper_without_limits_exits(private_bus: PrivateSystemBus) -> None:
    engine = EngineWithLimits(limited=False)

    async def run() -> float:
        started = time.monotonic()
        await asyncio.wait_for(run_helper(private_bus.address, lambda: engine, asyncio.Event(),
                                          idle_exit_s=IDLE_EXIT_S), 15)  # fmt: skip
        return time.monotonic() - started

    assert IDLE_EXIT_S <= asyncio.run(run()) < IDLE_EXIT_S + 3
    assert engine.closed


def test_calls_and_limits_keep_it_running(private_bus: PrivateSystemBus) -> None:
    engine = EngineWithLimits(limited=True)

    async def run() -> None:
        stop = asyncio.Event()
        helper = asyncio.ensure_future(
            run_helper(private_bus.address, lambda: engine, stop, idle_exit_s=IDLE_EXIT_S)
        )
        await asyncio.sleep(3 * IDLE_EXIT_S)
        assert not helper.done(), "exited although a limit is set"
        async with HelperClient(private_bus.address) as client:
            # The limit goes right after a call, as a ClearLimit call would
            # take it: with no call for the 3 s before, the idle watch could
            # read idle and no limit before the first call reached the helper
            # (2 of 16 runs at load 2.5 exited there).
            await client.get_api_version()
            engine.limited = False
            for _ in range(8):  # calls more often than the idle timeout
                await client.get_api_version()
                await asyncio.sleep(IDLE_EXIT_S / 3)
            assert not helper.done(), "exited although calls kept coming"
        await asyncio.wait_for(helper, 3 * IDLE_EXIT_S + 2)
        stop.set()

    asyncio.run(run())
    assert engine.closed


class CountingEngine(EngineWithLimits):
    def __init__(self) -> None:
        super().__init__(limited=True)
        self.asked = 0

    def has_limits(self) -> bool:
        self.asked += 1
        return super().has_limits()


def test_a_tiny_idle_timeout_does_not_spin(private_bus: PrivateSystemBus) -> None:
    """--idle-exit-s 1e-9 is a valid number of seconds: the idle watch polled
    every idle_exit_s / 4, asking the engine thread thousands of times a
    second while a limit kept the helper up."""
    engine = CountingEngine()

    async def run() -> None:
        stop = asyncio.Event()
        helper = asyncio.ensure_future(
            run_helper(private_bus.address, lambda: engine, stop, idle_exit_s=1e-9)
        )
        while engine.asked == 0:  # serving, and watching
            await asyncio.sleep(0.01)
        asked, started = engine.asked, time.monotonic()
        await asyncio.sleep(1.0)
        per_s = (engine.asked - asked) / (time.monotonic() - started)
        stop.set()
        await asyncio.wait_for(helper, 5)
        assert per_s <= 1 / IDLE_POLL_LEAST_S + 2, (
            f"the idle watch asked {per_s:.0f} times a second"
        )

    asyncio.run(run())
