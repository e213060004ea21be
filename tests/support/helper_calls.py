"""Synchronous calls to the helper for tests, through the product's own client."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from chadthrottle.client import HelperClient, HelperClientError
from chadthrottle.contract import RuleScope

from tests.support.waiting import eventually

T = TypeVar("T")


def call_helper(bus_address: str, action: Callable[[HelperClient], Awaitable[T]]) -> T:
    async def run() -> T:
        async with HelperClient(bus_address) as client:
            return await action(client)

    return asyncio.run(run())


def set_priority_when_listed(bus_address: str, app_id: str, priority: str) -> None:
    """SetPriority for every user, again until the helper knows the application
    (its next tick lists it); the test fails if it is still refused after 5 s."""

    def attempt() -> bool:
        try:
            done = call_helper(
                bus_address, lambda c: c.set_priority(app_id, priority, scope=RuleScope.ALL)
            )
            return bool(done == app_id)
        except HelperClientError:
            return False  # not seen yet

    assert eventually(attempt, 5.0), f"SetPriority({app_id}, {priority}) was refused"
