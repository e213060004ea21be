"""Synchronous calls to the helper for tests, through the product's own client."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from chadthrottle.client import HelperClient

T = TypeVar("T")


def call_helper(bus_address: str, action: Callable[[HelperClient], Awaitable[T]]) -> T:
    async def run() -> T:
        async with HelperClient(bus_address) as client:
            return await action(client)

    return asyncio.run(run())
