"""A limit follows the interfaces: one that appears after the limit was set
(a VPN that connects later, a second uplink) and one that goes away and comes
back hold the application's limit too, in sum with its other paths, and the
helper leaves nothing behind for a device that went."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from chadthrottle.contract import Direction

from tests.e2e.conftest import MiB, Stack
from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.netns import Stream, app_scope, extra_link, start_stream
from tests.support.settled_sum import settled_rates

WIRE = 1448 / 1500
LIMIT = 2 * MiB


def _sum_within(streams: list[Stream], limit_bps: int) -> float:
    """Summed wire rate over the first 4 s window once the sum settled
    (tests/support/settled_sum.py)."""
    return sum(settled_rates([s.receiver for s in streams], limit_bps, WIRE))


@pytest.fixture
def scope(stack: Stack) -> Iterator[Path]:
    """The application's own app scope: its identity is not the peers' (they run
    the same traffic program)."""
    with app_scope(stack.cgroup_root, own_names.desktop_id("TestInterfaces")) as path:
        yield path


@contextlib.contextmanager
def _streams() -> Iterator[list[Stream]]:
    streams: list[Stream] = []
    try:
        yield streams
    finally:
        for stream in streams:
            stream.stop()


def _ifbs(netns: str) -> list[str]:
    out = subprocess.run(
        ["ip", "-n", netns, "-o", "link", "show", "type", "ifb"], capture_output=True, text=True
    )
    return [line.split(":")[1].strip() for line in out.stdout.splitlines()]


@pytest.mark.parametrize("direction", [Direction.DOWN, Direction.UP])
def test_an_uplink_that_appears_after_the_limit_is_held_in_sum(
    stack: Stack, scope: Path, direction: Direction
) -> None:
    with _streams() as streams:
        streams.append(start_stream(stack.pair, 5840, direction.value, app_cgroup=scope))
        app = call_helper(
            stack.bus_address, lambda c: c.set_limit(f"pid:{streams[0].app_pid}", direction, LIMIT)
        )
        try:
            time.sleep(1.0)
            with extra_link(
                stack.pair.host_ns, stack.pair.peer_ns
            ) as later:  # connects after the limit
                streams.append(start_stream(later, 5841, direction.value, app_cgroup=scope))
                total = _sum_within(streams, LIMIT)
                assert 0.9 * LIMIT <= total <= 1.1 * LIMIT, f"{total / LIMIT:.3f} of the limit"
                if (
                    direction is Direction.DOWN
                ):  # one IFB, and so one class, for both uplinks' downloads
                    assert len(_ifbs(stack.pair.host_ns)) == 1, _ifbs(stack.pair.host_ns)
                streams.pop().stop()
        finally:
            call_helper(stack.bus_address, lambda c: c.clear_limit(app))


@pytest.mark.parametrize("direction", [Direction.DOWN, Direction.UP])
def test_an_uplink_deleted_and_added_again_is_held_and_leaves_nothing(
    stack: Stack, scope: Path, direction: Direction
) -> None:
    with _streams() as streams:
        streams.append(start_stream(stack.pair, 5842, direction.value, app_cgroup=scope))
        app = call_helper(
            stack.bus_address, lambda c: c.set_limit(f"pid:{streams[0].app_pid}", direction, LIMIT)
        )
        try:
            for attempt in range(2):  # the same kind of device, deleted and added again
                with extra_link(stack.pair.host_ns, stack.pair.peer_ns) as second:
                    streams.append(
                        start_stream(second, 5843 + attempt, direction.value, app_cgroup=scope)
                    )
                    total = _sum_within(streams, LIMIT)
                    assert 0.9 * LIMIT <= total <= 1.1 * LIMIT, (
                        f"attempt {attempt}: {total / LIMIT:.3f} of the limit"
                    )
                    streams.pop().stop()
                # the device is gone: so is whatever the helper made for it
                deadline = time.monotonic() + 5
                while len(_ifbs(stack.pair.host_ns)) > 1 and time.monotonic() < deadline:
                    time.sleep(0.2)
                if direction is Direction.DOWN:
                    assert len(_ifbs(stack.pair.host_ns)) == 1, _ifbs(stack.pair.host_ns)
            total = _sum_within(streams, LIMIT)  # the first path still holds the limit alone
            assert 0.9 * LIMIT <= total <= 1.1 * LIMIT, f"{total / LIMIT:.3f} of the limit"
        finally:
            call_helper(stack.bus_address, lambda c: c.clear_limit(app))
