"""The same limits from a shell, and a caller polkit denies: a named error and
no change in the kernel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from chadthrottle.contract import Direction
from tests.e2e.conftest import Stack
from tests.e2e.test_limit_over_dbus import wait_until_at_limit
from tests.support.helper_calls import call_helper
from tests.support.netns import app_scope, start_stream
from tests.support.requirements import require_program

CTL = [sys.executable, "-m", "chadthrottle.cli.ctl"]
PAYLOAD_SHARE = 1448 / 1500
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def _ctl(stack: Stack, *args: str, as_nobody: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": stack.bus_address}
    argv = (NOBODY if as_nobody else []) + CTL + list(args)
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)


def test_ctl_limit_by_pid_slows_the_upload_and_clear_restores_it(stack: Stack) -> None:
    with app_scope(stack.cgroup_root, "org.chadthrottle.TestCtl") as scope:
        stream = start_stream(stack.pair, 5500, "up", app_cgroup=scope)
        try:
            result = _ctl(stack, "limit", f"pid:{stream.app_pid}", "--up", "1M")
            assert result.returncode == 0, result.stderr
            wait_until_at_limit(lambda s: stream.receiver.rate_bps(s) / PAYLOAD_SHARE, 1e6)
            rate = stream.receiver.rate_bps(2.0) / PAYLOAD_SHARE
            assert 0.9e6 <= rate <= 1.1e6, f"{rate:.0f} B/s at L3"

            listed = json.loads(_ctl(stack, "list", "--json").stdout)
            entry = next(app for app in listed if stream.app_pid in app["pids"])
            assert entry["id"] == "app:org.chadthrottle.TestCtl" and entry["up_limit_bps"] == 1_000_000

            connections = json.loads(_ctl(stack, "connections", entry["id"], "--json").stdout)
            assert {"protocol": "tcp", "remote": f"{stack.pair.peer_addr}:5500", "state": "ESTABLISHED",
                    "pid": stream.app_pid} in [{k: c[k] for k in ("protocol", "remote", "state", "pid")} for c in connections]

            assert _ctl(stack, "clear", entry["id"]).returncode == 0
            time.sleep(0.5)
            assert stream.receiver.rate_bps(1.0) > 20e6
        finally:
            stream.stop()


def test_a_caller_polkit_denies_gets_a_named_error_and_nothing_changes(stack: Stack) -> None:
    require_program("setpriv")
    with app_scope(stack.cgroup_root, "org.chadthrottle.TestDenied") as scope:
        stream = start_stream(stack.pair, 5510, "up", app_cgroup=scope)
        try:
            before = stack.idle_tc_state()
            result = _ctl(stack, "limit", f"pid:{stream.app_pid}", "--up", "1M", as_nobody=True)
            assert result.returncode == 3, result.stderr  # EXIT_NOT_AUTHORIZED
            assert "not authorized" in result.stderr.lower() and "Traceback" not in result.stderr
            assert stack.tc_state() == before
            assert stream.receiver.rate_bps(1.0) > 20e6  # still at full speed
            apps = call_helper(stack.bus_address, lambda c: c.list_applications())
            assert all(app.limit_bps(Direction.UP) == 0 for app in apps if stream.app_pid in app.pids)
        finally:
            stream.stop()
