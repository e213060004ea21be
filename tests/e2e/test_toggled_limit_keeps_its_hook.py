"""A limit toggled on and off every few seconds does not graft the uplink's
clsact again at each toggle: every graft drops what the uplink sends for a
moment, every application's (docs/backends.md, "Adding a clsact drops the
uplink's packets for a moment"). The hook stays tc_shaper.HOOK_LINGER_S once
its last class is gone; after the last clear nothing is left."""

from __future__ import annotations

import time

from chadthrottle.contract import Direction

from bench.toggle_graft import ClsactWatch
from tests.e2e.conftest import Stack
from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.helper_process import PRODUCT_HOOK_LINGER
from tests.support.netns import app_scope, start_stream, tc_dump
from tests.support.waiting import eventually

HELPER_HOOK_LINGER_S = PRODUCT_HOOK_LINGER  # the helper's own (2 s): what this module tests
LIMIT_BPS = 1024 * 1024
# before: the hook went 1-2 s after each clear, so OFF_S is 2 s; three toggles,
# so a linger whose start a limit between does not reset grafts at the third
TOGGLES, ON_S, OFF_S = 3, 0.5, 2.0


def test_a_toggled_limit_grafts_the_clsact_once_and_leaves_nothing(stack: Stack) -> None:
    untouched = stack.idle_tc_state()
    assert "clsact" not in untouched, "the uplink has a clsact already: no graft to count"
    with app_scope(stack.cgroup_root, own_names.desktop_id("Toggled", fresh=True)) as scope:
        stream = start_stream(stack.pair, 5910, "up", app_cgroup=scope, rate_bps=4e6)
        try:
            with ClsactWatch(stack.pair) as watch:
                for _ in range(TOGGLES):
                    app = call_helper(stack.bus_address,
                                      lambda c: c.set_limit(f"pid:{stream.app_pid}", Direction.UP, LIMIT_BPS))  # fmt: skip
                    eventually(lambda: "clsact" in tc_dump(stack.pair.host_ns), 2.0, 0.02)
                    time.sleep(ON_S)  # the user's toggling: its period is what is tested
                    call_helper(stack.bus_address, lambda c, app=app: c.clear_limit(app))
                    time.sleep(OFF_S)
            assert watch.grafts == 1, (
                f"the clsact was grafted {watch.grafts} times in {TOGGLES} toggles"
            )
        finally:
            stream.stop()
    assert eventually(lambda: tc_dump(stack.pair.host_ns) == untouched, 10.0), (
        "objects left after the last clear"
    )
