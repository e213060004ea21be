"""ApplicationsModel: a valid tree model, merged incrementally by application id."""

from __future__ import annotations

import dataclasses

from chadthrottle.contract import ConnectionInfo, Direction
from chadthrottle.gui.models.applications import ApplicationsModel
from chadthrottle.gui.models.columns import Column, Role
from chadthrottle.gui.models.connection_table import MEASURING
from chadthrottle.gui.models.icons import IconProvider
from chadthrottle.gui.models.sort_proxy import ApplicationsProxy
from chadthrottle.units import UnitSystem
from PySide6.QtCore import QPersistentModelIndex, Qt

from tests.gui.sample_data import KB, MB, app, sample_applications


def make_model() -> ApplicationsModel:
    return ApplicationsModel(IconProvider())


def test_model_passes_qtmodeltester(qtmodeltester) -> None:
    model = make_model()
    model.apply_snapshot(sample_applications(), {2210: "firefox", 4390: "steam"})
    qtmodeltester.check(model)


def test_model_stays_valid_through_changes(qtmodeltester) -> None:
    model = make_model()
    qtmodeltester.check(model)
    apps = sample_applications()
    model.apply_snapshot(apps)
    model.apply_snapshot([*apps[2:], app("exe:/usr/bin/wget", "wget", 1 * MB, pids=(9, 10))])
    model.apply_snapshot([dataclasses.replace(apps[3], pids=(5120, 5121))])
    model.apply_snapshot([])


STEAM = "app:com.valvesoftware.Steam"


def _tcp(local_port: int, state: str = "ESTABLISHED", pid: int = 4390) -> ConnectionInfo:
    return ConnectionInfo("tcp", f"10.0.0.5:{local_port}", "151.101.1.69:443", state, pid)


def test_model_with_connections_passes_qtmodeltester(qtmodeltester) -> None:
    model = make_model()
    model.apply_snapshot(sample_applications(), {4390: "steam"})
    model.set_connections(STEAM, [_tcp(5001), _tcp(5002, "LISTEN")])
    qtmodeltester.check(model)


def test_model_stays_valid_through_connection_changes(qtmodeltester) -> None:
    model = make_model()
    apps = sample_applications()
    model.apply_snapshot(apps)
    qtmodeltester.check(model)
    model.set_connections(STEAM, [_tcp(5001), _tcp(5002), _tcp(5003)])
    model.set_connections(
        STEAM, [_tcp(5002, "CLOSE_WAIT"), _tcp(5004)]
    )  # one stays, one changes state
    model.apply_snapshot(
        [dataclasses.replace(a, pids=(4390, 4412, 4500)) if a.id == STEAM else a for a in apps]
    )
    model.apply_snapshot(
        [dataclasses.replace(a, pids=(4412,)) if a.id == STEAM else a for a in apps]
    )
    model.set_connections("exe:/gone", [_tcp(1)])  # an answer for a row no longer there
    model.clear_connections(STEAM)
    model.set_connections(STEAM, [_tcp(5005)])
    model.apply_snapshot(apps[2:])  # Steam vanishes with its connections
    model.apply_snapshot([])


def test_connections_follow_the_processes_and_merge_in_place(qtbot) -> None:
    model = make_model()
    model.apply_snapshot(sample_applications(), {4390: "steam", 4412: "steamwebhelper"})
    steam = model.index_of(STEAM)
    model.set_connections(STEAM, [_tcp(5002, "LISTEN"), _tcp(5001)])
    assert model.rowCount(steam) == 4
    labels = [model.index(row, 0, steam).data() for row in range(4)]
    assert labels == [
        "steam (pid 4390)", "steamwebhelper (pid 4412)",
        "\u2192 151.101.1.69:443 ESTABLISHED (tcp from 10.0.0.5:5001)", "tcp listening on 10.0.0.5:5002",
    ]  # fmt: skip
    connection = model.index(2, 0, steam)
    assert connection.data(Role.APP_ID) == STEAM and connection.data(Role.IS_PROCESS)
    assert "No byte counters" in connection.data(
        Qt.ItemDataRole.ToolTipRole
    )  # an older helper's answer
    assert model.index(2, Column.DOWN, steam).data() is None  # no made-up rate
    assert not model.hasChildren(connection)
    kept = QPersistentModelIndex(connection)
    with qtbot.assertNotEmitted(model.rowsRemoved):
        model.set_connections(STEAM, [_tcp(5001, "CLOSE_WAIT"), _tcp(5002, "LISTEN")])
    assert kept.isValid() and " CLOSE_WAIT " in kept.data()
    model.clear_connections(STEAM)
    assert model.rowCount(steam) == 2 and not kept.isValid()


def test_an_expanded_rows_connections_show_rates_from_their_byte_counters(
    qtbot, monkeypatch
) -> None:
    now = [100.0]
    monkeypatch.setattr("chadthrottle.gui.models.applications.time.monotonic", lambda: now[0])
    model = make_model()
    model.apply_snapshot(sample_applications(), {4390: "steam", 4412: "steamwebhelper"})
    steam = model.index_of(STEAM)
    counted = dataclasses.replace(_tcp(5001), rx_bytes=1_000, tx_bytes=0)
    uncounted = dataclasses.replace(_tcp(5002), protocol="udp", rx_bytes=-1, tx_bytes=-1)
    model.set_connections(STEAM, [counted, uncounted])
    # one answer: measuring, as the connections table says it (at 2x, with the
    # detail pane folded, these stood empty); a UDP socket has no counters: empty
    assert model.index(2, Column.DOWN, steam).data() == MEASURING
    assert model.index(3, Column.DOWN, steam).data() is None
    model.set_connections(STEAM, [counted])
    now[0] += 2.0
    with qtbot.waitSignal(model.dataChanged):
        model.set_connections(
            STEAM, [dataclasses.replace(counted, rx_bytes=2_001_000, tx_bytes=4_000)]
        )
    assert (model.index(2, Column.DOWN, steam).data(), model.index(2, Column.UP, steam).data()) == (
        "1.00 MB/s",
        "2.00 KB/s",
    )
    assert "2,001,000 bytes received" in model.index(2, 0, steam).data(Qt.ItemDataRole.ToolTipRole)
    model.clear_connections(STEAM)
    model.set_connections(STEAM, [counted])
    assert model.index(2, Column.DOWN, steam).data() == MEASURING  # opened again: afresh


def test_proxy_passes_qtmodeltester(qtmodeltester) -> None:
    model = make_model()
    proxy = ApplicationsProxy()
    proxy.setSourceModel(model)
    proxy.sort_by_activity()
    model.apply_snapshot(sample_applications())
    model.set_connections(STEAM, [_tcp(5001)])
    qtmodeltester.check(proxy)


def test_rows_keep_identity_across_polls(qtbot) -> None:
    model = make_model()
    apps = sample_applications()
    model.apply_snapshot(apps)
    steam = QPersistentModelIndex(model.index_of("app:com.valvesoftware.Steam"))
    with qtbot.assertNotEmitted(model.modelReset), qtbot.assertNotEmitted(model.rowsRemoved):
        model.apply_snapshot([dataclasses.replace(a, down_bps=a.down_bps + 1) for a in apps])
    assert steam.isValid()
    assert steam.data() == "Steam"
    assert steam.row() == 1


def test_vanished_app_is_removed_and_new_one_appended(qtbot) -> None:
    model = make_model()
    apps = sample_applications()
    model.apply_snapshot(apps)
    curl = QPersistentModelIndex(model.index_of("exe:/usr/bin/curl"))
    with qtbot.waitSignal(model.rowsRemoved), qtbot.waitSignal(model.rowsInserted):
        model.apply_snapshot([*apps[1:], app("exe:/usr/bin/wget", "wget")])
    assert model.application("app:org.mozilla.firefox") is None
    assert model.app_ids()[-1] == "exe:/usr/bin/wget"
    assert curl.isValid() and curl.data() == "curl"


def test_processes_are_children(qtbot) -> None:
    model = make_model()
    model.apply_snapshot(sample_applications(), {4390: "steam", 4412: "steamwebhelper"})
    steam = model.index_of("app:com.valvesoftware.Steam")
    assert model.rowCount(steam) == 2
    assert model.index(1, 0, steam).data() == "steamwebhelper (pid 4412)"
    assert model.index(1, 0, steam).data(Role.APP_ID) == "app:com.valvesoftware.Steam"
    assert model.index(1, 0, steam).parent() == steam


def test_history_and_rates_follow_units() -> None:
    model = make_model()
    for rate in (1 * MB, 2 * MB, 3 * MB):
        model.apply_snapshot([app("exe:/x", "x", rate, 10 * KB)])
    history = model.history("exe:/x")
    assert history is not None and len(history) == 3
    assert history.mean(3) == (2 * MB, 10 * KB)
    index = model.index_of("exe:/x", Column.DOWN)
    assert index.data() == "3.00 MB/s"
    model.set_units(UnitSystem.BITS_DECIMAL)
    assert index.data() == "24.0 Mbit/s"


def test_pending_limit_shows_at_once_and_survives_a_poll() -> None:
    model = make_model()
    model.apply_snapshot([app("exe:/x", "x")])
    model.mark_pending("exe:/x", Direction.DOWN, 2 * MB)
    index = model.index_of("exe:/x", Column.DOWN_LIMIT)
    assert index.data(Role.LIMIT) == 2 * MB and index.data(Role.LIMIT_PENDING)
    model.apply_snapshot([app("exe:/x", "x")])  # a poll from before the request landed
    assert index.data(Role.LIMIT) == 2 * MB
    model.resolve_pending("exe:/x", Direction.DOWN, succeeded=False)
    assert index.data(Role.LIMIT) == 0
    model.mark_pending("exe:/x", Direction.DOWN, 3 * MB)
    model.resolve_pending("exe:/x", Direction.DOWN, succeeded=True)
    assert index.data(Role.LIMIT) == 3 * MB and not index.data(Role.LIMIT_PENDING)
    assert model.active_limit_count() == 1


def test_proxy_sorts_by_total_rate_filters_and_freezes() -> None:
    model = make_model()
    proxy = ApplicationsProxy()
    proxy.setSourceModel(model)
    proxy.sort_by_activity()
    model.apply_snapshot(sample_applications())

    def names() -> list[str]:
        return [proxy.index(r, 0).data() for r in range(proxy.rowCount())]

    assert names()[:3] == ["Firefox", "Steam", "syncthing"]
    proxy.set_frozen(True)
    model.apply_snapshot([app("exe:/usr/bin/curl", "curl", 50 * MB), *sample_applications()[:3]])
    assert names() == ["Firefox", "Steam", "Dropbox", "curl"]  # held still
    proxy.set_frozen(False)
    assert names()[0] == "curl"
    proxy.set_name_filter("STE")
    assert names() == ["Steam"]
    proxy.set_name_filter("")
    assert len(names()) == 4
    assert Qt.SortOrder.DescendingOrder == proxy.sortOrder()


def test_history_keeps_ten_poll_means_for_the_hour_view() -> None:
    from chadthrottle.gui.models.history import COARSE_EVERY, RateHistory

    history = RateHistory()
    for poll in range(2 * COARSE_EVERY + 3):
        history.append(float(poll), 2.0 * poll)
    assert history.coarse().tolist() == [[4.5, 9.0], [14.5, 29.0]]
    assert history.recent(2).tolist() == [[21.0, 42.0], [22.0, 44.0]]


def test_the_filter_keeps_unlisted_applications_up_to_date(qtmodeltester) -> None:
    model = make_model()
    apps = sample_applications()
    model.apply_snapshot(apps, {4390: "steam", 4412: "steamwebhelper"})
    qtmodeltester.check(model)
    model.set_name_filter("  WEBHELPER ")  # a process name, any case
    assert model.app_ids() == [STEAM]
    all_down = sum(a.down_bps for a in apps)
    assert model.totals()[0] == all_down  # totals and the tray still see every application
    assert len(model.applications()) == len(apps)
    faster = [dataclasses.replace(a, down_bps=a.down_bps + 1) for a in apps]
    model.apply_snapshot(
        [*faster, app("exe:/usr/bin/wget", "wget")], {4390: "steam", 4412: "steamwebhelper"}
    )
    assert model.app_ids() == [STEAM]  # the new one does not match either
    model.mark_pending("exe:/usr/bin/curl", Direction.UP, 5 * KB)  # a row the filter hides
    assert model.effective_limit("exe:/usr/bin/curl", Direction.UP) == 5 * KB
    model.set_name_filter("")
    assert len(model.app_ids()) == len(apps) + 1
    history = model.history("app:org.mozilla.firefox")
    assert history is not None and len(history) == 2  # grew while it was not listed
    model.set_name_filter("webhelper")
    steam = next(a for a in apps if a.id == STEAM)
    model.apply_snapshot(
        [dataclasses.replace(steam, pids=(4390,))], {4390: "steam"}
    )  # its helper exited
    assert model.app_ids() == []
    model.apply_snapshot([steam], {4390: "steam", 4412: "steamwebhelper"})
    assert model.app_ids() == [STEAM]
