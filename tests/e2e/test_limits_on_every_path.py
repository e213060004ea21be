"""A limit holds for the sum of an application's traffic on every path it
takes, not only through the helper's own uplink (issue: an application in
another network namespace ran at 1,600-3,400 times its download limit, and
one using two uplinks got the whole limit on each).

Each test limits a real application, reads what its peers received over 4 s
once it settled, and wants the sum within +-10% of the limit."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import MiB, Stack
from tests.support.helper_calls import call_helper
from tests.support.netns import NetnsPair, Stream, extra_link, rates_together, start_stream
from chadthrottle.contract import Direction

WIRE = 1448 / 1500  # payload per wire byte of a full TCP segment
LIMIT = 2 * MiB


def _sum_within(streams: list[Stream], limit_bps: int, timeout_s: float = 15.0, window_s: float = 4.0) -> float:
    """The streams' summed wire rate over window_s, read until it is within
    +-10% of the limit or timeout_s passed (the last reading is returned)."""
    deadline = time.monotonic() + timeout_s
    while True:
        total = sum(rates_together([s.receiver for s in streams], window_s)) / WIRE
        if 0.9 * limit_bps <= total <= 1.1 * limit_bps or time.monotonic() > deadline:
            return total


@contextlib.contextmanager
def _limited(stack: Stack, stream: Stream, direction: Direction, limit_bps: int) -> Iterator[str]:
    app = call_helper(stack.bus_address, lambda c: c.set_limit(f"pid:{stream.app_pid}", direction, limit_bps))
    try:
        yield app
    finally:
        call_helper(stack.bus_address, lambda c: c.clear_limit(app))


@pytest.fixture
def app_namespace(stack: Stack) -> Iterator[NetnsPair]:
    """An application's own network namespace with its own link to the
    internet, bypassing the helper's namespace (a VPN split tunnel, a sandbox)."""
    with extra_link(f"ctapp-{secrets.token_hex(3)}", stack.pair.peer_ns) as link:
        yield link


@pytest.mark.parametrize("direction", [Direction.UP])
def test_an_application_in_another_namespace_is_held(
    stack: Stack, app_namespace: NetnsPair, direction: Direction
) -> None:
    stream = start_stream(app_namespace, 5830, direction.value)
    try:
        assert stream.receiver.rate_bps(1.0) > 10 * LIMIT  # it is fast before
        with _limited(stack, stream, direction, LIMIT):
            total = _sum_within([stream], LIMIT)
            assert 0.9 * LIMIT <= total <= 1.1 * LIMIT, f"{total / LIMIT:.3f} of the limit"
    finally:
        stream.stop()


@pytest.mark.parametrize("direction", [Direction.UP, Direction.DOWN])
def test_an_application_using_two_uplinks_is_held_in_sum(stack: Stack, direction: Direction) -> None:
    """Two uplinks in the helper's namespace (Ethernet and Wi-Fi at once): one
    application's connections over both hold one limit together."""
    with extra_link(stack.pair.host_ns, stack.pair.peer_ns) as second:
        first_stream = start_stream(stack.pair, 5831, direction.value)
        streams = [first_stream]
        try:
            with _limited(stack, first_stream, direction, LIMIT):
                # the same program, so the same application: its second connection takes the second uplink
                streams.append(start_stream(second, 5832, direction.value))
                total = _sum_within(streams, LIMIT)
                assert 0.9 * LIMIT <= total <= 1.1 * LIMIT, f"{total / LIMIT:.3f} of the limit"
        finally:
            for stream in streams:
                stream.stop()
