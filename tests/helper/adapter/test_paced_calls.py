"""A paced caller's waiting calls (service.py, refusals.WaitingCalls): bounded
in bytes as well as in number, and dropped cleanly when the caller leaves.
Pure plumbing on the event loop: the bus is a recorder (what the service
sends), the calls fail on their signature before any engine or polkit work.
The same pacing on the real bus and polkitd: test_failing_callers.py."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from chadthrottle.contract import BUS_NAME, INTERFACE, OBJECT_PATH, Action
from chadthrottle.helper.adapter.engine_thread import EngineThread
from chadthrottle.helper.adapter.refusals import (
    FailureBudget,
    WaitingCalls,
    WaitingTotal,
    arguments_size,
)
from chadthrottle.helper.adapter.service import (
    BUS_DAEMON,
    BUS_DAEMON_PATH,
    FAILURES_BEFORE_DELAY,
    MAX_WAITING_BYTES,
    PACED_BOUNDS,
    TOO_MANY_WAITING_TEXT,
    HelperService,
)
from dbus_fast import Message, MessageType, Variant

from tests.helper.adapter.conftest import FakeEngineForAdapterTests

CALLER = ":1.7"


class _RecordingBus:
    """What the service sends, in order; its message handler, to call it."""

    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.handlers: list[Any] = []

    def add_message_handler(self, handler: Any) -> None:
        self.handlers.append(handler)

    def remove_message_handler(self, handler: Any) -> None:
        self.handlers.remove(handler)

    def send(self, message: Message) -> None:
        self.sent.append(message)

    async def call(self, message: Message) -> Message:
        """The bus's answer to GetConnectionUnixUser: every caller is uid 1000."""
        assert message.member == "GetConnectionUnixUser", message.member
        return Message(message_type=MessageType.METHOD_RETURN, reply_serial=1, signature="u",
                       body=[1000])  # fmt: skip

    def deliver(self, message: Message) -> None:
        for handler in self.handlers:
            handler(message)


class _NoAuthority:
    async def check(self, sender: str, action: Action, *, interactive: bool) -> bool:
        return False

    def forget(self, sender: str) -> None:
        pass


def _failing_call(serial: int, text: str = "") -> Message:
    """ClearLimit with a signature it does not take: InvalidArgument, no work."""
    return Message(destination=BUS_NAME, path=OBJECT_PATH, interface=INTERFACE, member="ClearLimit",
                   signature="sass", body=[f"exe:/nonexistent/{serial}", [], text], sender=CALLER,
                   serial=serial)  # fmt: skip


def _errors(bus: _RecordingBus, text: str) -> int:
    return sum(1 for m in bus.sent if m.message_type is MessageType.ERROR and m.body == [text])


async def _after_failures(bus: _RecordingBus, calls: list[Message], authority: Any = None,
                          clock: Callable[[], float] | None = None) -> HelperService:  # fmt: skip
    """A service that has answered CALLER's `calls`, each a failure (its polkit
    `authority`, its failure budget on `clock`, where given)."""
    service = HelperService(
        bus, FakeEngineForAdapterTests(), authority or _NoAuthority(), EngineThread()
    )  # type: ignore[arg-type]
    if clock is not None:
        service._failures = FailureBudget(FAILURES_BEFORE_DELAY, clock=clock)
    service.export()
    for call in calls:
        bus.deliver(call)
    async with asyncio.timeout(10):
        while sum(1 for m in bus.sent if m.message_type is MessageType.ERROR) < len(calls):
            await asyncio.sleep(0.01)
    return service


async def _paced(bus: _RecordingBus) -> HelperService:
    """A service whose caller CALLER has failed FAILURES_BEFORE_DELAY calls."""
    return await _after_failures(
        bus, [_failing_call(n) for n in range(1, FAILURES_BEFORE_DELAY + 1)]
    )


def test_a_paced_callers_waiting_calls_are_bounded_in_bytes() -> None:
    """MAX_WAITING bounded how many of a paced caller's calls wait, not how
    big: the system bus lets a call carry 32 MiB, and on the real bus 200
    no-reply calls of 4 MiB took the helper from 70 to 696 MiB (review7,
    22:43 UTC). Past MAX_WAITING_BYTES, a call is refused unread at once."""
    bus = _RecordingBus()

    async def scenario() -> int:
        service = await _paced(bus)
        big = "x" * (MAX_WAITING_BYTES // 2)
        for serial in range(100, 108):  # 4 MiB: far under MAX_WAITING calls
            bus.deliver(_failing_call(serial, big))
        refused = _errors(bus, TOO_MANY_WAITING_TEXT)
        await service.close(timeout_s=0.0)
        return refused

    assert asyncio.run(scenario()) >= 6


def test_a_paced_caller_that_leaves_while_its_calls_wait_ends_cleanly() -> None:
    """The caller leaves the bus (NameOwnerChanged) while its pacing sleeps:
    its waiting calls are dropped and the pacing ends. It raised IndexError
    (popleft on the emptied queue; 'Task exception was never retrieved' in
    the helper's log, review7 22:43 UTC)."""
    bus = _RecordingBus()

    async def scenario() -> list[BaseException | None]:
        service = await _paced(bus)
        bus.deliver(_failing_call(100))
        bus.deliver(_failing_call(101))
        tasks = asyncio.all_tasks() - {asyncio.current_task()}
        await asyncio.sleep(0)  # the pacing starts: it sleeps, the caller still failing
        bus.deliver(Message(message_type=MessageType.SIGNAL, sender=BUS_DAEMON, path=BUS_DAEMON_PATH,
                            interface=BUS_DAEMON, member="NameOwnerChanged", signature="sss",
                            body=[CALLER, CALLER, ""]))  # fmt: skip
        await asyncio.wait(tasks)
        await service.close(timeout_s=0.0)
        return [task.exception() for task in tasks]

    outcomes = asyncio.run(scenario())
    assert outcomes and all(error is None for error in outcomes), outcomes


def test_calls_to_a_method_that_is_not_there_are_failures_too() -> None:
    """A call to no such method was answered with an error but not counted as
    a failure: a caller could call one as fast as it was answered and never be
    paced. After FAILURES_BEFORE_DELAY of them its next call waits (here one
    over MAX_WAITING_BYTES: refused unread at once, which only a paced call is)."""
    bus = _RecordingBus()

    async def scenario() -> int:
        unknown = [Message(destination=BUS_NAME, path=OBJECT_PATH, interface=INTERFACE,
                           member="NoSuchMethod", sender=CALLER, serial=n)
                   for n in range(1, FAILURES_BEFORE_DELAY + 1)]  # fmt: skip
        service = await _after_failures(bus, unknown)
        bus.deliver(_failing_call(100, "x" * (MAX_WAITING_BYTES + 1)))
        refused = _errors(bus, TOO_MANY_WAITING_TEXT)
        await service.close(timeout_s=0.0)
        return refused

    assert asyncio.run(scenario()) == 1


class _SlowNo:
    """polkit slow to say no: each check waits for release."""

    def __init__(self) -> None:
        self.asked = 0
        self.release = asyncio.Event()

    async def check(self, sender: str, action: Action, *, interactive: bool) -> bool:
        self.asked += 1
        await self.release.wait()
        return False

    def forget(self, sender: str) -> None:
        pass


def test_a_paced_callers_calls_start_one_at_a_time_when_their_failures_lag() -> None:
    """The calls a pacing starts count as failures only when they end: with polkit
    or the engine slow, none ended within a second, spent() turned False and the
    pacing started its whole queue at once (flood8's granted floods, load 8-10:
    root's p99 0.84-1.05 s). It waits FAILURE_DELAY_S before every start. The
    failure budget's clock is the test's: its second passes while the started
    calls still wait on polkit."""
    bus = _RecordingBus()
    now = [0.0]

    async def scenario() -> int:
        authority = _SlowNo()
        failing = [_failing_call(n) for n in range(1, FAILURES_BEFORE_DELAY + 1)]
        service = await _after_failures(bus, failing, authority, clock=lambda: now[0])
        for n in range(100, 120):  # each waits on polkit once started
            bus.deliver(Message(destination=BUS_NAME, path=OBJECT_PATH, interface=INTERFACE,
                                member="SetLimitsPaused", signature="b", body=[True], sender=CALLER,
                                serial=n))  # fmt: skip
        async with asyncio.timeout(10):
            while authority.asked < 1:
                await asyncio.sleep(0.01)
            now[0] += 2.0  # the failures are a second old; the started call has not ended
            while authority.asked < 3:
                await asyncio.sleep(0.01)
        started = authority.asked
        authority.release.set()
        await service.close(timeout_s=0.0)
        return started

    assert asyncio.run(scenario()) < 10


def test_arguments_size_counts_text_bytes_and_containers() -> None:
    assert arguments_size(["ab", b"cde", 7]) == 8 + 2 + 3 + 8
    assert arguments_size([{"k": Variant("s", "vv")}]) == 8 + 8 + 1 + 8 + 2


def test_waiting_calls_fit_within_either_bound_give_back_in_order_and_count_in_total() -> None:
    total = WaitingTotal(PACED_BOUNDS)
    waiting = WaitingCalls(max_calls=2, max_bytes=150, total=total)  # each call here: 64 bytes
    first, second, third = (_failing_call(n, "y" * 30) for n in (1, 2, 3))
    for call in (first, second):
        assert waiting.fits(arguments_size(call.body))
        waiting.add(call, arguments_size(call.body))
    assert not waiting.fits(arguments_size(third.body))  # calls
    assert (total.calls, total.bytes) == (2, 128)
    assert waiting.pop() is first and len(waiting) == 1
    assert not waiting.fits(arguments_size(_failing_call(4, "z" * 100).body))  # bytes
    assert waiting.clear() == [second] and len(waiting) == 0 and waiting.bytes == 0
    assert (total.calls, total.bytes) == (0, 0)


def test_waiting_calls_drop_one_connections_calls() -> None:
    total = WaitingTotal(PACED_BOUNDS)
    waiting = WaitingCalls(max_calls=8, max_bytes=1000, total=total)
    other = Message(destination=BUS_NAME, path=OBJECT_PATH, interface=INTERFACE, member="ClearLimit",
                    signature="s", body=["x"], sender=":1.8", serial=9)  # fmt: skip
    for call in (_failing_call(1), other, _failing_call(2)):
        waiting.add(call, arguments_size(call.body))
    waiting.drop(CALLER)
    assert waiting.pop() is other and (total.calls, total.bytes, waiting.bytes) == (0, 0, 0)


class _Yes:
    async def check(self, sender: str, action: Action, *, interactive: bool) -> bool:
        return True

    def forget(self, sender: str) -> None:
        pass


class _HeldInterfaces(FakeEngineForAdapterTests):
    """ListInterfaces' read waits for release (a slow read: _slow_read)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def list_interfaces(self) -> list[Any]:
        result = super().list_interfaces()
        self.release.wait(30)
        return result


def test_slow_reads_of_a_caller_that_left_the_bus_are_not_read() -> None:
    """A caller's ListInterfaces (or ListConnections, GetUsage) wait their
    turn one at a time; one that left the bus meanwhile has them dropped,
    as a paced caller's waiting calls are: no one can get their answers. Until
    review29 every one was read, so a user could queue 128 a connection,
    drop the connection and do it again, each read costing what the user
    chose (1.7 s for a process of its own holding 19,000 sockets)."""
    bus, engine = _RecordingBus(), _HeldInterfaces()

    async def scenario() -> int:
        service = HelperService(bus, engine, _Yes(), EngineThread())  # type: ignore[arg-type]
        service.export()
        for serial in range(1, 6):
            bus.deliver(Message(destination=BUS_NAME, path=OBJECT_PATH, interface=INTERFACE,
                                member="ListInterfaces", sender=CALLER, serial=serial))  # fmt: skip
        async with asyncio.timeout(10):
            while engine.calls.count(("list_interfaces",)) < 1:  # the first is being read
                await asyncio.sleep(0.01)
        bus.deliver(Message(message_type=MessageType.SIGNAL, sender=BUS_DAEMON, path=BUS_DAEMON_PATH,
                            interface=BUS_DAEMON, member="NameOwnerChanged", signature="sss",
                            body=[CALLER, CALLER, ""]))  # fmt: skip
        engine.release.set()
        async with asyncio.timeout(10):
            while sum(1 for m in bus.sent if m.reply_serial in range(1, 6)) < 5:  # one reply each
                await asyncio.sleep(0.01)
        await service.close(timeout_s=5.0)
        return engine.calls.count(("list_interfaces",))

    read = asyncio.run(scenario())
    assert read == 1, f"{read} reads for a caller that left the bus after the first began"
