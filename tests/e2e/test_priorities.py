"""Priorities end to end (issue 16), through the real helper on the private bus.

- A critical call (small UDP packets at 50/s each way, bench/call_probe.py)
  keeps its pace and a low round trip while a normal application's bulk upload
  and download fill a modem in miniature (bench/bottleneck.py: tbf with a
  300 ms buffer each way, on the far side of the veth), with the capacity set
  by SetLinkCapacity; the bulk application still gets most of the link.
  Without ChadThrottle the call waits behind the modem's buffer (bench/priorities.py
  measured 420-530 ms median). Then priority normal and the capacity off leave
  the interface exactly as it was.
The restart (SIGKILL, the link tree adopted): test_priorities_restart.py.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from chadthrottle.contract import ApplicationInfo
from chadthrottle.helper.engine.link_plan import PRIORITY_NO_CAPACITY
from chadthrottle.helper.kernel.cgroups import cgroup2_mount

from bench.bottleneck import modem
from bench.priorities import Bench
from tests.e2e.conftest import Stack
from tests.support import own_names
from tests.support.helper_calls import call_helper, priorities_undone, set_priority_when_listed
from tests.support.netns import app_scope, nsenter_argv, spawn, tc_dump, wait_for_line
from tests.support.waiting import eventually

# Judges a call's round trip, which another lane's load moves (CI read a median
# of 22 ms beside one, bound 20): it runs after the lanes, alone.
pytestmark = pytest.mark.machine_alone

DOWN_L2, UP_L2 = (
    1_250_000,
    500_000,
)  # the modem's rates (bytes/s, as tbf counts: from the Ethernet header)
BUFFER_MS = 300
TO_L3 = 1500 / 1514  # a full frame's IP packet: the helper's rates are L3
CALL_PORT, CALL_S, WARMUP_S = 5044, 4.0, 1.5


def _configuration(netns: str) -> str:
    """Devices, qdiscs, classes and filters without counters, program ids and action indexes."""
    dump = re.sub(r"direct_packets_stat \d+", "direct_packets_stat N", tc_dump(netns))
    dump = re.sub(r"\bid \d+ name chadt_", "id N name chadt_", dump)
    return re.sub(r"\tindex \d+ ref", "\tindex N ref", dump)


@contextmanager
def _waiting_app(desktop_id: str, netns: str) -> Iterator[Path]:
    """An application (an app scope with one quiet process) the helper can name before it sends."""
    with app_scope(cgroup2_mount(), desktop_id) as scope:
        spawn(nsenter_argv(netns, ["sleep", "120"]), scope)
        yield scope


def _listed(bus: str, app_id: str) -> ApplicationInfo:
    return next(
        app for app in call_helper(bus, lambda c: c.list_applications()) if app.id == app_id
    )


def _call(
    internet_ns: str, internet_addr: str, netns: str, scope: Path, echo_scope: Path
) -> dict[str, list[float]]:
    echo = spawn(nsenter_argv(internet_ns, [sys.executable, "-m", "bench.call_probe", "echo", "--port", str(CALL_PORT)]),
                 echo_scope)  # fmt: skip
    try:
        wait_for_line(echo, "listening")
        caller = spawn(nsenter_argv(netns, [sys.executable, "-m", "bench.call_probe", "call", "--host", internet_addr,
                                            "--port", str(CALL_PORT), "--seconds", str(CALL_S)]), scope)  # fmt: skip
        out, _ = caller.communicate(timeout=CALL_S + 30)
        return json.loads(out.strip().splitlines()[-1])
    finally:
        echo.kill()
        echo.wait(10)


def test_a_critical_call_keeps_its_pace_and_latency_against_a_saturating_normal_application(
    stack: Stack,
) -> None:
    bus, untouched = stack.bus_address, stack.idle_tc_state()
    desktop_id = own_names.desktop_id("TestCall", fresh=True)
    call_app = f"app:{desktop_id}"
    with modem(stack.pair, DOWN_L2, UP_L2, BUFFER_MS) as internet, \
            _waiting_app(desktop_id, stack.pair.host_ns) as call_scope, \
            app_scope(cgroup2_mount(), own_names.desktop_id("TestEcho", fresh=True)) as echo_scope, \
            priorities_undone(bus, call_app):  # also when an assertion fails  # fmt: skip
        set_priority_when_listed(
            bus, call_app, "critical"
        )  # without a capacity: said, and nothing on any interface
        assert eventually(
            lambda: _listed(bus, call_app).priority_problem == PRIORITY_NO_CAPACITY, 3.0
        )
        assert stack.tc_state() == untouched
        call_helper(
            bus, lambda c: c.set_link_capacity(round(DOWN_L2 * TO_L3), round(UP_L2 * TO_L3), False)
        )
        bench = Bench(
            None, stack.pair, internet, DOWN_L2, UP_L2, cap_share=1.0, congestion="cubic", flows=1
        )
        with bench.bulk() as (up, down):
            time.sleep(WARMUP_S)
            began = time.monotonic()
            report = _call(
                internet.netns, internet.addr, stack.pair.host_ns, call_scope, echo_scope
            )
            window_end = min(time.monotonic(), began + CALL_S)
            up_bps, down_bps = (
                bench._rate(up, began, window_end),
                bench._rate(down, began, window_end),
            )
        # By the kernel's receive times: the probes' lateness to read is not the
        # link's (bench/call_probe.py); by their reading times too, to compare.
        rtts, read = sorted(report["wire_rtts_ms"]), sorted(report["rtts_ms"])
        assert len(rtts) == len(read), "an echo without the kernel's times"
        median, p90 = rtts[len(rtts) // 2], rtts[int(len(rtts) * 0.9)]
        loss = 1 - len(rtts) / report["sent"]
        print(f"call: median {median:.2f} ms, p90 {p90:.2f} ms (as read: {read[len(read) // 2]:.2f}, "
              f"{read[int(len(read) * 0.9)]:.2f}), loss {loss:.2%}; bulk up {up_bps / UP_L2:.2f}, "
              f"down {down_bps / DOWN_L2:.2f} of the link")  # fmt: skip
        assert loss <= 0.02 and median <= 20.0 and p90 <= 100.0, (median, p90, loss)
        assert up_bps >= 0.75 * UP_L2 and down_bps >= 0.75 * DOWN_L2, (
            up_bps,
            down_bps,
        )  # nothing wasted: 0.89-0.94
        assert (_listed(bus, call_app).priority, _listed(bus, call_app).priority_problem) == (
            "critical",
            "",
        )
        shaping = call_helper(bus, lambda c: c.get_link_shaping())
        assert (shaping.down_shaping, shaping.up_shaping, shaping.interfaces, shaping.problem) == (
            True,
            True,
            (stack.pair.host_if,),
            "",
        )
        set_priority_when_listed(bus, call_app, "normal")
        call_helper(bus, lambda c: c.set_link_capacity(0, 0, False))
    assert call_helper(bus, lambda c: c.list_rules()) == []
    assert stack.idle_tc_state() == untouched
