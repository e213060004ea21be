"""chadthrottle-ctl clear against the real helper: it removes the rate limits
and nothing else, and says so. It printed "limits removed" beside a block, a
quota and a schedule it had left in force (walk26)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.e2e.conftest import Stack
from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.idle_app import idle_app

CTL = [sys.executable, "-m", "chadthrottle.cli.ctl"]


def _ctl(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": stack.bus_address}
    return subprocess.run(CTL + list(args), capture_output=True, text=True, env=env, timeout=60)


def test_clear_removes_the_rate_limits_and_says_what_stays_and_how_to_lift_it(
    stack: Stack,
) -> None:
    with idle_app(
        stack.cgroup_root,
        stack.pair.host_ns,
        own_names.desktop_id("TestCtlClear"),
        stack.bus_address,
    ) as app_id:
        try:
            for args in (["limit", app_id, "--down", "1M", "--up", "2M"], ["block", app_id, "--up"],
                         ["quota", app_id, "5MB", "--per", "day", "--down"],
                         ["schedule", app_id, "--limit", "500K", "--days", "sat", "--from", "01:00",
                          "--to", "02:00"]):  # fmt: skip
                done = _ctl(stack, *args)
                assert done.returncode == 0, (args, done.stderr)
            one_way = _ctl(stack, "limit", app_id, "--up", "unlimited")  # that direction's
            assert one_way.returncode == 0, one_way.stderr
            assert one_way.stdout.splitlines() == [
                f"{app_id}: up limit removed",
                f"{app_id}: still set: upload blocked (admin); schedule sat 01:00-02:00 (admin)",
                f"to lift yours: chadthrottle-ctl unblock {app_id} --up; "
                f"chadthrottle-ctl schedule remove {app_id}",
            ], one_way.stdout
            cleared = _ctl(stack, "clear", app_id)
            assert cleared.returncode == 0, cleared.stderr
            assert cleared.stdout.splitlines() == [
                f"{app_id}: rate limits removed",
                f"{app_id}: still set: download quota of 5.00 MB a day (admin); "
                "upload blocked (admin); schedule sat 01:00-02:00 (admin)",
                f"to lift yours: chadthrottle-ctl unblock {app_id} --up; chadthrottle-ctl quota "
                f"{app_id} --off --down; chadthrottle-ctl schedule remove {app_id}",
            ], cleared.stdout
            entry = next(
                a for a in json.loads(_ctl(stack, "list", "--json").stdout) if a["id"] == app_id
            )
            assert (entry["down_limit_bps"], entry["up_blocked"], entry["down_quota_bytes"]) == (
                0,
                True,
                5_000_000,
            )
            for args in (["unblock", app_id], ["quota", app_id, "--off"],
                         ["schedule", "remove", app_id]):  # fmt: skip
                assert _ctl(stack, *args).returncode == 0, args
            assert _ctl(stack, "clear", app_id).stdout == f"{app_id}: rate limits removed\n"
        finally:
            call_helper(stack.bus_address, lambda c: c.set_blocked(app_id, None, False))
            call_helper(stack.bus_address, lambda c: c.clear_quota(app_id, None))
            call_helper(stack.bus_address, lambda c: c.clear_limit(app_id))
            if _ctl(stack, "schedule", "list").stdout.count(app_id):
                call_helper(stack.bus_address, lambda c: c.clear_schedules(app_id))
