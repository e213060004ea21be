"""Faults the last walk of the real app on a screen found and left (gui10:
Xvfb, openbox and trayer, the real helper in network namespaces), fixed by
gui17, each with the real widgets."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import pytest
from chadthrottle.contract import ApplicationInfo, BackendInfo, Direction
from chadthrottle.gui.ipc.state import HelperState, HelperStatus
from chadthrottle.gui.models.columns import Column
from chadthrottle.gui.views.rules_dialog import AppRules, RulesDialog
from chadthrottle.units import UnitSystem

from tests.gui.scripted_app import scripted_app
from tests.gui.test_connection import ScriptedClient
from tests.gui.test_walk_faults import PausingClient

FIREFOX = "app:org.mozilla.firefox"


def test_every_quota_line_of_the_rules_dialog_ends_with_a_full_stop(qtbot) -> None:  # type: ignore[no-untyped-def]
    """The Block and quota tab's line read "Upload: all 1.00 MB used today:
    held to 100 KB/s until the next day", with no full stop, beside lines that
    each end with one ("No quota. A new quota counts from when it is set."); two
    quotas were one sentence joined by ";". Each quota is a sentence."""
    quotas = {
        Direction.DOWN: (5_000_000_000, 1_200_000_000, "day"),
        Direction.UP: (10**6, 0, "day"),
    }
    rules = AppRules(FIREFOX, "Firefox", quotas=quotas, held_by_quota={Direction.UP: 100_000})
    dialog = RulesDialog(rules, UnitSystem.BYTES_DECIMAL)
    qtbot.addWidget(dialog)
    assert dialog.quota_state.text() == (
        "Download: 1.20 GB of 5.00 GB left today, counted since it was set or the day began. "
        "Upload: all 1.00 MB used today: limited to 100\u00a0KB/s until the next day."
    ), dialog.quota_state.text()
    dialog.show_rules(AppRules(FIREFOX, "Firefox"))
    assert dialog.quota_state.text() == "No quota. A new quota counts from when it is set."


class StalePausingClient(PausingClient):
    """As PausingClient, and the backends read just before the pause (both
    holding a direction) answered again while paused: "Backend: tc ▼, ebpf ▲"
    stayed beside "No limits are enforced: limits are paused"."""

    async def list_backends(self) -> list[BackendInfo]:
        return [BackendInfo("tc", True, "", ("down",)), BackendInfo("ebpf", True, "", ("up",))]


@pytest.mark.parametrize("client_class", [PausingClient, StalePausingClient])
def test_while_limits_are_paused_the_status_line_names_no_backend_as_holding_them(
    qtbot, tmp_path, monkeypatch, client_class: type[PausingClient]
) -> None:  # type: ignore[no-untyped-def]
    """Paused, the status bar read "Backend: tc, ebpf" (the backends available)
    or "Backend: tc ▼, ebpf ▲" beside "No limits are enforced: limits are
    paused", as if they held the limits. Paused, it says that nothing is
    shaped; resumed, which backend holds what again; the helper away, "—"."""
    monkeypatch.setattr("chadthrottle.gui.ipc.worker.BACKENDS_EVERY_N_POLLS", 1)  # read each poll
    client = client_class()
    with scripted_app(client, tmp_path) as app:
        app.start(show_window=True)
        line = app.window.status_line
        qtbot.waitUntil(lambda: line.backend.text().startswith("Enforcing "), timeout=10_000)
        held = line.backend.text()
        app.window.pauseRequested.emit(True)
        qtbot.waitUntil(lambda: app.window.limits_paused, timeout=10_000)
        polls: list[object] = []
        app.connection.applicationsUpdated.connect(polls.append)
        qtbot.waitUntil(lambda: len(polls) >= 2, timeout=10_000)  # backends read again, paused
        assert line.backend.text() == "Enforcing paused", line.backend.text()
        assert line.backend.toolTip().startswith(
            "Limits are paused: no backend shapes or blocks anything until they are resumed."
        ), line.backend.toolTip()
        assert "tc" in line.backend.toolTip()  # what is available is still said, on hover
        app.window.pauseRequested.emit(False)
        qtbot.waitUntil(lambda: not app.window.limits_paused, timeout=10_000)
        qtbot.waitUntil(lambda: line.backend.text() == held, timeout=10_000)
        app.window.set_limits_paused(True)
        app.window.set_status(HelperStatus(HelperState.NOT_RUNNING, "The helper stopped."))
        assert line.backend.text() == "Not enforcing"  # away: nothing known, nothing held


def _shown_notes(window) -> str:  # type: ignore[no-untyped-def]
    """The detail pane's notes whole: the tooltip has them where the label is cut."""
    notes = window.detail.limit_notes
    return notes.toolTip() or notes.text()


@pytest.mark.parametrize("block_rule", [False, True])
def test_the_detail_pane_says_a_limit_of_ones_own_kept_beneath_a_block(
    qtbot, make_controller, block_rule: bool
) -> None:  # type: ignore[no-untyped-def]
    """Harbor Browser's upload limited to 1 MB/s, then its upload quota (20 MB a
    day, then blocked) used up: the rules dialog showed the limit kept (its
    field read 1.00 MB/s), the detail pane said only "Upload quota: all 20.0 MB
    used today: blocked until the next day." as if no limit of the user's own
    were left. Both say it, in one sentence; so for a block of one's own."""
    import time

    from chadthrottle.contract import ADMIN_OWNER, RuleInfo
    from chadthrottle.gui.ipc.worker import Snapshot

    from tests.gui.test_walk10_faults import _with

    controller = make_controller()
    model, window = controller.model, controller.window
    window.set_status(HelperStatus(HelperState.CONNECTED, "", True, True))
    quota = (
        {}
        if block_rule
        else {"quota_bytes": 20 * 10**6, "quota_period": "day", "quota_then_bps": 0}
    )
    rules = (RuleInfo(FIREFOX, "up", 10**6, 0, ADMIN_OWNER, True, blocked=block_rule, **quota),)
    listed = {"up_quota_bytes": 20 * 10**6, "up_quota_left_bytes": 0, "up_quota_period": "day"}
    listing = tuple(
        _with(FIREFOX, up_blocked=True, up_limit_bps=0, **({} if block_rule else listed))
    )
    controller.connection.applicationsUpdated.emit(Snapshot(listing, {}, time.monotonic(), rules))
    assert model.limit_state(FIREFOX, Direction.UP).blocked
    assert window.select_application(FIREFOX)
    kept = (
        "Your upload limit of 1.00\u00a0MB/s is kept: it applies again once the upload is unblocked."
        if block_rule
        else "Your upload limit of 1.00\u00a0MB/s is kept: it applies again from the next day, "
        "when the quota's block ends."
    )
    qtbot.waitUntil(lambda: kept in _shown_notes(window))
    window.rulesRequested.emit(FIREFOX)
    dialog = controller.rules.dialog
    assert dialog is not None
    qtbot.addWidget(dialog)
    assert dialog.limit_edits[Direction.UP].text() == "1.00 MB/s"
    assert kept in dialog.scheduled_note.text(), dialog.scheduled_note.text()


class HeldPollClient(ScriptedClient):
    """A paused helper whose next ListApplications, once asked to hold one,
    reads its listing when asked and answers only when released: an answer
    from before a Resume that reaches the window after it."""

    def __init__(self) -> None:
        super().__init__()
        self.paused = True
        self.hold_next = threading.Event()
        self.entered = threading.Event()
        self.release = threading.Event()

    async def list_applications(self) -> list[ApplicationInfo]:
        listing = await super().list_applications()  # read now: the rates under the pause
        if self.hold_next.is_set():
            self.hold_next.clear()
            self.entered.set()
            while not self.release.is_set():
                await asyncio.sleep(0.01)
        return listing


def test_a_poll_in_flight_across_resume_reads_measuring_where_rules_changed(
    qtbot, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """Under Xvfb, one poll just after "Resume limits" listed a rate not marked
    measuring: sent before the Resume, answered by the paused helper, it came
    after it, and its rates (measured with no limit held) read as measured
    under the limits again. A rate read across a pause or a resume reads "…"
    (measuring) where the change reaches (a limit, a block, a quota, a rule),
    as the helper lists one after a rule change; elsewhere it is the rate."""
    client = HeldPollClient()
    with scripted_app(client, tmp_path) as app, contextlib.ExitStack() as ending:
        ending.callback(client.release.set)  # before the app is disposed of: the held poll ends
        app.start(show_window=True)
        qtbot.waitUntil(lambda: app.window.limits_paused, timeout=10_000)
        client.hold_next.set()
        qtbot.waitUntil(client.entered.is_set, timeout=10_000)
        app.window.pauseRequested.emit(False)  # Resume limits, the poll in flight
        qtbot.waitUntil(lambda: not app.window.limits_paused, timeout=10_000)
        shown: list[tuple[str, str, str, str]] = []

        def cells(_snapshot: object) -> None:
            table = app.window.table
            shown.append((table.proxy_index(FIREFOX, Column.DOWN).data(),
                          table.proxy_index(FIREFOX, Column.UP).data(),
                          table.proxy_index("exe:/usr/bin/curl", Column.DOWN).data(),
                          table.proxy_index("app:org.gnome.Fractal", Column.DOWN).data()))  # fmt: skip

        app.connection.applicationsUpdated.connect(cells)
        client.release.set()
        qtbot.waitUntil(lambda: len(shown) >= 2, timeout=10_000)
        # Firefox's download is limited, curl's has a rule (ListRules); Firefox's
        # upload and Fractal hold none: the Resume changed nothing there
        assert shown[0] == ("…", "210 KB/s", "…", "8.00 KB/s"), shown
        assert shown[1] == ("4.98 MB/s", "210 KB/s", "0 B/s", "8.00 KB/s"), shown  # sent after it


def test_a_poll_in_flight_across_a_confirmed_limit_reads_measuring_in_that_direction(
    window,
) -> None:  # type: ignore[no-untyped-def]
    """As across a Resume: a poll sent before the helper confirmed the user's
    limit may have been answered before it; the row kept the confirmed limit
    (test_limit_truth) beside the rate measured under the old one (Dropbox's
    890 KB/s under its 1 MB/s limit, just cleared). That direction reads "…"
    for that poll; the other keeps its rate; a poll sent after is the truth."""
    import time

    from tests.gui.sample_data import sample_applications

    dropbox = "app:com.dropbox.Client"
    model = window._model
    sent_before = time.monotonic()
    model.mark_pending(dropbox, Direction.UP, None)
    model.resolve_pending(dropbox, Direction.UP, succeeded=True)
    model.apply_snapshot(sample_applications(), asked_at=sent_before)  # answered before the clear
    table = window.table
    assert table.proxy_index(dropbox, Column.UP_LIMIT).data() == "none"
    assert table.proxy_index(dropbox, Column.UP).data() == "…", table.proxy_index(
        dropbox, Column.UP
    ).data()
    assert table.proxy_index(dropbox, Column.DOWN).data() == "120 KB/s"  # its rules did not change
    model.apply_snapshot(sample_applications(), asked_at=time.monotonic())  # sent after
    assert table.proxy_index(dropbox, Column.UP).data() == "890 KB/s"
