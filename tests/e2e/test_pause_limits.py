"""Pausing every limit on the real helper: a limited stream runs at full speed
while paused and is held at its limit again on resume; the limit stays listed
throughout; a caller polkit denies gets NotAuthorized and changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys

from chadthrottle.contract import Direction
from chadthrottle.helper.kernel.layout import HTB_MAJOR

from tests.e2e.conftest import MiB, Stack
from tests.e2e.test_limit_over_dbus import PAYLOAD_SHARE, WINDOW_S, wait_until_at_limit
from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.netns import app_scope, start_stream
from tests.support.requirements import require_program
from tests.support.waiting import eventually

LIMIT_BPS = MiB
UNLIMITED_FLOOR_BPS = 20 * LIMIT_BPS  # an unlimited stream on the veth runs far above this
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
EXIT_NOT_AUTHORIZED = 3


def _held(rate_bps: float, tolerance: float = 0.10) -> bool:
    return (1 - tolerance) * LIMIT_BPS <= rate_bps <= (1 + tolerance) * LIMIT_BPS


def _ctl_as_nobody(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DBUS_SYSTEM_BUS_ADDRESS": stack.bus_address,
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    argv = [*NOBODY, sys.executable, "-m", "chadthrottle.cli.ctl", *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)


def _paused(stack: Stack) -> bool:
    return call_helper(stack.bus_address, lambda c: c.get_limits_paused())


def _listed_limit(stack: Stack, app_id: str) -> int:
    apps = {a.id: a for a in call_helper(stack.bus_address, lambda c: c.list_applications())}
    return apps[app_id].limit_bps(Direction.UP)


def _assert_denied(stack: Stack, command: str) -> None:
    result = _ctl_as_nobody(stack, command)
    assert result.returncode == EXIT_NOT_AUTHORIZED, result.stderr
    assert "not authorized" in result.stderr.lower() and "Traceback" not in result.stderr


def test_pause_lets_a_limited_stream_run_free_and_resume_holds_it_again(stack: Stack) -> None:
    require_program("setpriv")
    with app_scope(stack.cgroup_root, own_names.desktop_id("TestPause")) as scope:
        stream = start_stream(stack.pair, 5700, "up", app_cgroup=scope)
        app_id = ""
        try:
            app_id = call_helper(
                stack.bus_address,
                lambda c: c.set_limit(f"pid:{stream.app_pid}", Direction.UP, LIMIT_BPS),
            )
            wait_until_at_limit(lambda s: stream.receiver.rate_bps(s) / PAYLOAD_SHARE, LIMIT_BPS)
            rate = stream.receiver.rate_bps(WINDOW_S) / PAYLOAD_SHARE
            assert _held(rate), f"limited: {rate / MiB:.3f} MiB/s at L3"

            # Someone polkit refuses cannot pause: still held, kernel untouched.
            limited_tc = stack.tc_state()
            _assert_denied(stack, "pause")
            assert not _paused(stack) and stack.tc_state() == limited_tc
            rate = stream.receiver.rate_bps(1.0) / PAYLOAD_SHARE
            assert _held(rate), f"after a denied pause: {rate / MiB:.3f} MiB/s at L3"

            call_helper(stack.bus_address, lambda c: c.set_limits_paused(True))
            assert _paused(stack)
            assert eventually(
                lambda: stream.receiver.rate_bps(0.5) > UNLIMITED_FLOOR_BPS, timeout_s=5.0
            )
            assert _listed_limit(stack, app_id) == LIMIT_BPS  # kept and listed while paused
            assert eventually(lambda: f"htb {HTB_MAJOR:x}:" not in stack.tc_state(), timeout_s=5.0)

            # ...nor resume: still free, kernel untouched.
            paused_tc = stack.tc_state()
            _assert_denied(stack, "resume")
            assert _paused(stack) and stack.tc_state() == paused_tc
            assert stream.receiver.rate_bps(1.0) > UNLIMITED_FLOOR_BPS

            call_helper(stack.bus_address, lambda c: c.set_limits_paused(False))
            assert not _paused(stack)
            wait_until_at_limit(lambda s: stream.receiver.rate_bps(s) / PAYLOAD_SHARE, LIMIT_BPS)
            rate = stream.receiver.rate_bps(WINDOW_S) / PAYLOAD_SHARE
            assert _held(rate), f"after resuming: {rate / MiB:.3f} MiB/s at L3"
        finally:
            call_helper(stack.bus_address, lambda c: c.set_limits_paused(False))
            if app_id:
                call_helper(stack.bus_address, lambda c: c.clear_limit(app_id))
            stream.stop()
