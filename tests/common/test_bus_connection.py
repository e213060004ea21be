"""A full send buffer must not cost the connection (dbus-fast drops it on EAGAIN)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

from chadthrottle.bus_connection import NothingSentOnEagain, connect_system_bus
from chadthrottle.helper.standalone import PrivateSystemBus
from dbus_fast import Message, MessageType


class FullEveryOtherTime:
    """A socket whose send buffer is full on every other send."""

    def __init__(self, sock: socket.socket) -> None:
        self.wrapped, self.sends, self.refused = sock, 0, 0

    def send(self, data: object, *flags: int) -> int:
        self.sends += 1
        if self.sends % 2:
            self.refused += 1
            raise BlockingIOError(11, "Resource temporarily unavailable")
        return self.wrapped.send(data, *flags)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> object:
        if name == "wrapped":
            raise AttributeError(name)
        return getattr(self.wrapped, name)


def _calls_through_full_buffers(address: str, mended: bool) -> tuple[int, bool, int]:
    """(answered calls out of 40, still connected, refused sends)."""

    async def run() -> tuple[int, bool, int]:
        bus = await connect_system_bus(address)
        writer = bus._writer  # type: ignore[attr-defined]
        assert isinstance(writer.sock, NothingSentOnEagain)  # the mend is in place
        flaky = FullEveryOtherTime(writer.sock.wrapped)
        writer.sock = NothingSentOnEagain(flaky) if mended else flaky  # type: ignore[arg-type]
        calls = [bus.call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                                  interface="org.freedesktop.DBus", member="GetId")) for _ in range(40)]  # fmt: skip
        replies = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 10)
        answered = sum(
            1
            for r in replies
            if isinstance(r, Message) and r.message_type is MessageType.METHOD_RETURN
        )
        connected = bus.connected
        bus.disconnect()
        return answered, connected, flaky.refused

    return asyncio.run(run())


def test_a_full_send_buffer_is_waited_out(private_bus: PrivateSystemBus) -> None:
    answered, connected, refused = _calls_through_full_buffers(private_bus.address, mended=True)
    assert refused > 0 and answered == 40 and connected


def test_without_the_mend_dbus_fast_drops_the_connection(private_bus: PrivateSystemBus) -> None:
    """If this starts failing, dbus-fast fixed EAGAIN itself and the mend can go.
    In a process of its own: dbus-fast's teardown of the dropped connection
    upsets CPython 3.11's parser state for the rest of the process."""
    probe = (f"from tests.common.test_bus_connection import _calls_through_full_buffers as c; "
             f"print(*c({private_bus.address!r}, mended=False))")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                            cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    answered, connected, _refused = result.stdout.split()[-3:]
    assert connected == "False" and int(answered) < 40
