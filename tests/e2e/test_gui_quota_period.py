"""A quota's period as the helper counts it reaches the window and
chadthrottle-ctl over the bus (ListRules, API 8), whatever their own zone.

Until gui31 the window guessed the helper's zone from GetUsage's day rows as a
fixed offset: across the helper's clock change an hour off, and UTC+13 (New
Zealand's summer) read as UTC-11, a week's period a day off. The real helper
on the private bus, with TZ set for it alone and its wall clock moved
(--wall-clock-file); this process (the window's side) runs in UTC."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from chadthrottle.contract import Direction, RuleInfo
from chadthrottle.gui.alerts.policy import _told
from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.standalone import PrivateSystemBus

from tests.gui.sample_data import app
from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.helper_process import HelperProcess
from tests.support.netns import NetnsPair, app_scope, end_started, spawn

APP = own_names.app_id("TestQuotaPeriod")
CTL = [sys.executable, "-m", "chadthrottle.cli.ctl"]


@pytest.fixture
def window_in_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@contextmanager
def helper_at(bus: PrivateSystemBus, pair: NetnsPair, tmp_path: Path, zone: str,
              wall: datetime) -> Iterator[int]:  # fmt: skip
    """The real helper in zone (its TZ alone), its wall clock at wall, and
    APP running (a quota is set on a running application); yields its pid."""
    clock = tmp_path / f"clock-{zone.replace('/', '-')}"
    clock.write_text(f"{wall.timestamp()}\n")
    helper = HelperProcess(
        bus.address, netns=pair.host_ns, state_dir=tmp_path / f"state-{clock.name}"
    )
    helper.command += ["--wall-clock-file", str(clock)]
    after_nsenter = helper.command.index("--") + 1
    helper.command[after_nsenter:after_nsenter] = ["env", f"TZ={zone}"]
    with helper, app_scope(cgroup2_mount(), own_names.desktop_id("TestQuotaPeriod")) as scope:
        process = spawn(["sleep", "120"], scope)
        try:
            yield process.pid
        finally:
            end_started([process])


def _ctl(bus: PrivateSystemBus, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": bus.address, "TZ": "UTC"}
    return subprocess.run(CTL + list(args), capture_output=True, text=True, env=env, timeout=60)


def _quota_rule(bus: PrivateSystemBus) -> RuleInfo:
    rules = call_helper(bus.address, lambda client: client.list_rules())
    (rule,) = [r for r in rules if r.app_id == APP and r.direction == "down"]
    return rule


def _window_began(rule: RuleInfo) -> int:
    """When the window counts the used-up quota's period began (its alert's
    record, gui/alerts/policy.py), in this process's zone (UTC)."""
    listed = dataclasses.replace(app(APP, "gui31"), rx_bytes=1, down_quota_bytes=rule.quota_bytes,
                                 down_quota_left_bytes=0, down_quota_period=rule.quota_period)  # fmt: skip
    told = _told(listed, Direction.DOWN, [rule], datetime.now(UTC))
    assert told is not None
    return told.began


def test_a_period_across_the_helpers_clock_change(
    private_bus: PrivateSystemBus, pair: NetnsPair, tmp_path: Path, window_in_utc: None
) -> None:
    """Berlin's clocks go forward at 02:00 on 2027-03-28: that day is 23 hours."""
    berlin = ZoneInfo("Europe/Berlin")
    with helper_at(
        private_bus, pair, tmp_path, "Europe/Berlin", datetime(2027, 3, 28, 1, 0, tzinfo=berlin)
    ) as pid:
        done = _ctl(private_bus, "quota", f"pid:{pid}", "5MB", "--per", "day", "--down")
        assert done.returncode == 0, done.stderr
        rule = _quota_rule(private_bus)
        began = datetime(2027, 3, 28, tzinfo=berlin).timestamp()
        ends = datetime(2027, 3, 29, tzinfo=berlin).timestamp()
        assert (rule.quota_period_start, rule.quota_period_end) == (began, ends)
        assert (rule.quota_start_offset_s, rule.quota_end_offset_s) == (3600, 7200)
        assert ends - began == 23 * 3600
        assert (
            "this period: 2027-03-28 00:00 UTC+01:00 to 2027-03-29 00:00 UTC+02:00" in done.stdout
        ), done.stdout
        listed = _ctl(private_bus, "rules")
        assert "until 2027-03-29 00:00 UTC+02:00" in listed.stdout, listed.stdout
        assert _window_began(rule) == began


def test_a_week_at_utc_plus_13(
    private_bus: PrivateSystemBus, pair: NetnsPair, tmp_path: Path, window_in_utc: None
) -> None:
    """New Zealand's summer time, UTC+13 (read as UTC-11 from day rows): a
    week's period begins on the helper's Monday, a day before the UTC-11 one."""
    auckland = ZoneInfo("Pacific/Auckland")
    monday = datetime(2026, 12, 7, 10, 0, tzinfo=auckland)
    with helper_at(private_bus, pair, tmp_path, "Pacific/Auckland", monday) as pid:
        done = _ctl(
            private_bus,
            "quota",
            f"pid:{pid}",
            "50MB",
            "--per",
            "week",
            "--down",
            "--reset",
            "06:30",
        )
        assert done.returncode == 0, done.stderr
        rule = _quota_rule(private_bus)
        began = datetime(2026, 12, 7, 6, 30, tzinfo=auckland).timestamp()
        assert rule.quota_period_start == began
        assert rule.quota_period_end == datetime(2026, 12, 14, 6, 30, tzinfo=auckland).timestamp()
        assert rule.quota_start_offset_s == rule.quota_end_offset_s == 13 * 3600
        assert (
            "this period: 2026-12-07 06:30 UTC+13:00 to 2026-12-14 06:30 UTC+13:00" in done.stdout
        )
        assert _window_began(rule) == began
