"""The rate, total and limit columns are as wide as the units shown need: the widest
value of those units reads whole, and what they do not need goes to the name."""

from __future__ import annotations

from chadthrottle.contract import Direction
from chadthrottle.gui.ipc.state import HelperState, HelperStatus
from chadthrottle.gui.models.columns import Column
from chadthrottle.gui.views.app_table import LIMIT_SLIDER_LEAST, LIMIT_SLIDER_USABLE
from chadthrottle.gui.widgets.rate_width import PENDING_MARK, rate_texts
from chadthrottle.units import UnitSystem, format_limit, format_rate
from PySide6.QtGui import QFontMetricsF

from tests.gui.bare_window import bare_window
from tests.gui.sample_data import sample_applications

FIREFOX = "app:org.mozilla.firefox"


def test_columns_follow_the_units_and_give_the_rest_to_the_name(qtbot) -> None:  # type: ignore[no-untyped-def]
    model, window = bare_window()
    qtbot.addWidget(window)
    window.set_status(HelperStatus(HelperState.CONNECTED, "", True, True))
    model.apply_snapshot(sample_applications())
    window.resize(683, 500)  # 1366x768 at 2x
    window.show()
    qtbot.waitExposed(window)
    table, header = window.table, window.table.header()
    widths: dict[UnitSystem, list[int]] = {}
    for units in (UnitSystem.BITS_BINARY, UnitSystem.BYTES_DECIMAL):
        window.set_units(units)
        assert table.limit_delegate.units is units
        widths[units] = [header.sectionSize(c) for c in Column]
        metrics = QFontMetricsF(table.font())
        margin = table.style().pixelMetric(table.style().PixelMetric.PM_FocusFrameHMargin) + 1
        # the widest rate these units show fits the rate columns' cells; real values too
        for text in [*rate_texts(units), format_rate(123_456_789, units)]:
            for column in (Column.DOWN, Column.UP):
                assert metrics.horizontalAdvance(text) + 2 * margin <= header.sectionSize(column)
        control = window.limit_control(FIREFOX, Direction.DOWN)
        assert control is not None
        field = control.field
        for rate in (1_000, 1_023_000, 99_900_000, 123_456_789_0):  # "1000 B/s" in binary bytes
            text = format_limit(rate, units) + PENDING_MARK
            assert field.fontMetrics().horizontalAdvance(text) <= field.width() - 10, (
                text,
                field.width(),
            )
    bits, bytes_ = widths[UnitSystem.BITS_BINARY], widths[UnitSystem.BYTES_DECIMAL]
    # "88.8 MB/s" needs less than "1023 Mibit/s": what the columns give back goes first
    # to the sliders, up to LIMIT_SLIDER_USABLE, then all of it to the name (this
    # narrow, the Today column has given way in both)
    narrow = (Column.DOWN, Column.UP, Column.DOWN_LIMIT, Column.UP_LIMIT)
    for column in narrow:
        assert bytes_[column] < bits[column], (column, bits, bytes_)
    for column in (Column.DOWN_LIMIT, Column.UP_LIMIT):
        assert bytes_[column] == table._minimum[column] + LIMIT_SLIDER_USABLE - LIMIT_SLIDER_LEAST
    assert sum(bits[c] for c in narrow) - sum(bytes_[c] for c in narrow) >= 30, (bits, bytes_)
    assert bytes_[Column.NAME] >= table.name_wanted_width(), bytes_
    given_back = sum(bits[c] for c in narrow) - sum(bytes_[c] for c in narrow)
    assert bytes_[Column.NAME] - bits[Column.NAME] == given_back, (bits, bytes_)


def test_a_dragged_width_stays_when_the_units_change(qtbot) -> None:  # type: ignore[no-untyped-def]
    _model, window = bare_window()
    qtbot.addWidget(window)
    window.resize(1300, 500)
    window.show()
    qtbot.waitExposed(window)
    window.table.header().resizeSection(Column.DOWN, 150)  # as a drag on the divider does
    window.set_units(UnitSystem.BITS_DECIMAL)
    preferred = window.table.preferred_widths()
    assert preferred[Column.DOWN] == 150 and window.table.header().sectionSize(Column.DOWN) == 150
    assert preferred[Column.UP] == 0  # never dragged: saved as "follow the units"


def test_an_administrators_limit_reads_whole_in_the_narrowest_column(qtbot) -> None:  # type: ignore[no-untyped-def]
    """The limit column at its least (the window's least width; at 2x on 1366x768, 683 px, it was
    before its slider got LIMIT_SLIDER_USABLE): the field shows the bold
    "5.00 MB/s" whole inside the cell and the owner note gives way (to "admin"),
    where it pushed the field out of the cell ("5.00 MI")."""
    model, window = bare_window()
    qtbot.addWidget(window)
    window.set_status(HelperStatus(HelperState.CONNECTED, "", True, True))
    model.set_viewer_uid(1000)  # the administrator's rules are read-only to this user
    model.apply_snapshot(sample_applications())
    window.resize(1, 380)  # as narrow as it goes: the limit columns at their least
    window.show()
    qtbot.waitExposed(window)
    table = window.table
    least = table._minimum[Column.DOWN_LIMIT]  # and half of a vertical scroll bar's room, not shown
    spare = table.verticalScrollBar().sizeHint().width() // 2 + 1
    assert least <= table.header().sectionSize(Column.DOWN_LIMIT) <= least + spare
    window.select_application(FIREFOX)
    control = window.limit_control(FIREFOX, Direction.DOWN)
    assert control is not None and control.read_only
    qtbot.waitUntil(lambda: control.field.text() == "5.00 MB/s" and control.note.isVisible())
    cell = table.visualRect(table.proxy_index(FIREFOX, Column.DOWN_LIMIT))
    assert control.geometry() == cell
    field, note = control.field, control.note
    assert field.geometry().left() >= 0 and field.geometry().right() < control.width()
    bold = field.font()
    bold.setBold(True)
    assert QFontMetricsF(bold).horizontalAdvance(field.text()) <= field.width() - 8
    assert note.geometry().right() < field.geometry().left()
    assert note.fontMetrics().horizontalAdvance(note.text()) <= note.width()
    # A whole word, never "adm…" (what a user read there at 2x): the tooltip has the rest.
    assert note.text() in ("set by administrator", "administrator", "admin"), note.text()


def test_a_connection_row_names_its_far_end_in_a_narrow_window(qtbot) -> None:  # type: ignore[no-untyped-def]
    """At 2x on 1366x768 an expanded application's connection row read
    "tcp 10.223.230.2:5636…": the far end, what a user looks for, was cut."""
    from chadthrottle.contract import ConnectionInfo
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QFontMetrics
    from PySide6.QtWidgets import QStyleOptionViewItem

    model, window = bare_window()
    qtbot.addWidget(window)
    window.set_status(HelperStatus(HelperState.CONNECTED, "", True, True))
    model.apply_snapshot(sample_applications())
    window.resize(683, 384)
    window.show()
    qtbot.waitExposed(window)
    steam = "app:com.valvesoftware.Steam"
    table = window.table
    table.expand(table.proxy_index(steam))
    far = "10.223.230.1:6100"  # as the demo at 2x showed it
    window.show_connections(
        steam, [ConnectionInfo("tcp", "10.223.230.2:56366", far, "ESTABLISHED", 4390)]
    )
    parent = table.proxy_index(steam)
    qtbot.waitUntil(lambda: table.model().rowCount(parent) == 3)
    row = table.model().index(2, 0, parent)
    # What the name delegate hands Qt to draw, cut as Qt cuts it in the room it has.
    option = QStyleOptionViewItem()
    option.initFrom(table)
    option.rect = table.visualRect(row)
    option.widget = table
    table.name_delegate.initStyleOption(option, row)
    style = table.style()
    text_rect = style.subElementRect(style.SubElement.SE_ItemViewItemText, option, table)
    room = text_rect.width() - 2 * (style.pixelMetric(style.PixelMetric.PM_FocusFrameHMargin) + 1)
    shown = QFontMetrics(option.font).elidedText(
        option.text, Qt.TextElideMode.ElideRight, int(room)
    )
    # The far end whole, host and port: at 2x under Xvfb it read "→ 10.242.131.1:6…"
    # once the sliders had their usable room (the port, which says the service, cut).
    assert far in shown, (shown, room)


def test_a_connection_label_keeps_its_port_whole_in_any_room(qtbot) -> None:  # type: ignore[no-untyped-def]
    """However narrow the name column, a connection's far end keeps its port
    (the host cut in the middle first), an IPv6 one too; what is shown fits."""
    from chadthrottle.contract import ConnectionInfo
    from chadthrottle.gui.models.connections import fitted_connection_label
    from PySide6.QtGui import QFont

    width = QFontMetricsF(QFont()).horizontalAdvance
    for remote, port in (("192.168.100.200:51234", ":51234"), ("[2001:db8::1]:443", ":443")):
        connection = ConnectionInfo("tcp", "10.0.0.5:40000", remote, "ESTABLISHED", 7)
        for room in range(int(width("…:51234")) + 1, 400, 9):
            shown = fitted_connection_label(connection, room, width)
            assert width(shown) <= room, (shown, room)
            assert port in shown, (shown, room)
            assert remote in shown or "…" in shown, (shown, room)
    listening = ConnectionInfo("tcp", "0.0.0.0:6101", "0.0.0.0:0", "LISTEN", 7)
    assert fitted_connection_label(listening, width("0.0.0.0:6101") + 1, width) == "0.0.0.0:6101"
