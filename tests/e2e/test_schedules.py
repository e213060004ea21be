"""A schedule end to end: `chadthrottle-ctl schedule` through the real helper on
the private bus (with polkitd), real upload traffic over the project's veth
pair, and the helper's wall clock moved across the schedule's minutes
(--wall-clock-file): the limit switches on at 09:00 and off at 09:01 without
a restart, and bad input is refused by name and changes nothing."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from chadthrottle.client import HelperClientError
from chadthrottle.contract import Direction, ErrorName
from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.standalone import PrivateSystemBus
from chadthrottle.usage_contract import UsageResolution

from tests.e2e.conftest import Stack
from tests.e2e.test_limit_over_dbus import wait_until_at_limit
from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.helper_process import HelperProcess
from tests.support.netns import app_scope, netns_pair, start_stream
from tests.support.requirements import require_program, require_root
from tests.support.waiting import eventually

CTL = [sys.executable, "-m", "chadthrottle.cli.ctl"]
LIMIT_BPS = 1_000_000
PAYLOAD_SHARE = 1448 / 1500  # receivers count payload, the limit counts IP packets
# The helper runs in this zone (TZ), so that a time its clocks skip can be
# tried whatever the machine's zone is; a Monday in it.
ZONE = "Europe/Berlin"
MONDAY_0900 = datetime(2027, 1, 4, 9, 0, tzinfo=ZoneInfo(ZONE)).timestamp()


@pytest.fixture(scope="module")
def clocked(
    private_bus: PrivateSystemBus, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, Path]]:
    """This module's own helper, whose schedules read the time from a file."""
    require_root()
    require_program("nsenter")
    state_dir = tmp_path_factory.mktemp("schedule-state")
    clock = state_dir.parent / f"{state_dir.name}-clock"
    clock.write_text(f"{MONDAY_0900 - 30}\n")
    with netns_pair() as pair:
        helper = HelperProcess(private_bus.address, netns=pair.host_ns, state_dir=state_dir)
        helper.command += ["--wall-clock-file", str(clock)]
        after_nsenter = helper.command.index("--") + 1
        helper.command[after_nsenter:after_nsenter] = ["env", f"TZ={ZONE}"]
        with helper:
            yield Stack(private_bus.address, pair, helper, cgroup2_mount()), clock
            if helper.returncode is not None:
                pytest.fail(f"the helper died during the tests:\n{helper.log_text()}")


def _ctl(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": stack.bus_address}
    return subprocess.run(CTL + list(args), capture_output=True, text=True, env=env, timeout=60)


def _up_limit(stack: Stack, app_id: str) -> int:
    apps = {a.id: a for a in call_helper(stack.bus_address, lambda c: c.list_applications())}
    return apps[app_id].up_limit_bps if app_id in apps else -1


def test_a_schedule_switches_a_limit_on_and_off_at_the_minute(clocked: tuple[Stack, Path]) -> None:
    stack, clock = clocked
    with app_scope(stack.cgroup_root, own_names.desktop_id("TestSchedule")) as scope:
        stream = start_stream(stack.pair, 5620, "up", app_cgroup=scope)
        try:
            added = _ctl(stack, "schedule", f"pid:{stream.app_pid}", "--up", "1M", "--days", "mon",
                         "--from", "09:00", "--to", "09:01")  # fmt: skip
            assert added.returncode == 0, added.stderr
            app_id = own_names.app_id("TestSchedule")
            # Bad input: a named error, and nothing changed; through the CLI once (status 2), then the bus.
            result = _ctl(
                stack,
                "schedule",
                app_id,
                "--up",
                "2M",
                "--days",
                "mon",
                "--from",
                "08:30",
                "--to",
                "09:01",
            )
            assert (
                result.returncode == 2 and "overlaps the schedule mon 09:00-09:01" in result.stderr
            ), result.stderr
            assert (
                "remove it first (chadthrottle-ctl schedule remove APP NAME)" in result.stderr
            )  # in the CLI's words
            result = _ctl(
                stack,
                "schedule",
                app_id,
                "--up",
                "2M",
                "--days",
                "tue",
                "--from",
                "25:00",
                "--to",
                "09:00",
            )
            assert result.returncode == 2 and "--from must be a time HH:MM" in result.stderr, (
                result.stderr
            )
            for days, start, end, says in (("mon", "08:30", "09:00:30", "HH:MM"), ("mon-fry", "08:59", "09:00", "unknown day"),
                                           ("tue", "10:00", "10:00", "same time"),
                                           ("sun", "02:30", "04:00", f"from 02:30 does not exist on 2027-03-28 in {ZONE}")):  # fmt: skip
                with pytest.raises(HelperClientError) as refused:
                    call_helper(
                        stack.bus_address,
                        lambda c, days=days, start=start, end=end: c.set_schedule(
                            app_id, days, start, end, 0, 2_000_000
                        ),
                    )
                assert (
                    refused.value.name == ErrorName.INVALID_ARGUMENT.value
                    and says in refused.value.message
                )
            call_helper(
                stack.bus_address,
                lambda c: c.set_schedule(app_id, "mon", "08:00", "09:00", 0, 2_000_000),
            )
            call_helper(
                stack.bus_address, lambda c: c.clear_schedules(app_id, "mon 08:00-09:00")
            )  # touched, fitted
            listed = json.loads(_ctl(stack, "schedule", "list", "--json").stdout)
            assert [(s["app_id"], s["name"], s["up_bps"], s["active"]) for s in listed] == [
                (app_id, "mon 09:00-09:01", LIMIT_BPS, False)
            ]
            assert _up_limit(stack, app_id) == 0
            assert stream.receiver.rate_bps(0.5) > 20 * LIMIT_BPS  # 08:59:30: unlimited

            clock.write_text(f"{MONDAY_0900}\n")  # 09:00:00
            moved = time.monotonic()
            assert eventually(lambda: _up_limit(stack, app_id) == LIMIT_BPS, 3.0), (
                "not switched on at 09:00"
            )
            switched_on_s = time.monotonic() - moved
            assert switched_on_s < 2.5  # the next tick (one a second), not the next restart
            wait_until_at_limit(
                lambda seconds: stream.receiver.rate_bps(seconds) / PAYLOAD_SHARE,
                LIMIT_BPS,
                timeout_s=2.0,
            )  # (was a fixed 2 s)
            rate = stream.receiver.rate_bps(2.0) / PAYLOAD_SHARE
            assert 0.9 * LIMIT_BPS <= rate <= 1.1 * LIMIT_BPS, (
                f"{rate:.0f} B/s at L3 while scheduled"
            )

            clock.write_text(f"{MONDAY_0900 + 59.5}\n")  # 09:00:59.5: still on
            time.sleep(1.2)
            assert _up_limit(stack, app_id) == LIMIT_BPS
            clock.write_text(f"{MONDAY_0900 + 60}\n")  # 09:01:00
            assert eventually(lambda: _up_limit(stack, app_id) == 0, 3.0), (
                "not switched off at 09:01"
            )
            assert eventually(lambda: stream.receiver.rate_bps(0.5) > 20 * LIMIT_BPS, 5.0), (
                "still slow after 09:01"
            )
            # the usage history follows the same clock: the upload is in the helper's 09:00 minute
            nine = int(MONDAY_0900)
            minute = call_helper(
                stack.bus_address,
                lambda c: c.get_usage(app_id, nine, nine + 60, UsageResolution.MINUTE),
            )
            assert [row.start for row in minute] == [nine] and minute[0].up_bytes > 2 * LIMIT_BPS, (
                minute
            )
            assert _ctl(stack, "schedule", "remove", app_id).returncode == 0
            assert json.loads(_ctl(stack, "schedule", "list", "--json").stdout) == []
        finally:
            stream.stop()


def test_the_rules_dialog_changes_the_helpers_rules(
    clocked: tuple[Stack, Path], qtbot, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """The GUI's rules dialog against the real helper: a schedule added and
    refused (the helper's own words shown), a block set and lifted, the
    schedule removed."""
    from PySide6.QtCore import QTime

    from tests.e2e.gui_support import running_gui

    stack, _clock = clocked
    with app_scope(stack.cgroup_root, own_names.desktop_id("TestRulesDialog")) as scope:
        stream = start_stream(stack.pair, 5630, "up", app_cgroup=scope)
        app_id = own_names.app_id("TestRulesDialog")
        try:
            with running_gui(stack, qtbot, tmp_path / "settings.ini") as controller:
                qtbot.waitUntil(
                    lambda: controller.model.application(app_id) is not None, timeout=10_000
                )
                (rules,) = [
                    a
                    for a in controller.window.row_menu(app_id).actions()
                    if a.objectName() == "edit-rules"
                ]
                rules.trigger()
                dialog = controller.rules.dialog
                for box in dialog.day_boxes:
                    box.setChecked(box.objectName() == "day:tue")
                dialog.schedule_from.setTime(QTime(10, 0))
                dialog.schedule_to.setTime(QTime(11, 0))
                dialog.schedule_rates[Direction.UP].setText("500K")
                dialog.add_schedule.click()
                qtbot.waitUntil(lambda: dialog.schedule_list.count() == 1, timeout=5_000)
                listed = call_helper(stack.bus_address, lambda c: c.list_schedules())
                assert [(s.app_id, s.name, s.up_bps) for s in listed] == [
                    (app_id, "tue 10:00-11:00", 500_000)
                ]
                dialog.schedule_from.setTime(QTime(10, 30))
                dialog.add_schedule.click()  # overlaps: the helper says so, and nothing changes
                qtbot.waitUntil(lambda: "overlaps" in dialog.message.text(), timeout=5_000)
                assert len(call_helper(stack.bus_address, lambda c: c.list_schedules())) == 1
                dialog.block_boxes[Direction.DOWN].click()
                qtbot.waitUntil(lambda: dialog.message.text() == "Done.", timeout=5_000)
                apps = {
                    a.id: a for a in call_helper(stack.bus_address, lambda c: c.list_applications())
                }
                assert apps[app_id].down_blocked and dialog.block_boxes[Direction.DOWN].isChecked()
                dialog.block_boxes[
                    Direction.DOWN
                ].click()  # before a poll shows the block: the box stays as asked
                assert not dialog.block_boxes[Direction.DOWN].isChecked()

                def blocked() -> bool:
                    apps = {
                        a.id: a
                        for a in call_helper(stack.bus_address, lambda c: c.list_applications())
                    }
                    return apps[app_id].down_blocked

                qtbot.waitUntil(lambda: not blocked(), timeout=5_000)
                dialog.schedule_list.setCurrentRow(0)
                dialog.remove_schedule.click()
                qtbot.waitUntil(lambda: dialog.schedule_list.count() == 0, timeout=5_000)
                assert call_helper(stack.bus_address, lambda c: c.list_schedules()) == []
                dialog.close()
        finally:
            stream.stop()


def test_schedules_are_authorized_as_limits_are(clocked: tuple[Stack, Path]) -> None:
    """polkit decides as for SetLimit: a user without limit-own is refused; with
    it, they schedule their own application only, as their own rule, and see
    their own schedules and the administrator's."""
    from tests.support.other_users import DENIED, NO_SUCH, ClientAs, granted, stream_as

    stack, _clock = clocked
    nobody = ClientAs(stack.bus_address, 65534)
    with app_scope(stack.cgroup_root, own_names.desktop_id("TestScheduleNobody")) as scope, \
            app_scope(stack.cgroup_root, own_names.desktop_id("TestScheduleRoot")) as root_scope:  # fmt: skip
        theirs = stream_as(65534, stack.pair, 5640, scope)
        root_stream = start_stream(stack.pair, 5641, "up", app_cgroup=root_scope)
        own_app, root_app = (
            own_names.app_id("TestScheduleNobody"),
            own_names.app_id("TestScheduleRoot"),
        )
        try:
            assert eventually(
                lambda: (
                    {own_app, root_app}
                    <= {
                        a.id
                        for a in call_helper(stack.bus_address, lambda c: c.list_applications())
                    }
                ),
                10.0,
            ), "not listed"  # a tick after they started
            call_helper(
                stack.bus_address,
                lambda c: c.set_schedule(root_app, "sat", "01:00", "02:00", 0, 50_000),
            )
            assert nobody.ask("schedule", own_app, "mon", "09:00", "10:00", 50_000) == DENIED
            with granted(nobody):
                assert nobody.ask("schedule", own_app, "mon", "09:00", "10:00", 50_000) == {
                    "ok": own_app
                }
                assert nobody.ask("schedule", root_app, "mon", "09:00", "10:00", 50_000) == NO_SUCH
                assert (
                    nobody.ask("schedule", own_app, "mon", "09:00", "10:00", 50_000, "all")
                    == DENIED
                )
                assert sorted(map(tuple, nobody.ask("schedules")["ok"])) == [
                    (own_app, "mon 09:00-10:00", 65534),
                    (root_app, "sat 01:00-02:00", -1),
                ]
        finally:
            nobody.close()
            theirs.stop()
            root_stream.stop()
            with contextlib.suppress(
                Exception
            ):  # nobody's own stays with this module's helper, which goes
                call_helper(stack.bus_address, lambda c: c.clear_schedules(root_app, ""))
