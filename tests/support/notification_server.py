"""A private session bus (a real dbus-daemon --session) with a small but real
org.freedesktop.Notifications server on it (dbus-fast, on a thread of its
own), recording every notification it is sent.

Why not a packaged server: none of notification-daemon, dunst or
xfce4-notifyd is in this machine's package lists, and each needs a display;
the desktop's server speaks the same interface, which is what the GUI uses.
"""

import asyncio
import contextlib
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbus_fast.aio import MessageBus
from dbus_fast.service import ServiceInterface, method

NAME = "org.freedesktop.Notifications"
PATH = "/org/freedesktop/Notifications"


@dataclass
class Received:
    app_name: str
    replaces_id: int
    icon: str
    summary: str
    body: str
    hints: dict[str, Any]
    id: int


@dataclass
class NotificationServer:
    address: str
    received: list[Received] = field(default_factory=list)


class _Notifications(ServiceInterface):
    def __init__(self, record: list[Received]) -> None:
        super().__init__(NAME)
        self._record = record
        self._next_id = 0

    @method()
    def Notify(
        self,
        app_name: "s",
        replaces_id: "u",
        app_icon: "s",
        summary: "s",
        body: "s",  # type: ignore[name-defined]
        actions: "as",
        hints: "a{sv}",
        expire_timeout: "i",
    ) -> "u":  # type: ignore[name-defined]
        if replaces_id:
            new_id = replaces_id
        else:
            self._next_id += 1
            new_id = self._next_id
        self._record.append(
            Received(
                app_name,
                replaces_id,
                app_icon,
                summary,
                body,
                {k: v.value for k, v in hints.items()},
                new_id,
            )
        )
        return new_id

    @method()
    def GetCapabilities(self) -> "as":  # type: ignore[name-defined]
        return ["body"]

    @method()
    def GetServerInformation(self) -> "ssss":  # type: ignore[name-defined]
        return ["chadthrottle-test", "chadthrottle", "1", "1.2"]


@contextlib.contextmanager
def notification_server(directory: Path) -> Iterator[NotificationServer]:
    """A session bus in directory and the server on it; both gone on exit."""
    socket_path = directory / "session-bus"
    daemon = subprocess.Popen(
        ["dbus-daemon", "--session", "--nofork", "--print-address=1", f"--address=unix:path={socket_path}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="notification-server", daemon=True)
    try:
        address = (daemon.stdout.readline() if daemon.stdout else "").strip()
        if not address:
            raise RuntimeError(
                f"dbus-daemon --session did not start: {daemon.stderr.read() if daemon.stderr else ''}"
            )
        server = NotificationServer(address)
        thread.start()

        async def serve() -> MessageBus:
            bus = await MessageBus(bus_address=address).connect()
            bus.export(PATH, _Notifications(server.received))
            await bus.request_name(NAME)
            return bus

        bus = asyncio.run_coroutine_threadsafe(serve(), loop).result(10)
        try:
            yield server
        finally:
            loop.call_soon_threadsafe(bus.disconnect)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        if thread.is_alive():
            thread.join(5)
        if not thread.is_alive():
            loop.close()  # an event loop left open broke pytest's assertion rewriting at the session's end
        daemon.terminate()
        try:
            daemon.wait(5)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        for stream in (daemon.stdout, daemon.stderr):
            if stream is not None:
                stream.close()
