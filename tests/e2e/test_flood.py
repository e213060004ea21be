"""A local user flooding the real helper with calls for ids no application
has cannot stall root's calls (issue 20): with no permission at all (denied
before anything is looked up), and with limit-own granted by the real
polkitd, so that every call is looked up (no full read of /proc for it:
tests/e2e/test_flood_lookups.py). Each flooding client's calls fail, so the
helper paces it (helper/adapter/refusals.py): past FAILURES_BEFORE_DELAY
failures a second its calls start one per FAILURE_DELAY_S, before anything
is checked or looked up, and the flood is answered far more slowly than it
is sent. The tight target, 20 ms at a larger flood, is measured by
bench/helper_flood.py; here the bound is generous, for CI."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from chadthrottle.client import HelperClient, HelperClientError
from chadthrottle.contract import Action, Direction
from chadthrottle.helper.adapter.service import FAILURE_DELAY_S

from tests.e2e.conftest import MiB, Stack
from tests.support import own_names
from tests.support.flood import Timed, flood, paced_calls, percentile_ms, polkit_grant
from tests.support.helper_calls import call_helper
from tests.support.netns import app_scope, start_stream
from tests.support.requirements import require_program
from tests.support.waiting import eventually

# Judges root's call latency during a flood: another lane's load moves it, so
# it runs after the lanes, alone (docs/development.md).
pytestmark = pytest.mark.machine_alone

APP_ID = own_names.app_id("FloodTest")
# A paced flood: the helper of before issue 20 answered at most ~200 such calls
# a second (each a read of all /proc), so this one stalled it; a flood as fast
# as the helper answers would mostly measure the CPU the flooders take.
CLIENTS, CALLS_PER_S, IN_FLIGHT = 4, 500.0, 64
ROOT_CALLS_PER_S, ROOT_SECONDS = 40.0, 6.0
# Before issue 20 root's p99 here was 2.2 s with no permission (each call was
# looked up before polkit was asked) and 2.1 s with limit-own (each lookup read
# all of /proc); since, 15-18 ms (the development machine, other tests running).
# With every flooding call still started on arrival (each looked up or checked,
# its answer delayed), 198-864 ms at load 6-13; paced, see docs/benchmarks.md.
P99_BOUND_MS = 100.0


def _listed(bus_address: str) -> set[str]:
    return {app.id for app in call_helper(bus_address, lambda c: c.list_applications())}


def _late_calls(timed: list[Timed]) -> str:
    """Which of root's calls were late, when each was due and when answered
    (seconds from the first due time): enough to tell a slow helper from one
    answer held (CI once read a list p99 of 14.5 s, cause not found)."""
    late = [(i / ROOT_CALLS_PER_S, kind, latency) for i, (kind, latency, _) in enumerate(timed)
            if latency * 1000 >= P99_BOUND_MS]  # fmt: skip
    shown = ", ".join(
        f"{kind} due {due:.2f} answered {due + latency:.2f}" for due, kind, latency in late[:12]
    )
    return f"{len(late)} of {len(timed)} late: {shown}{' ...' if len(late) > 12 else ''}"


def _clear(bus_address: str) -> None:
    """Remove the limit the test set, if it got that far."""
    with contextlib.suppress(HelperClientError):
        call_helper(bus_address, lambda c: c.clear_limit(APP_ID))


@pytest.mark.parametrize("granted", [False, True], ids=["no-permission", "limit-own"])
def test_a_flood_of_unknown_ids_leaves_roots_calls_answered_in_time(
    stack: Stack, granted: bool
) -> None:
    require_program("setpriv")
    with contextlib.ExitStack() as cleanup:
        scope = cleanup.enter_context(app_scope(stack.cgroup_root, APP_ID.removeprefix("app:")))
        stream = start_stream(stack.pair, 5950 + granted, "up", app_cgroup=scope, seconds=60)
        cleanup.callback(stream.stop)
        assert eventually(lambda: APP_ID in _listed(stack.bus_address), 10)
        cleanup.callback(_clear, stack.bus_address)
        changes = iter(range(10**6))

        def set_limit(client: HelperClient) -> object:
            return client.set_limit(
                APP_ID, Direction.UP, MiB + 1000 * (next(changes) % 50), interactive=False
            )

        calls = [("list", lambda client: client.list_applications()), ("set", set_limit)]
        flood_s = ROOT_SECONDS + 3.0
        flooders = cleanup.enter_context(
            flood(stack.bus_address, CLIENTS, flood_s, IN_FLIGHT, CALLS_PER_S / CLIENTS,
                  leave_at_deadline=True)
        )  # fmt: skip
        if granted:
            cleanup.enter_context(polkit_grant(flooders.pids, [Action.LIMIT_OWN.value]))
        flooders.go(granted)
        start_at = time.monotonic() + 1.5  # polkitd has read the rule; the flood runs
        timed = asyncio.run(
            paced_calls(stack.bus_address, calls, ROOT_CALLS_PER_S, ROOT_SECONDS, start_at)
        )
        # Each client counts what was answered within the flood, then leaves the
        # bus: its calls still waiting (IN_FLIGHT, answered one per FAILURE_DELAY_S,
        # 6.4 s) would be answered after root's calls, and are dropped.
        answered, outcomes = flooders.results(timeout_s=flood_s + 60)

    assert [error for _, _, error in timed if error] == []
    p99s = {}
    for kind in ("list", "set"):
        latencies = [latency for k, latency, _ in timed if k == kind]
        assert len(latencies) == ROOT_CALLS_PER_S * ROOT_SECONDS / 2
        p99s[kind] = percentile_ms(latencies, 0.99)
    assert max(p99s.values()) < P99_BOUND_MS, (
        f"root's p99 {p99s} ms during a flood of {answered} calls ({outcomes}); "
        f"{_late_calls(timed)}"
    )
    expected = "NoSuchApplication" if granted else "NotAuthorized"  # what it was meant to reach
    assert outcomes == {expected: answered}, outcomes
    # Paced: each client's calls in flight at first, then about one per
    # FAILURE_DELAY_S (a few more as each second's failures age out), not
    # the CALLS_PER_S / CLIENTS it sends.
    paced_bound = CLIENTS * (IN_FLIGHT + 2 * flood_s / FAILURE_DELAY_S)
    assert 0 < answered <= paced_bound < CALLS_PER_S * flood_s, (answered, paced_bound)
