"""Under a link capacity the listed rates of applications with a rule are still
what they move (docs/accounting.md), through the real helper (tc backend).

Under a link every application with a rule has an HTB class in each direction
the link shapes, also for a priority alone or for the other direction's limit.
Such a class passes none of the application's pure ACKs (they go to the ACK
class) nor its traffic in other network namespaces (the link tree is the
helper's own namespace's), and its output replaced the counters' rate: a
limited downloader's upload (its ACKs) and a critical application uploading
from another namespace were listed at 0 B/s up while they sent. The far end
here is the critical one: its server runs in the pair's peer namespace.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from chadthrottle.client import HelperClient, HelperClientError
from chadthrottle.contract import ApplicationInfo, Direction, RuleScope

from tests.e2e.conftest import Stack
from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.netns import app_scope, nsenter_argv, spawn, start_stream
from tests.support.waiting import eventually
from tests.support.wire_truth import make_countable, quiet, wire_counters

pytestmark = pytest.mark.parametrize("stack", ["tc"], indirect=True)

PORT = 5931
OFFERED_BPS, LIMIT_BPS = 3_000_000, 2_000_000  # the download, and its limit
LINK_DOWN_BPS, LINK_UP_BPS = 40_000_000, 5_000_000  # far above the traffic: shaping, no holding
STREAM_S, SAMPLE_S = 14.0, 5.0
TICKS_S = 2.5  # the helper reads counters once a second; rates span two


@contextmanager
def _waiting_app(stack: Stack, name: str, netns: str) -> Iterator[Path]:
    """An app scope with one quiet process, so a rule can name it before it sends."""
    with app_scope(stack.cgroup_root, own_names.desktop_id(name)) as scope:
        sleeper = spawn(nsenter_argv(netns, ["sleep", "60"]), scope)
        try:
            yield scope
        finally:
            sleeper.kill()
            sleeper.wait()
            if sleeper.stdout is not None:
                sleeper.stdout.close()


def _until_accepted(bus: str, call: Callable[[HelperClient], Awaitable[str]]) -> None:
    """A rule on an application the helper sees at its next tick."""

    def attempt() -> bool:
        try:
            call_helper(bus, call)
            return True
        except HelperClientError:
            return False

    assert eventually(attempt, 5.0), "the rule was refused"


def _listed(stack: Stack, name: str) -> ApplicationInfo | None:
    apps = call_helper(stack.bus_address, lambda c: c.list_applications())
    return next((a for a in apps if a.id == own_names.app_id(name)), None)


def _moved(stack: Stack, names: dict[str, str]) -> dict[str, tuple[int, int]]:
    """app id -> (rx, tx) bytes listed now; 0 for one not listed yet."""
    apps = {a.id: a for a in call_helper(stack.bus_address, lambda c: c.list_applications())}
    return {app_id: (apps[app_id].rx_bytes, apps[app_id].tx_bytes) if app_id in apps else (0, 0)
            for app_id in names}  # fmt: skip


def _mean_rates(
    stack: Stack, names: dict[str, str], seconds: float
) -> dict[str, tuple[float, float]]:
    """app id -> its listed (down, up) rates, averaged over ListApplications every 0.5 s."""
    seen: dict[str, list[ApplicationInfo]] = {app_id: [] for app_id in names}
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        apps = {a.id: a for a in call_helper(stack.bus_address, lambda c: c.list_applications())}
        for app_id, listed in seen.items():
            listed.append(apps[app_id])
        time.sleep(0.5)
    return {app_id: (statistics.mean(a.down_bps for a in listed), statistics.mean(a.up_bps for a in listed))
            for app_id, listed in seen.items()}  # fmt: skip


def test_rules_under_a_link_keep_the_listed_rates_of_what_applications_send(stack: Stack) -> None:
    """A limited downloader in the helper's namespace and the critical far end
    in the peer namespace: each one's listed rates, both ways, against the
    veth's own counters over the same seconds, and their bytes against the wire."""
    make_countable(stack.pair)
    bus, ns, dev = stack.bus_address, stack.pair.host_ns, stack.pair.host_if
    fetch, far = own_names.app_id("RatesFetch"), own_names.app_id("RatesFar")
    names = {fetch: "RatesFetch", far: "RatesFar"}
    with ExitStack() as cleanup:
        fetch_scope = cleanup.enter_context(_waiting_app(stack, names[fetch], ns))
        far_scope = cleanup.enter_context(_waiting_app(stack, names[far], stack.pair.peer_ns))
        call_helper(bus, lambda c: c.set_link_capacity(LINK_DOWN_BPS, LINK_UP_BPS, False))
        cleanup.callback(call_helper, bus, lambda c: c.set_link_capacity(0, 0, False))
        _until_accepted(
            bus, lambda c: c.set_limit(fetch, Direction.DOWN, LIMIT_BPS, scope=RuleScope.ALL)
        )
        cleanup.callback(call_helper, bus, lambda c: c.clear_limit(fetch, scope=RuleScope.ALL))
        _until_accepted(bus, lambda c: c.set_priority(far, "critical", scope=RuleScope.ALL))
        cleanup.callback(
            call_helper, bus, lambda c: c.set_priority(far, "normal", scope=RuleScope.ALL)
        )
        quiet(ns, dev)
        wire_before, listed_before = wire_counters(ns, dev), _moved(stack, names)
        stream = start_stream(stack.pair, PORT, "down", app_cgroup=fetch_scope, peer_cgroup=far_scope,
                              seconds=STREAM_S, rate_bps=OFFERED_BPS)  # fmt: skip
        cleanup.callback(stream.stop)
        assert eventually(lambda: stream.receiver.rate_bps(1.0) < 1.1 * LIMIT_BPS, 10.0), (
            "not limited"
        )
        time.sleep(TICKS_S)  # the listed rates span two ticks: none from before the limit
        span_wire, span_s = wire_counters(ns, dev), time.monotonic()
        rates = _mean_rates(stack, names, SAMPLE_S)
        span_wire, span_s = wire_counters(ns, dev) - span_wire, time.monotonic() - span_s
        wire_down, wire_up = span_wire.rx_bytes / span_s, span_wire.tx_bytes / span_s
        # what the far end sends is the veth's rx (the download); the downloader's ACKs its tx
        expected = {fetch: (wire_down, wire_up), far: (wire_up, wire_down)}
        wrong = [f"{names[app_id]} {what}: listed {rate:.0f} B/s, the wire {wire:.0f} B/s"
                 for app_id, listed in rates.items()
                 for what, rate, wire in zip(("down", "up"), listed, expected[app_id], strict=True)
                 if not 0.8 * wire <= rate <= 1.25 * wire]  # fmt: skip
        assert not wrong, wrong
        stream.end()  # what is left of STREAM_S is not judged: a clean end now, as at its --seconds
        wire = wire_counters(ns, dev) - wire_before  # both ends exited: the whole stream
        # the far end's upload and download are the wire's; the downloader's upload (its
        # ACKs) the wire's, its download what its limit let through to its socket
        moved: list[dict[str, tuple[int, int]]] = []

        def adds_up() -> bool:
            now = _moved(stack, names)
            moved[:] = [
                {
                    a: (now[a][0] - listed_before[a][0], now[a][1] - listed_before[a][1])
                    for a in names
                }
            ]
            (down, up), (far_down, far_up) = moved[0][fetch], moved[0][far]
            return all(abs(counted - on_wire) <= 0.01 * on_wire
                       for counted, on_wire in ((far_up, wire.rx_bytes), (far_down, wire.tx_bytes),
                                                (up, wire.tx_bytes))) and (
                0.97 * wire.rx_bytes <= down <= 1.01 * wire.rx_bytes)  # fmt: skip

        assert eventually(adds_up, 10.0, interval_s=0.25), (
            moved,
            wire,
        )  # exits count a tick or two later
