"""A priority for an application whose sockets live in another network
namespace (issue 16): a container behind a veth into the helper's namespace,
its traffic routed out through the helper's uplink (tests/support/container_ns.py),
a modem in miniature beyond it (bench/bottleneck.py), the real helper.

- A critical call in the container against a normal application's bulk
  upload and download from the helper's own namespace, the capacity set by
  SetLinkCapacity: the link tree is the helper's namespace's, and a forwarded
  packet reaches the uplink without its socket (skb->sk, still the
  container's at the helper side's veth, is gone there), its skb->priority
  reset by forwarding, and what the container's side writes into skb->mark
  or skb->priority cleared by the veth (docs/backends.md), so the call is
  in the default class: the listing must say its priority is not in force
  there, never claim it. (Measured: median 74 ms, p99 216 ms; the same call
  in the helper's namespace, test_priorities.py: 0.2-0.5 ms median.)
- A container's bulk download and upload under the link, each alone: held by
  their own direction's capacity only. Until the link tree was kept to the
  uplinks default routes leave by, the container's veth (an uplink too)
  carried it as well, so its download crossed the upload's tree and was held
  to the upload's capacity (0.36 of the download link; now 0.91), and the
  call above crossed both trees' default classes (median 228 ms, p99 558).
"""

from __future__ import annotations

import json
import sys
import time

from chadthrottle.contract import ApplicationInfo
from chadthrottle.helper.kernel.cgroups import cgroup2_mount

from bench.bottleneck import modem
from bench.priorities import Bench
from tests.e2e.conftest import Stack
from tests.support import own_names
from tests.support.container_ns import routed_container
from tests.support.helper_calls import call_helper, set_priority_when_listed
from tests.support.netns import app_scope, nsenter_argv, spawn, start_stream, wait_for_line
from tests.support.waiting import eventually

DOWN_L2, UP_L2 = 1_250_000, 500_000  # the modem's rates (bytes/s, from the Ethernet header)
BUFFER_MS = 300
TO_L3 = 1500 / 1514
CALL_PORT, CALL_S, WARMUP_S = 5046, 6.0, 1.5


def _listed(bus: str, app_id: str) -> ApplicationInfo:
    return next(
        app for app in call_helper(bus, lambda c: c.list_applications()) if app.id == app_id
    )


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def test_a_critical_call_in_a_container_is_said_not_ordered(stack: Stack) -> None:
    bus, untouched = stack.bus_address, stack.idle_tc_state()
    desktop_id = own_names.desktop_id("ContainerCall", fresh=True)
    call_app = f"app:{desktop_id}"
    with (
        modem(stack.pair, DOWN_L2, UP_L2, BUFFER_MS) as internet,
        routed_container(stack.pair, internet, "ns16") as container,
        app_scope(cgroup2_mount(), desktop_id) as call_scope,
        app_scope(cgroup2_mount(), own_names.desktop_id("ContainerEcho", fresh=True)) as echo_scope,
    ):
        spawn(nsenter_argv(container.netns, ["sleep", "120"]), call_scope)
        set_priority_when_listed(bus, call_app, "critical")
        call_helper(
            bus, lambda c: c.set_link_capacity(round(DOWN_L2 * TO_L3), round(UP_L2 * TO_L3), False)
        )
        bench = Bench(
            None, stack.pair, internet, DOWN_L2, UP_L2, cap_share=1.0, congestion="cubic", flows=1
        )
        echo = spawn(nsenter_argv(internet.netns, [sys.executable, "-m", "bench.call_probe", "echo",
                                                   "--port", str(CALL_PORT)]), echo_scope)  # fmt: skip
        try:
            wait_for_line(echo, "listening")
            with bench.bulk() as (up, down):
                time.sleep(WARMUP_S)
                began = time.monotonic()
                caller = spawn(nsenter_argv(container.netns, [
                    sys.executable, "-m", "bench.call_probe", "call", "--host", internet.addr,
                    "--port", str(CALL_PORT), "--seconds", str(CALL_S)]), call_scope)  # fmt: skip
                problems: list[str] = []

                def said() -> bool:
                    problems.append(_listed(bus, call_app).priority_problem)
                    return bool(problems[-1])

                told = eventually(said, CALL_S - 1)
                out, _ = caller.communicate(timeout=CALL_S + 30)
                window_end = min(time.monotonic(), began + CALL_S)
                up_bps, down_bps = (
                    bench._rate(up, began, window_end),
                    bench._rate(down, began, window_end),
                )
        finally:
            echo.kill()
            echo.wait(10)
        report = json.loads(out.strip().splitlines()[-1])
        rtts = [float(r) for r in report["rtts_ms"]]
        loss = 1 - len(rtts) / report["sent"]
        print(f"call in a container: median {_percentile(rtts, 0.5):.2f} ms, p90 {_percentile(rtts, 0.9):.2f}, "
              f"p99 {_percentile(rtts, 0.99):.2f}, loss {loss:.2%}; up median "
              f"{_percentile(report['up_ms'], 0.5):.2f} ms, down {_percentile(report['down_ms'], 0.5):.2f}; "
              f"bulk up {up_bps / UP_L2:.2f}, down {down_bps / DOWN_L2:.2f} of the link; said {problems[-1:]}")  # fmt: skip
        assert (
            told
            and problems[-1] == f"its traffic in namespace {container.netns_link} is not ordered"
        ), problems
        shaping = call_helper(bus, lambda c: c.get_link_shaping())
        assert shaping.interfaces == (stack.pair.host_if,), shaping  # not the container's veth
        set_priority_when_listed(bus, call_app, "normal")
        call_helper(bus, lambda c: c.set_link_capacity(0, 0, False))
    assert call_helper(bus, lambda c: c.list_rules()) == []
    assert stack.idle_tc_state() == untouched


def test_a_containers_transfers_are_shaped_once_by_the_link(stack: Stack) -> None:
    """A container's download, forwarded out of the helper's namespace to it,
    must be held by the download's capacity, not also by the upload's (and
    its upload likewise): each passes the link once."""
    bus = stack.bus_address
    with (
        modem(stack.pair, DOWN_L2, UP_L2, BUFFER_MS) as internet,
        routed_container(stack.pair, internet, "ns16") as container,
        app_scope(cgroup2_mount(), own_names.desktop_id("ContainerBulk", fresh=True)) as scope,
    ):
        call_helper(
            bus, lambda c: c.set_link_capacity(round(DOWN_L2 * TO_L3), round(UP_L2 * TO_L3), False)
        )
        path = container.path_to(internet)
        rates: dict[str, float] = {}
        try:
            for direction in ("down", "up"):
                stream = start_stream(
                    path, 5047, direction, app_cgroup=scope, seconds=30, congestion="cubic"
                )
                try:
                    time.sleep(WARMUP_S)
                    rates[direction] = stream.receiver.rate_bps(3.0)
                finally:
                    stream.stop()
        finally:
            call_helper(bus, lambda c: c.set_link_capacity(0, 0, False))
        print(f"a container's transfers under the link: down {rates['down'] / DOWN_L2:.2f}, "
              f"up {rates['up'] / UP_L2:.2f} of the link")  # fmt: skip
        assert rates["down"] >= 0.75 * DOWN_L2 and rates["up"] >= 0.75 * UP_L2, rates
