"""A limit the kernel does not meet is said so by the helper, `chadthrottle-ctl`
and the window, on real traffic (issue 13, "Truth about each limit").

The real case: a download limit of 4 MB/s set with a burst of 300 MiB on a TCP
download the remote sends at 24 MB/s. The kernel passes the burst: the tc
class (and the policer that guards it), or the ebpf backend's policer, lets
the download run at the sender's rate until the burst is spent, about 15 s. Measured (docs/backends.md, "Every
path: the policer guards what tc shapes"): 10 times the limit for 5-6 s with a 200 MB burst at 40 MB/s. The
helper says "not met: measured ... above the limit" once that lasted 5 ticks; the
listing, `list --json`, `list`, `limit`'s exit status 6, the row, the detail
pane and the status line carry it as not met (the limit is enforced: never
worded "not enforced"), and the window does not count it as an active limit.
Once the burst is spent (the test spends its rest with a second, unpaced
download) the same limit is met again: the warning goes and it counts. Every
other case measured on this machine (UDP datagrams as IP fragments, a limit of
2 kB/s, someone's qdisc in place of the IFB's HTB) was met within a few ticks,
so no other reaches the window."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from chadthrottle.contract import ApplicationInfo, Direction, is_not_met
from chadthrottle.gui.controller import AppController
from chadthrottle.gui.models.columns import Column
from chadthrottle.helper.engine.overshoot import OVERSHOOT_SHARE
from PySide6.QtCore import Qt

from tests.e2e.conftest import Stack
from tests.e2e.gui_support import app_rate_bps, running_gui
from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.netns import app_scope, start_stream

pytestmark = pytest.mark.parametrize("stack", ["tc", "ebpf"], indirect=True)

CTL = [sys.executable, "-m", "chadthrottle.cli.ctl"]
EXIT_NOT_ENFORCED = 6
LIMIT_BPS = 4_000_000
BURST = "300M"  # parse_burst_argument: 300 MiB, about 15 s at OFFERED_BPS - LIMIT_BPS
# (the checks while not met take about 7 s; the rest is spent by a second stream)
OFFERED_BPS = 24e6  # paced by the sender: the rate does not hang on the machine's load
ABOVE = "above the limit"
SAID_WITHIN_MS = 15_000  # 5 ticks of 1 s, late ticks on a loaded machine, a GUI poll
MET_AGAIN_WITHIN_MS = 60_000  # the rest of the burst (longer if the sender ran slow), 2 s windows


def _ctl(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": stack.bus_address}
    return subprocess.run([*CTL, *args], capture_output=True, text=True, env=env, timeout=60)


def _listed(stack: Stack, app_id: str) -> ApplicationInfo | None:
    apps = call_helper(stack.bus_address, lambda c: c.list_applications())
    return next((a for a in apps if a.id == app_id), None)


@pytest.fixture
def gui(stack: Stack, qtbot, tmp_path) -> Iterator[AppController]:  # type: ignore[no-untyped-def]
    with running_gui(stack, qtbot, tmp_path / "chadthrottle.ini") as controller:
        yield controller


def _row(gui: AppController, app_id: str) -> tuple[bool, str]:
    """(the download limit control shows its warning, the limit cell's tooltip)."""
    control = gui.window.limit_control(app_id, Direction.DOWN)
    index = gui.window.table.proxy_index(app_id, Column.DOWN_LIMIT)
    if control is None or not index.isValid():
        return False, ""
    return control.warning.isVisible(), str(index.data(Qt.ItemDataRole.ToolTipRole) or "")


def test_a_limit_measured_above_for_seconds_is_said_not_met_everywhere_and_not_counted(
    qtbot, stack: Stack, gui: AppController
) -> None:  # type: ignore[no-untyped-def]
    desktop_id = own_names.desktop_id("NotMet13", fresh=True)
    app_id = f"app:{desktop_id}"
    with app_scope(stack.cgroup_root, desktop_id) as scope:
        stream = start_stream(stack.pair, 5891, "down", app_cgroup=scope, rate_bps=OFFERED_BPS)
        try:
            limited = _ctl(
                stack, "limit", f"pid:{stream.app_pid}", "--down", "4M", "--burst", BURST
            )
            assert limited.returncode == 0, (limited.stdout, limited.stderr)
            assert limited.stdout.startswith(f"{app_id}: down limited"), limited.stdout

            # the helper: not met once the application ran above the limit for 5 ticks
            qtbot.waitUntil(
                lambda: ABOVE in getattr(_listed(stack, app_id), "down_limit_problem", ""),
                timeout=SAID_WITHIN_MS,
            )
            # ... and it is the truth: the application receives well above the limit
            received = app_rate_bps(qtbot, stream.receiver, 1.0)
            assert received > 2 * LIMIT_BPS, f"received {received / 1e6:.2f} MB/s"

            entry = next(e for e in json.loads(_ctl(stack, "list", "--json").stdout)
                         if e["id"] == app_id)  # fmt: skip
            assert ABOVE in entry["down_limit_problem"] and is_not_met(
                entry["down_limit_problem"]
            ), entry
            listing = _ctl(stack, "list").stdout  # enforced, not met: never "not enforced"
            assert f"{app_id}: down limit not met: measured" in listing, listing
            (row,) = [line for line in listing.splitlines() if line.startswith(f"{app_id} ")]
            assert "(admin) NOT MET" in row and "NOT ENFORCED" not in row, listing
            again = _ctl(stack, "limit", app_id, "--down", "4M", "--burst", BURST)
            assert again.returncode == EXIT_NOT_ENFORCED, (again.stdout, again.stderr)
            assert ABOVE in again.stderr, again.stderr
            assert "stored and enforced, but not met now" in again.stderr, again.stderr

            # the window: row, detail pane, status line; not counted as active
            qtbot.waitUntil(lambda: _row(gui, app_id)[0], timeout=SAID_WITHIN_MS)
            assert "Not met: measured" in _row(gui, app_id)[1]
            assert "Not enforced" not in _row(gui, app_id)[1]
            assert gui.model.active_limit_count() == 0
            assert gui.window.status_line.limits.text() == "0 limits active, 1 not met"
            assert gui.window.select_application(app_id)
            qtbot.waitUntil(lambda: ABOVE in gui.window.detail.limit_notes.text(), timeout=2000)
            assert "Not met: measured" in gui.window.detail.limit_notes.text()

            # the control: the burst spent, the same limit is met and counted again.
            # An unpaced second download of the application spends what is left of
            # the burst in well under a second (at the first one's 20 MB/s over the
            # limit: about 9 s more), then goes, so the first is judged alone.
            drain = start_stream(stack.pair, 5892, "down", app_cgroup=scope)
            try:
                qtbot.waitUntil(
                    lambda: not getattr(_listed(stack, app_id), "down_limit_problem", "x"),
                    timeout=MET_AGAIN_WITHIN_MS,
                )
            finally:
                drain.stop()
            received = app_rate_bps(qtbot, stream.receiver, 2.0)
            assert received < OVERSHOOT_SHARE * LIMIT_BPS, f"received {received / 1e6:.2f} MB/s"
            qtbot.waitUntil(lambda: not _row(gui, app_id)[0], timeout=SAID_WITHIN_MS)
            assert "Not met" not in _row(gui, app_id)[1]
            qtbot.waitUntil(lambda: gui.model.active_limit_count() == 1, timeout=SAID_WITHIN_MS)
            assert gui.window.status_line.limits.text().startswith("1 limit active")
        finally:
            call_helper(stack.bus_address, lambda c: c.clear_limit(app_id))
            stream.stop()
