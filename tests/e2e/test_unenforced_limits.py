"""A limit the helper cannot enforce is never reported as in force.

Written as the attack that once went unseen: someone's u32 filter on the
uplink's ingress, at a priority before ChadThrottle's, ends classification
before our redirect to the IFB, so downloads pass unlimited (95-162 MB/s
against a 3 MB/s limit) while the API said the limit was active. Now the
helper leaves the filter alone and says, in ListApplications, in
`chadthrottle-ctl list` and in `limit`'s exit status, that the limit is not
enforced and why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import MiB, Stack
from tests.support.helper_calls import call_helper
from tests.support.netns import start_stream
from tests.support.requirements import require_program

CTL = [sys.executable, "-m", "chadthrottle.cli.ctl"]
EXIT_NOT_ENFORCED = 6


def _ctl(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": stack.bus_address}
    return subprocess.run([*CTL, *args], capture_output=True, text=True, env=env, timeout=60)


def _tc(stack: Stack, *args: str) -> str:
    argv = [require_program("ip"), "netns", "exec", stack.pair.host_ns, require_program("tc"), *args]
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


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
        assert _tc(stack, "filter", "show", "dev", stack.pair.host_if, "ingress", "prio", "10") == before
        stack.idle_tc_state()  # the helper's own filter on it goes once the cleared limit has drained
    finally:
        subprocess.run(["ip", "netns", "exec", stack.pair.host_ns, "tc", "qdisc", "del", "dev", stack.pair.host_if,
                        "ingress"], capture_output=True)  # fmt: skip


def test_a_download_limit_a_foreign_filter_defeats_is_reported_not_enforced(
    stack: Stack, foreign_ingress_filter: str
) -> None:
    stream = start_stream(stack.pair, 5820, "down")
    try:
        result = _ctl(stack, "limit", f"pid:{stream.app_pid}", "--down", "3M")
        assert result.returncode == EXIT_NOT_ENFORCED, (result.returncode, result.stdout, result.stderr)
        assert "stored, but not enforced now" in result.stderr
        assert f"{stack.pair.host_if}: a u32 filter ChadThrottle did not create (prio 10)" in result.stderr
        app_id = result.stdout.split(":", 2)[0] + ":" + result.stdout.split(":", 2)[1]

        # The truth: it is not limited, and nobody says it is.
        assert stream.receiver.rate_bps(2.0) > 10 * 3e6
        (app,) = [a for a in call_helper(stack.bus_address, lambda c: c.list_applications()) if a.id == app_id]
        assert app.down_limit_bps == 3_000_000
        assert "a u32 filter ChadThrottle did not create (prio 10) runs before its own on ingress" in app.down_limit_problem
        assert app.up_limit_problem == ""  # no upload limit: nothing to report
        listed = _ctl(stack, "list")
        assert "NOT ENFORCED" in listed.stdout and "down limit not enforced" in listed.stdout
        entry = next(e for e in json.loads(_ctl(stack, "list", "--json").stdout) if e["id"] == app_id)
        assert entry["down_limit_problem"] == app.down_limit_problem

        assert _ctl(stack, "clear", app_id).returncode == 0
    finally:
        stream.stop()


def test_without_a_foreign_filter_the_same_limit_is_enforced_and_exits_zero(stack: Stack) -> None:
    """The control: the same steps with nothing in the way."""
    stream = start_stream(stack.pair, 5821, "down")
    try:
        result = _ctl(stack, "limit", f"pid:{stream.app_pid}", "--down", "3M")
        assert result.returncode == 0, result.stderr
        time.sleep(2.0)
        assert stream.receiver.rate_bps(2.0) < 1.2 * 3e6
        assert "NOT ENFORCED" not in _ctl(stack, "list").stdout
        app_id = result.stdout.split(": down limited")[0]
        assert _ctl(stack, "clear", app_id).returncode == 0
    finally:
        stream.stop()
