"""An upload limit whose application sends both through the helper's own
uplink (shaped: the upload IFB's class) and from a namespace where tc cannot
shape uploads (someone's ingress qdisc on its uplink: no egress hook, only
the guard holds it) is listed at what the limit let through on both paths,
not at the class's count alone, which misses the policed part (issue 13:
the listed rate, and "not met" judged on it, would understate)."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from chadthrottle.contract import Direction

from tests.e2e.conftest import MiB, Stack
from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.netns import (
    NetnsPair,
    app_scope,
    extra_link,
    start_stream,
    tc_dump,
)
from tests.support.settled_sum import settled_rates
from tests.support.waiting import eventually

LIMIT = 2 * MiB
WIRE = 1448 / 1500  # payload per wire byte of a full TCP segment
OWN_BPS = 200_000  # the shaped path's payload: paced, a tenth of the limit
LISTED_BAND = 0.2  # listed (2 ticks) against the wire over the 4 s window they end


@pytest.fixture
def scope(stack: Stack) -> Iterator[Path]:
    with app_scope(stack.cgroup_root, own_names.desktop_id("PartPoliced", fresh=True)) as created:
        yield created


@pytest.fixture
def peer_scope(stack: Stack) -> Iterator[Path]:
    with app_scope(stack.cgroup_root, own_names.desktop_id("PartPeer", fresh=True)) as created:
        yield created


@pytest.fixture
def policed_namespace(stack: Stack) -> Iterator[NetnsPair]:
    """The application's own namespace, whose uplink has someone's ingress
    qdisc (not clsact): tc has no egress hook there, the guard polices it."""
    with extra_link(f"ctpol-{secrets.token_hex(3)}", stack.pair.peer_ns) as link:
        subprocess.run(["tc", "-n", link.host_ns, "qdisc", "add", "dev", link.host_if, "ingress"],
                       check=True)  # fmt: skip
        yield link


def test_an_upload_partly_policed_elsewhere_is_listed_at_what_both_paths_passed(
    stack: Stack, policed_namespace: NetnsPair, scope: Path, peer_scope: Path
) -> None:
    own = start_stream(stack.pair, 5900, "up", app_cgroup=scope, peer_cgroup=peer_scope,
                       rate_bps=OWN_BPS)  # fmt: skip
    policed = start_stream(policed_namespace, 5901, "up", app_cgroup=scope, peer_cgroup=peer_scope)
    app = ""
    try:
        app = call_helper(stack.bus_address,
                          lambda c: c.set_limit(f"pid:{own.app_pid}", Direction.UP, LIMIT))  # fmt: skip

        def reach() -> str:
            listed = call_helper(stack.bus_address, lambda c: c.list_applications())
            return {a.id: a.up_limit_reach for a in listed}.get(app, "")

        assert eventually(lambda: f"namespace {policed_namespace.host_ns}" in reach(), 5.0), reach()
        assert "policed" in reach(), reach()
        total = sum(settled_rates([own.receiver, policed.receiver], LIMIT, WIRE))
        assert 0.85 * LIMIT <= total <= 1.1 * LIMIT, f"not held: {total / LIMIT:.3f} of the limit"
        # the listed rate (its last 2 ticks) against the same window's wire, just ended
        wire = total
        (listed_app,) = [a for a in call_helper(stack.bus_address, lambda c: c.list_applications())
                         if a.id == app]  # fmt: skip
        listed = listed_app.up_bps
        print(f"listed {listed / 1e6:.3f} MB/s, both paths {wire / 1e6:.3f} MB/s on the wire")
        assert abs(listed - wire) <= LISTED_BAND * wire, (
            f"listed {listed / 1e6:.3f} MB/s up, the wire {wire / 1e6:.3f} MB/s ({listed / wire:.2f})"
        )
        assert listed_app.up_limit_problem == "", listed_app.up_limit_problem
    finally:
        own.stop()
        policed.stop()
        if app:
            call_helper(stack.bus_address, lambda c: c.clear_limit(app))
    assert eventually(lambda: "htb" not in tc_dump(policed_namespace.host_ns), 10.0), (
        "a shaper left in the policed namespace"
    )
