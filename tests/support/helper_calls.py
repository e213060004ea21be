"""Synchronous calls to the helper for tests, through the product's own client."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
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


@contextlib.contextmanager
def priorities_undone(bus_address: str, *app_ids: str) -> Iterator[None]:
    """On leaving the block, also when it failed: priority normal for each
    application and the link capacity off. A module's tests share its helper
    (tests/e2e/conftest.py's stack): a failed assertion before a test's own
    undoing left its priorities and the link tree (an HTB on two IFBs, a
    clsact on the uplink) to the next test, whose "untouched" tc state then
    held them. Put it inside the applications' scopes (a helper refuses a
    priority for an application it no longer lists). Its own errors are
    swallowed so a failing test's error is the one reported; a passing test's
    own checks (ListRules empty, tc as found) still see any left."""
    try:
        yield
    finally:
        for app_id in app_ids:
            with contextlib.suppress(HelperClientError):
                call_helper(bus_address, lambda c, a=app_id: c.set_priority(a, "normal", scope=RuleScope.ALL))  # fmt: skip
        with contextlib.suppress(HelperClientError):
            call_helper(bus_address, lambda c: c.set_link_capacity(0, 0, False))
