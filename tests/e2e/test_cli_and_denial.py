"""The same limits from a shell, and a caller polkit denies: a named error and
no change in the kernel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from chadthrottle.client import HelperClient
from chadthrottle.contract import ADMIN_OWNER, ApplicationInfo, Direction, LinkShapingInfo

from tests.e2e.conftest import Stack
from tests.e2e.test_limit_over_dbus import wait_until_at_limit
from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.idle_app import idle_app
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
    with app_scope(stack.cgroup_root, own_names.desktop_id("TestCtl")) as scope:
        stream = start_stream(stack.pair, 5500, "up", app_cgroup=scope)
        try:
            result = _ctl(stack, "limit", f"pid:{stream.app_pid}", "--up", "1M")
            assert result.returncode == 0, result.stderr
            wait_until_at_limit(lambda s: stream.receiver.rate_bps(s) / PAYLOAD_SHARE, 1e6)
            rate = stream.receiver.rate_bps(2.0) / PAYLOAD_SHARE
            assert 0.9e6 <= rate <= 1.1e6, f"{rate:.0f} B/s at L3"

            listed = json.loads(_ctl(stack, "list", "--json").stdout)
            entry = next(app for app in listed if stream.app_pid in app["pids"])
            assert entry["id"] == own_names.app_id("TestCtl") and entry["up_limit_bps"] == 1_000_000

            connections = json.loads(_ctl(stack, "connections", entry["id"], "--json").stdout)
            assert {
                "protocol": "tcp",
                "remote": f"{stack.pair.peer_addr}:5500",
                "state": "ESTABLISHED",
                "pid": stream.app_pid,
            } in [{k: c[k] for k in ("protocol", "remote", "state", "pid")} for c in connections]

            assert _ctl(stack, "clear", entry["id"]).returncode == 0
            time.sleep(0.5)
            assert stream.receiver.rate_bps(1.0) > 20e6
        finally:
            stream.stop()


def test_a_caller_polkit_denies_gets_a_named_error_and_nothing_changes(stack: Stack) -> None:
    require_program("setpriv")
    with app_scope(stack.cgroup_root, own_names.desktop_id("TestDenied")) as scope:
        stream = start_stream(stack.pair, 5510, "up", app_cgroup=scope)
        try:
            before = stack.idle_tc_state()
            result = _ctl(stack, "limit", f"pid:{stream.app_pid}", "--up", "1M", as_nobody=True)
            assert result.returncode == 3, result.stderr  # EXIT_NOT_AUTHORIZED
            assert "not authorized" in result.stderr.lower() and "Traceback" not in result.stderr
            assert stack.tc_state() == before
            assert stream.receiver.rate_bps(1.0) > 20e6  # still at full speed
            apps = call_helper(stack.bus_address, lambda c: c.list_applications())
            assert all(
                app.limit_bps(Direction.UP) == 0 for app in apps if stream.app_pid in app.pids
            )
        finally:
            stream.stop()


def test_ctl_priority_and_capacity_through_the_helper(stack: Stack) -> None:
    """priority and capacity against the real helper: a priority without a
    capacity is stored and reported not in force (status 6), a bad word is
    refused by name (status 2), a capacity set shows and puts it in force, a
    direction not given is kept, --off undoes it, and a caller polkit denies
    changes nothing (status 3). Checks between calls go in-process (a ctl
    run costs ~0.25 s here under load)."""

    def helper_view(app_id: str) -> tuple[ApplicationInfo, LinkShapingInfo]:
        async def both(client: HelperClient) -> tuple[ApplicationInfo, LinkShapingInfo]:
            apps = await client.list_applications()
            return next(a for a in apps if a.id == app_id), await client.get_link_shaping()

        return call_helper(stack.bus_address, both)

    with idle_app(
        stack.cgroup_root, stack.pair.host_ns, own_names.desktop_id("TestCtlPriority")
    ) as app_id:
        try:
            waiting = _ctl(stack, "priority", app_id, "critical")
            assert waiting.returncode == 6, waiting.stderr  # EXIT_NOT_ENFORCED: no capacity yet
            assert waiting.stdout == f"{app_id}: priority critical\n"
            assert f"not enforced now: {app_id}: priority critical: " in waiting.stderr
            entry = next(
                a for a in json.loads(_ctl(stack, "list", "--json").stdout) if a["id"] == app_id
            )
            assert (entry["priority"], entry["priority_owner"]) == (
                "critical",
                ADMIN_OWNER,
            ) and entry["priority_problem"]

            bad = _ctl(stack, "priority", app_id, "urgent")
            assert (
                bad.returncode == 2
                and "not a priority: 'urgent' (one of critical, high, normal, low)" in bad.stderr
            )

            before = stack.tc_state()
            denied = _ctl(stack, "capacity", "--down", "50Mbit", as_nobody=True)
            assert denied.returncode == 3 and "not authorized" in denied.stderr.lower(), (
                denied.stderr
            )
            assert stack.tc_state() == before

            shaped = _ctl(stack, "capacity", "--down", "50Mbit", "--up", "10Mbit")
            assert shaped.returncode == 0, shaped.stderr
            assert "down capacity 6.25 MB/s (50.0 Mbit/s), set; in force" in shaped.stdout, (
                shaped.stdout
            )
            assert helper_view(app_id)[0].priority_problem == ""
            assert _ctl(stack, "capacity", "--up", "20Mbit").returncode == 0
            shown = json.loads(_ctl(stack, "capacity", "--json").stdout)
            assert (shown["down_set_bps"], shown["up_set_bps"], shown["estimate"]) == (
                6_250_000,
                2_500_000,
                False,
            )
            assert shown["interfaces"] and shown["problem"] == ""

            off = _ctl(stack, "capacity", "--off")
            assert off.returncode == 0 and off.stdout.startswith("link capacity cleared, not set")
            app, shaping = helper_view(app_id)
            assert (shaping.down_set_bps, shaping.up_set_bps, shaping.down_shaping) == (0, 0, False)
            assert app.priority_problem
            assert _ctl(stack, "priority", app_id, "normal").returncode == 0
            assert helper_view(app_id)[0].priority == "normal"
        finally:
            call_helper(stack.bus_address, lambda c: c.set_link_capacity(0, 0, False))
            call_helper(stack.bus_address, lambda c: c.set_priority(app_id, "normal"))


# Each call runs in a fresh interpreter that reports, after main(), what it loaded
# of these and which of the contract's records had their dataclass methods made.
_IMPORT_PROBE = """
import sys
from chadthrottle.cli import ctl
try:
    ctl.main(sys.argv[1:])
except SystemExit as leaving:
    print("status", leaving.code, file=sys.stderr)
from chadthrottle import contract
print("loaded:" + ",".join(sorted({"json", "typing", "ast"} & set(sys.modules))), file=sys.stderr)
print("finished:" + ",".join(name for name in ("ApplicationInfo", "BackendInfo", "ConnectionInfo", "InterfaceInfo",
      "LinkShapingInfo", "ProcessTraffic", "RuleInfo", "ScheduleInfo") if getattr(contract, name).__dataclass_params__.frozen),
      file=sys.stderr)
"""


def test_ctl_calls_against_the_helper_load_no_json_and_make_no_record_methods(stack: Stack) -> None:
    """Issue 19: what chadthrottle-ctl list --json, limit and priority cost (benchmarks.md,
    'CLI start-up under 20 ms'): json's import (cli/json_text.py writes it) and the
    records' generated methods (common/frozen_record.py) are left out of a real call."""
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": stack.bus_address}
    with idle_app(
        stack.cgroup_root,
        stack.pair.host_ns,
        own_names.desktop_id("TestCtlLean"),
        stack.bus_address,
    ) as app_id:
        try:
            for args in (["list", "--json"], ["list"], ["limit", app_id, "--up", "1M"],
                         ["priority", app_id, "low"], ["--help"]):  # fmt: skip
                result = subprocess.run([sys.executable, "-c", _IMPORT_PROBE, *args], capture_output=True,
                                        text=True, env=env, timeout=60)  # fmt: skip
                said = result.stderr.splitlines()
                assert said[-2:] == ["loaded:", "finished:"], f"{args}: {result.stderr}"
                if args == ["list", "--json"]:
                    assert app_id in {app["id"] for app in json.loads(result.stdout)}
                if args[0] == "limit":
                    assert result.stdout == f"{app_id}: up limited to 1.00 MB/s\n", result.stderr
        finally:
            call_helper(stack.bus_address, lambda c: c.clear_limit(app_id))
            call_helper(stack.bus_address, lambda c: c.set_priority(app_id, "normal"))
