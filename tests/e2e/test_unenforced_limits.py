"""A limit is never reported as something it is not.

- Someone's u32 filter on the uplink's ingress, at a priority before
  ChadThrottle's, ends classification before the redirect to the IFB: once,
  downloads then passed unlimited (95-162 MB/s against 3 MB/s) while the API
  said the limit was active. Now the policer that guards every limit holds it
  (policed, not shaped), the filter is left alone, and the helper says so.
- A limit that is stored but not enforced (limits paused) is reported as not
  enforced, by ListApplications, `chadthrottle-ctl list` and `limit`'s exit
  status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from chadthrottle.helper.kernel.limit_reach import FIRST_COME

from tests.e2e.conftest import Stack
from tests.support import own_names
from tests.support.download_settled import (
    LANDING_SLACK_BYTES,
    Landing,
    wait_until_download_settled,
)
from tests.support.helper_calls import call_helper
from tests.support.netns import app_scope, start_stream
from tests.support.requirements import require_program

CTL = [sys.executable, "-m", "chadthrottle.cli.ctl"]
EXIT_NOT_ENFORCED = 6
LIMIT = 3_000_000
WIRE = 1448 / 1500


def _ctl(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": stack.bus_address}
    return subprocess.run([*CTL, *args], capture_output=True, text=True, env=env, timeout=60)


def _tc(stack: Stack, *args: str) -> str:
    argv = [
        require_program("ip"),
        "netns",
        "exec",
        stack.pair.host_ns,
        require_program("tc"),
        *args,
    ]
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def _app_id(limited: subprocess.CompletedProcess[str]) -> str:
    return limited.stdout.split(": down limited")[0]


@pytest.fixture
def foreign_ingress_filter(stack: Stack) -> Iterator[str]:
    """Someone else's ingress qdisc and u32 filter at prio 10 on the uplink;
    yields its dump, and checks it is there, unchanged, when the test ends."""
    _tc(stack, "qdisc", "add", "dev", stack.pair.host_if, "ingress")
    try:
        _tc(stack, "filter", "add", "dev", stack.pair.host_if, "parent", "ffff:", "prio", "10", "protocol", "ip",
            "u32", "match", "u32", "0", "0", "classid", "1:1")  # fmt: skip
        before = _tc(stack, "filter", "show", "dev", stack.pair.host_if, "ingress", "prio", "10")
        yield before
        assert (
            _tc(stack, "filter", "show", "dev", stack.pair.host_if, "ingress", "prio", "10")
            == before
        )
        stack.idle_tc_state()  # the helper's own filter on it goes once the cleared limit has drained
    finally:
        subprocess.run(["ip", "netns", "exec", stack.pair.host_ns, "tc", "qdisc", "del", "dev", stack.pair.host_if,
                        "ingress"], capture_output=True)  # fmt: skip


TRUTH_ID = own_names.desktop_id("TestTruth")


@pytest.fixture
def scope(stack: Stack) -> Iterator[object]:
    with app_scope(stack.cgroup_root, TRUTH_ID) as path:
        yield path


def test_a_download_a_foreign_filter_takes_from_tc_is_policed_and_said_so(
    stack: Stack, foreign_ingress_filter: str, scope: object
) -> None:
    stream = start_stream(stack.pair, 5820, "down", app_cgroup=scope)  # type: ignore[arg-type]
    try:
        result = _ctl(stack, "limit", f"pid:{stream.app_pid}", "--down", "3M")
        assert result.returncode == 0, (
            result.stdout,
            result.stderr,
        )  # it is enforced: by the policer
        app_id = _app_id(result)
        time.sleep(2.0)
        assert (
            stream.receiver.rate_bps(4.0) / WIRE < 1.1 * LIMIT
        )  # held, not 30 times over as before
        (app,) = [
            a
            for a in call_helper(stack.bus_address, lambda c: c.list_applications())
            if a.id == app_id
        ]
        assert (app.down_limit_bps, app.down_limit_problem) == (LIMIT, "")
        (tc,) = [
            b for b in call_helper(stack.bus_address, lambda c: c.list_backends()) if b.name == "tc"
        ]
        assert (
            f"policed, not shaped: {stack.pair.host_if}: a u32 filter ChadThrottle did not create (prio 10)"
            in tc.notes
        )
        assert "policed, not shaped" in _ctl(stack, "backends").stdout
        # how it holds, per namespace: the listing, `list` and `limit` (issue 13)
        reach = (f"policed, not shaped in the helper's own namespace: {stack.pair.host_if}: a u32 filter "
                 "ChadThrottle did not create (prio 10)")  # fmt: skip
        assert reach in app.down_limit_reach and app.down_limit_reach.endswith(FIRST_COME)
        assert f"{app_id}: down limit: {reach}" in _ctl(stack, "list").stdout
        assert f"{app_id}: down limit: {reach}" in result.stdout
        assert _ctl(stack, "clear", app_id).returncode == 0
    finally:
        stream.stop()


def test_a_limit_that_is_stored_but_not_enforced_says_so_everywhere(
    stack: Stack, scope: object
) -> None:
    stream = start_stream(stack.pair, 5821, "down", app_cgroup=scope)  # type: ignore[arg-type]
    assert _ctl(stack, "pause").returncode == 0
    try:
        result = _ctl(stack, "limit", f"pid:{stream.app_pid}", "--down", "3M")
        assert result.returncode == EXIT_NOT_ENFORCED, (
            result.returncode,
            result.stdout,
            result.stderr,
        )
        assert (
            "stored, but not enforced now" in result.stderr and "limits are paused" in result.stderr
        )
        app_id = _app_id(result)
        assert stream.receiver.rate_bps(1.0) / WIRE > 10 * LIMIT  # the truth: not limited
        (app,) = [
            a
            for a in call_helper(stack.bus_address, lambda c: c.list_applications())
            if a.id == app_id
        ]
        assert app.down_limit_problem == "limits are paused" and app.up_limit_problem == ""
        entry = next(
            e for e in json.loads(_ctl(stack, "list", "--json").stdout) if e["id"] == app_id
        )
        assert entry["down_limit_problem"] == "limits are paused"
        assert _ctl(stack, "clear", app_id).returncode == 0
    finally:
        _ctl(stack, "resume")
        stream.stop()


def test_without_anything_in_the_way_the_same_limit_is_enforced_and_exits_zero(
    stack: Stack, scope: object
) -> None:
    """The control: the same steps with nothing in the way."""
    stream = start_stream(stack.pair, 5822, "down", app_cgroup=scope)  # type: ignore[arg-type]
    try:
        result = _ctl(stack, "limit", f"pid:{stream.app_pid}", "--down", "3M")
        assert result.returncode == 0, result.stderr
        landing = Landing.now(stream.receiver, stack.pair.host_ns, 5822)
        # The reads lag the shaper while the sender recovers from the drops of
        # its old window: a fixed 2 s caught their catch-up once (1.34 times).
        wait_until_download_settled(
            stream.receiver, stack.pair.host_ns, 5822, WIRE * LIMIT, sender_netns=stack.pair.peer_ns
        )
        assert stream.receiver.rate_bps(2.0) / WIRE < 1.1 * LIMIT
        assert landing.excess_bytes(WIRE * LIMIT) <= LANDING_SLACK_BYTES  # held from the reply on
        assert "NOT ENFORCED" not in _ctl(stack, "list").stdout
        (tc,) = [
            b for b in call_helper(stack.bus_address, lambda c: c.list_backends()) if b.name == "tc"
        ]
        assert tc.notes == ""
        assert _ctl(stack, "clear", _app_id(result)).returncode == 0
    finally:
        stream.stop()
