"""Waiting for a well-known name to get an owner on a bus.

Used by the standalone runner and the tests to know when polkitd or the
helper is ready, without sleeping for a guessed time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

POLL_INTERVAL_S = 0.05


async def _ask_bus(bus: MessageBus, member: str, name: str) -> Any:
    reply = await bus.call(
        Message(
            destination="org.freedesktop.DBus",
            path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus",
            member=member,
            signature="s",
            body=[name],
        )
    )
    return reply.body[0] if reply.message_type is MessageType.METHOD_RETURN else None


async def _owned(bus: MessageBus, name: str, owner_pid: int | None) -> bool:
    if await _ask_bus(bus, "NameHasOwner", name) is not True:
        return False
    return owner_pid is None or await _ask_bus(bus, "GetConnectionUnixProcessID", name) == owner_pid


async def wait_for_bus_name_async(
    address: str,
    name: str,
    timeout_s: float,
    exited: Callable[[], int | None] = lambda: None,
    owner_pid: int | None = None,
) -> bool:
    """True once name has an owner (process owner_pid, if given); False on
    timeout or when exited() returns a status (the process that should take the
    name died)."""
    deadline = time.monotonic() + timeout_s
    bus = await MessageBus(bus_address=address).connect()
    try:
        while time.monotonic() < deadline:
            if await _owned(bus, name, owner_pid):
                return True
            if exited() is not None:
                return False
            await asyncio.sleep(POLL_INTERVAL_S)
        return False
    finally:
        bus.disconnect()


def wait_for_bus_name(
    address: str,
    name: str,
    timeout_s: float,
    exited: Callable[[], int | None] = lambda: None,
    owner_pid: int | None = None,
) -> bool:
    """Blocking wait_for_bus_name_async, safe to call from inside a running event
    loop too (it runs on a thread of its own)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="wait-bus-name") as pool:
        return pool.submit(
            asyncio.run, wait_for_bus_name_async(address, name, timeout_s, exited, owner_pid)
        ).result()
