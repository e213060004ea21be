"""A limit set through the helper's D-Bus API slows a real, already running
connection to the configured rate, leaves other applications alone, and goes
away when cleared."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable

import pytest
from chadthrottle.contract import Direction

from tests.e2e.conftest import MiB, Stack
from tests.support import own_names
from tests.support.download_settled import (
    LANDING_SLACK_BYTES,
    Landing,
    wait_until_download_settled,
)
from tests.support.helper_calls import call_helper
from tests.support.netns import app_scope, start_stream
from tests.support.waiting import eventually

LIMIT_BPS = MiB
TAKES_HOLD_S = 2.0  # traffic is at the limit after this long
WINDOW_S = 2.0
# An upload under tc comes down to its limit at once; a window this long shows
# it has, so the measuring window starts then rather than TAKES_HOLD_S later.
HOLD_PROBE_S = 0.5
# What an application reads lags the wire after a download limit lands on a
# full-speed stream: data that arrived out of order before the limit is handed
# over only as the holes are refilled through the shaper (3-5 s here), so the
# reader's own rate is judged after that; the wire is judged at TAKES_HOLD_S.
READ_SETTLE_S = {Direction.DOWN: 1.0}
# The remote sender then still swings around the rate for a few seconds (BBR:
# +-15% in 0.25 s windows, docs/benchmarks.md); a 2 s window read 0.898 once.
DOWNLOAD_WINDOW_S = 4.0
# Receivers count payload; the limit counts IP packets (~4% headers at MTU 1500).
PAYLOAD_SHARE = 1448 / 1500


def wait_until_at_limit(
    rate_over: Callable[[float], float],
    limit_bps: float,
    tolerance: float = 0.10,
    timeout_s: float = TAKES_HOLD_S,
) -> None:
    """Instead of sleeping timeout_s before a measuring window: until a
    HOLD_PROBE_S window of rate_over (seconds -> L3 B/s) reads limit_bps within
    the tolerance (not above it: the limit has landed; not below: the traffic
    runs, no stall), for at most timeout_s. Whether the limit holds is the
    measuring window's to judge, with its own tolerance."""
    eventually(
        lambda: abs(rate_over(HOLD_PROBE_S) - limit_bps) <= tolerance * limit_bps,
        timeout_s,
        interval_s=0.0,
    )


def _within(rate_bps: float, tolerance: float = 0.10) -> bool:
    return (1 - tolerance) * LIMIT_BPS <= rate_bps <= (1 + tolerance) * LIMIT_BPS


def _measured_by_helper(stack: Stack, app_id: str, direction: Direction) -> float:
    apps = {a.id: a for a in call_helper(stack.bus_address, lambda c: c.list_applications())}
    return apps[app_id].rate_bps(direction)


@pytest.mark.parametrize("direction", [Direction.UP, Direction.DOWN], ids=["upload", "download"])
def test_limit_slows_a_running_stream_and_clearing_restores_it(
    stack: Stack, direction: Direction
) -> None:
    port = 5400 if direction is Direction.UP else 5410
    with app_scope(
        stack.cgroup_root, own_names.desktop_id(f"Test{direction.value.title()}")
    ) as scope:
        limited = start_stream(stack.pair, port, direction.value, app_cgroup=scope)
        bystander = start_stream(stack.pair, port + 1, direction.value)
        try:
            time.sleep(0.5)
            assert limited.receiver.rate_bps(0.5) > 20 * LIMIT_BPS  # unlimited to begin with
            app_id = call_helper(
                stack.bus_address,
                lambda c: c.set_limit(f"pid:{limited.app_pid}", direction, LIMIT_BPS),
            )
            assert app_id == own_names.app_id(f"Test{direction.value.title()}")
            if direction is Direction.UP:
                wait_until_at_limit(
                    lambda s: limited.receiver.rate_bps(s) / PAYLOAD_SHARE, LIMIT_BPS
                )
                read = limited.receiver.rate_bps(WINDOW_S) / PAYLOAD_SHARE
            else:
                # from once the reads are at the limit with no hole left (a fixed
                # 5 s was waited); Landing holds them to the limit from the reply on
                landing = Landing.now(limited.receiver, stack.pair.host_ns, port)
                wait_until_download_settled(
                    limited.receiver,
                    stack.pair.host_ns,
                    port,
                    PAYLOAD_SHARE * LIMIT_BPS,
                    sender_netns=stack.pair.peer_ns,
                    timeout_s=TAKES_HOLD_S + WINDOW_S + READ_SETTLE_S[direction],
                )
                read = limited.receiver.rate_bps(DOWNLOAD_WINDOW_S) / PAYLOAD_SHARE
                assert landing.excess_bytes(PAYLOAD_SHARE * LIMIT_BPS) <= LANDING_SLACK_BYTES
            assert _within(read), f"the application moved {read / MiB:.3f} MiB/s at L3"
            # What the window shows: the helper's rate over its last two ticks,
            # once both are after the limit took hold (up to 3 s after it did).
            assert eventually(
                lambda: _within(_measured_by_helper(stack, app_id, direction)), 3.0, interval_s=0.25
            ), (
                f"the helper measured {_measured_by_helper(stack, app_id, direction) / MiB:.3f} MiB/s at L3"
            )
            assert (
                bystander.receiver.rate_bps(1.0) > 20 * LIMIT_BPS
            )  # another application: not slowed

            apps = {
                a.id: a for a in call_helper(stack.bus_address, lambda c: c.list_applications())
            }
            assert apps[app_id].limit_bps(direction) == LIMIT_BPS
            assert limited.app_pid in apps[app_id].pids

            call_helper(stack.bus_address, lambda c: c.clear_limit(app_id, direction))
            # freed; a download's sender may first wait out a backed-off retransmission timer
            assert eventually(lambda: limited.receiver.rate_bps(0.5) > 20 * LIMIT_BPS, 6.0)
        finally:
            limited.stop()
            bystander.stop()


def _shaper_drops(netns: str) -> int:
    """Packets every qdisc in the helper's namespace dropped (uplink and IFB)."""
    listing = subprocess.run(["tc", "-n", netns, "-s", "-j", "qdisc", "show"], capture_output=True, text=True,
                             check=True).stdout  # fmt: skip
    return sum(int(qdisc.get("drops", 0)) for qdisc in json.loads(listing or "[]"))


def test_a_download_limited_before_it_starts_fits_the_shaper_from_its_first_packet(
    stack: Stack,
) -> None:
    """The application's receive window is clamped to the limit (plus a short
    queue) from the connection's first packets, so the remote sender's slow
    start never overflows the shaper: nothing is dropped, nothing waits for a
    retransmission. Without the clamp the sender overfills the queue at once."""
    with app_scope(stack.cgroup_root, own_names.desktop_id("TestFirstPacket")) as scope:
        drops_before = _shaper_drops(stack.pair.host_ns)
        stream = start_stream(
            stack.pair, 5430, "down", app_cgroup=scope, app_serves=True, peer_after_s=1.0
        )
        app_id = ""
        try:
            app_id = call_helper(stack.bus_address, lambda c: c.set_limit(f"pid:{stream.app_pid}", Direction.DOWN,
                                                                           LIMIT_BPS))  # fmt: skip
            assert eventually(
                lambda: stream.receiver.rate_bps(0.2) > 0, timeout_s=5.0
            )  # the peer connected
            read = stream.receiver.rate_bps(DOWNLOAD_WINDOW_S) / PAYLOAD_SHARE
            assert _shaper_drops(stack.pair.host_ns) == drops_before
            assert _within(read), f"the application moved {read / MiB:.3f} MiB/s at L3"
        finally:
            stream.stop()
            if app_id:
                call_helper(stack.bus_address, lambda c: c.clear_limit(app_id))


def test_last_limit_cleared_leaves_interfaces_as_found(stack: Stack) -> None:
    before = stack.idle_tc_state()
    with app_scope(stack.cgroup_root, own_names.desktop_id("TestCleanup")) as scope:
        stream = start_stream(stack.pair, 5420, "up", app_cgroup=scope)
        try:
            app_id = call_helper(
                stack.bus_address, lambda c: c.set_limit(f"pid:{stream.app_pid}", Direction.UP, MiB)
            )
            call_helper(stack.bus_address, lambda c: c.set_limit(app_id, Direction.DOWN, MiB))
            assert stack.tc_state() != before
            call_helper(stack.bus_address, lambda c: c.clear_limit(app_id))
            # classes drain for a second before they go; the engine ticks once a second
            assert eventually(lambda: stack.tc_state() == before, timeout_s=5.0)
        finally:
            stream.stop()
