"""A limit holds over a VPN-like uplink: a tun device (no link-layer header,
as WireGuard, OpenVPN or PPP give a desktop) that appears after the helper
started, beside the Ethernet-like veth. One application's connections over
both hold the limit in sum, the tun carries a hook of the helper's (shaped
there, not only policed at the socket), and once the limit is cleared the
namespace is as it was (issue 13)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from chadthrottle.contract import Direction

from tests.e2e.conftest import MiB, Stack
from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.netns import app_scope, start_stream, tc_dump
from tests.support.settled_sum import settled_rates
from tests.support.tun_link import tun_link
from tests.support.waiting import eventually

WIRE = 1448 / 1500  # payload per L3 byte of a full TCP segment (tun: no link header)
LIMIT = 2 * MiB
# What the helper hooks on an uplink, by direction: downloads on a device
# without an Ethernet header by the L3 program, uploads by the egress one.
HOOK = {Direction.DOWN: "chadt_tc_in_l3", Direction.UP: "chadt_tc_out"}


@pytest.fixture
def scopes(stack: Stack) -> Iterator[tuple[Path, Path]]:
    """The application's and its peers' own app scopes (unique per session:
    another session's helper must not reach them)."""
    with (
        app_scope(stack.cgroup_root, own_names.desktop_id("OverTun", fresh=True)) as app,
        app_scope(stack.cgroup_root, own_names.desktop_id("OverTunPeer", fresh=True)) as peer,
    ):
        yield app, peer


def _hooks_on(stack: Stack, ifname: str, direction: Direction) -> str:
    hook = "ingress" if direction is Direction.DOWN else "egress"
    return subprocess.run(["tc", "-n", stack.pair.host_ns, "filter", "show", "dev", ifname, hook],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip


@pytest.mark.parametrize("direction", [Direction.DOWN, Direction.UP])
def test_a_limit_holds_in_sum_over_a_tun_uplink_and_leaves_nothing(
    stack: Stack, scopes: tuple[Path, Path], direction: Direction
) -> None:
    app_cgroup, peer_cgroup = scopes
    before = stack.idle_tc_state()
    with tun_link(stack.pair) as tun:
        untouched = tc_dump(stack.pair.host_ns)  # the tun is there, no limit yet
        streams = [start_stream(tun, 5850, direction.value, app_cgroup=app_cgroup,
                                peer_cgroup=peer_cgroup)]  # fmt: skip
        try:
            assert streams[0].receiver.rate_bps(1.0) / WIRE > 3 * LIMIT  # fast before
            app = call_helper(
                stack.bus_address,
                lambda c: c.set_limit(f"pid:{streams[0].app_pid}", direction, LIMIT),
            )
            try:
                # the same application over the veth too: one limit for both
                streams.append(start_stream(stack.pair, 5851, direction.value, app_cgroup=app_cgroup,
                                            peer_cgroup=peer_cgroup))  # fmt: skip
                over_tun, over_veth = settled_rates([s.receiver for s in streams], LIMIT, WIRE)
                total = over_tun + over_veth
                assert 0.9 * LIMIT <= total <= 1.1 * LIMIT, f"{total / LIMIT:.3f} of the limit"
                assert over_tun > 0.05 * LIMIT, "nothing crossed the tun"  # the sum is over it
                hooks = _hooks_on(stack, tun.host_if, direction)
                assert HOOK[direction] in hooks, f"no {HOOK[direction]} on {tun.host_if}:\n{hooks}"
            finally:
                call_helper(stack.bus_address, lambda c: c.clear_limit(app))
        finally:
            for stream in streams:
                stream.stop()
        assert eventually(lambda: tc_dump(stack.pair.host_ns) == untouched, 10.0), (
            "objects left after clear"
        )
    assert eventually(lambda: tc_dump(stack.pair.host_ns) == before, 10.0), (
        "left after the tun went"
    )
