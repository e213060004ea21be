"""A hook lingering after its last class (tc_shaper.HOOK_LINGER_S) when the
helper is SIGKILLed is left to its successor, which removes it: nothing stays
after a clear and a SIGKILL either."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from chadthrottle.contract import Direction
from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.standalone import PrivateSystemBus

from tests.e2e.test_persistence_and_recovery import LIMIT_BPS, _helper, _idle_tc
from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.helper_process import PRODUCT_HOOK_LINGER
from tests.support.netns import NetnsPair, app_scope, start_stream
from tests.support.waiting import eventually


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


def test_a_hook_lingering_when_the_helper_is_killed_is_removed_by_its_successor(
    private_bus: PrivateSystemBus, pair: NetnsPair, state_dir: Path
) -> None:
    untouched = _idle_tc(pair)
    with app_scope(cgroup2_mount(), own_names.desktop_id("Linger", fresh=True)) as scope:
        stream = start_stream(pair, 5630, "up", app_cgroup=scope, rate_bps=4e6)
        try:
            with _helper(private_bus, pair, state_dir, PRODUCT_HOOK_LINGER) as killed:
                app = call_helper(killed._bus_address,
                                  lambda c: c.set_limit(f"pid:{stream.app_pid}", Direction.UP, LIMIT_BPS))  # fmt: skip
                assert eventually(lambda: "clsact" in _idle_tc(pair), 5.0), "no hook"
                call_helper(killed._bus_address, lambda c: c.clear_limit(app))
                time.sleep(2.0)  # past the class's 1 s retirement, inside the hook's linger
                assert "clsact" in _idle_tc(pair), "the hook went before the kill: nothing to judge"
                assert killed.kill() == -9
            assert "clsact" in _idle_tc(pair), "a SIGKILL removed it (it cannot)"
            with _helper(private_bus, pair, state_dir, PRODUCT_HOOK_LINGER) as successor:
                assert eventually(lambda: _idle_tc(pair) == untouched, 10.0), (
                    f"the killed helper's lingering hook stayed:\n{successor.log_text()[-3000:]}"
                )
        finally:
            stream.stop()
