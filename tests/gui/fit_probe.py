"""Show the main window with sample data as the application sizes it, and print
where its parts ended up (JSON), for test_window_fit. Run in a subprocess so
each screen size and scale factor gets its own QApplication:

    QT_QPA_PLATFORM='offscreen:size=1366x768' QT_SCALE_FACTOR=2 python -m tests.gui.fit_probe
"""

from __future__ import annotations

import dataclasses
import json
import sys

from chadthrottle.contract import (
    ApplicationInfo,
    BackendInfo,
    ConnectionInfo,
    Direction,
    LinkShapingInfo,
)
from chadthrottle.gui.controller import NO_TRAY_NOTICE, NO_TRAY_SHORT
from chadthrottle.gui.ipc.state import HelperState, HelperStatus
from chadthrottle.gui.models.applications import ApplicationsModel
from chadthrottle.gui.models.columns import Column
from chadthrottle.gui.models.icons import IconProvider
from chadthrottle.gui.models.priority_view import link_summary
from chadthrottle.gui.models.sort_proxy import ApplicationsProxy
from chadthrottle.gui.settings import Settings
from chadthrottle.gui.views.app_table import AppTable
from chadthrottle.gui.views.main_window import MainWindow
from chadthrottle.gui.widgets.limit_slider import fitting_line
from chadthrottle.units import UnitSystem
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QFont, QFontMetrics
from PySide6.QtWidgets import QApplication, QStyle, QStyleOptionHeader, QWidget

from tests.gui.sample_data import sample_applications


def _rect(widget: QWidget, window: QWidget) -> list[int]:
    top_left = widget.mapTo(window, widget.rect().topLeft())
    rect = QRect(top_left, widget.size())
    return [rect.left(), rect.top(), rect.right(), rect.bottom()]


QUOTA_APP = "app:com.dropbox.Client"


def quota_applications() -> list[ApplicationInfo]:
    """The samples, Dropbox with the longest usual quota lines: 1.25 GB left this
    month down, a monthly one used up and throttled up."""
    return [dataclasses.replace(a, down_quota_bytes=5 * 10**9, down_quota_left_bytes=1_250_000_000,
                                down_quota_period="month", up_limit_bps=100_000, up_quota_bytes=2 * 10**9,
                                up_quota_left_bytes=0, up_quota_period="month")
            if a.id == QUOTA_APP else a for a in sample_applications()]  # fmt: skip


def quota_report(window: MainWindow, model: ApplicationsModel) -> dict[str, dict[str, object]]:
    """Per direction: the open control's quota line (text, whether it is cut,
    whether the field is whole above it) and the line a painted row would take."""
    report = {}
    for direction in Direction:
        control = window.limit_control(QUOTA_APP, direction)
        assert control is not None
        label, field = control.quota, control.field
        state = model.limit_state(QUOTA_APP, direction)
        width = window.table.header().sectionSize(
            Column.DOWN_LIMIT if direction is Direction.DOWN else Column.UP_LIMIT
        )
        painted = fitting_line(state.quota_lines, QFontMetrics(label.font()), width - 4)
        report[direction.value] = {
            "text": label.text(),
            "visible": label.isVisible(),
            "cut": label.width() < label.fontMetrics().horizontalAdvance(label.text())
            or label.geometry().bottom() >= control.height(),
            "field_whole": field.geometry().top() >= 0
            and field.geometry().bottom() < label.geometry().top()
            and field.height() >= field.sizeHint().height(),
            "painted": painted,
            "painted_fits": QFontMetrics(label.font()).horizontalAdvance(painted) <= width - 4,
        }
    return report


def cut_titles(table: AppTable) -> dict[str, str]:
    """Each column title as the style would draw it in its section now, with a sort
    arrow (any column can be sorted by): the label's room from the style, the text
    cut to it with the header's QFontMetrics. Only the ones that do not read whole."""
    header = table.header()
    cut = {}
    for column in Column:
        if header.isSectionHidden(column):
            continue
        option = sorted_title_option(table, column)
        label = header.style().subElementRect(QStyle.SubElement.SE_HeaderLabel, option, header)
        shown = header.fontMetrics().elidedText(
            option.text, Qt.TextElideMode.ElideRight, label.width()
        )
        if shown != option.text:
            cut[column.name] = shown
    return cut


def sorted_title_option(table: AppTable, column: Column) -> QStyleOptionHeader:
    """The style option a column's title is drawn with, sorted by it (the arrow shown)."""
    header = table.header()
    option = QStyleOptionHeader()
    option.initFrom(header)
    option.state |= QStyle.StateFlag.State_Horizontal
    option.rect = QRect(0, 0, header.sectionSize(column), table.overall.title_height())
    option.text = str(table.model().headerData(column, Qt.Orientation.Horizontal))
    option.sortIndicator = QStyleOptionHeader.SortIndicator.SortDown
    option.section = column
    return option


def titles_on_arrow(table: AppTable) -> dict[str, tuple[int, int]]:
    """Each column title that the sort arrow would be drawn over, as the style
    places both (Fusion's label room runs under its arrow: at 2x on 1366x768
    "Activity" touched its arrow): {column: (text's right end, arrow's left)}."""
    header = table.header()
    touching = {}
    for column in Column:
        if header.isSectionHidden(column):
            continue
        option = sorted_title_option(table, column)
        style = header.style()
        label = style.subElementRect(QStyle.SubElement.SE_HeaderLabel, option, header)
        arrow = style.subElementRect(QStyle.SubElement.SE_HeaderArrow, option, header)
        text = str(table.model().headerData(column, Qt.Orientation.Horizontal))
        width = min(header.fontMetrics().horizontalAdvance(text), label.width())
        aligned = table.model().headerData(column, Qt.Orientation.Horizontal,
                                           Qt.ItemDataRole.TextAlignmentRole)  # fmt: skip
        flags = Qt.AlignmentFlag(aligned) if aligned is not None else header.defaultAlignment()
        if flags & Qt.AlignmentFlag.AlignRight:
            right = label.x() + label.width()
        elif flags & Qt.AlignmentFlag.AlignHCenter:
            right = label.x() + (label.width() + width + 1) // 2
        else:
            right = label.x() + width
        if right > arrow.x():
            touching[column.name] = (right, arrow.x())
    return touching


def overall_name_shown(table: AppTable) -> str:
    """The overall row's name as painted: bold, in the name column's cell."""
    bold = QFont(table.overall.font())
    bold.setBold(True)
    rect = QRect(0, 0, table.header().sectionSize(Column.NAME), 30)
    return table.overall.overall_cell(rect, Column.NAME, QFontMetrics(bold))[1]


def least_report(window: MainWindow, app: QApplication) -> dict[str, object]:
    """The window at its least: the open limit control's slider (shown, its width)
    and whether the painted rows draw one, per limit column (gui22's walk: a 34 px
    stub of a slider and a wide gap before "none" at 640x420)."""
    window.resize(window.minimumSizeHint())
    for _ in range(5):
        app.processEvents()
    header, columns = window.table.header(), {}
    for direction, column in ((Direction.DOWN, Column.DOWN_LIMIT), (Direction.UP, Column.UP_LIMIT)):
        control = window.limit_control(QUOTA_APP, direction)
        assert control is not None
        columns[direction.value] = {
            "width": header.sectionSize(column),
            "slider_shown": control.slider.isVisible(),
            "slider_width": control.slider.width(),
            "field_right": control.field.geometry().right(),
            "control_width": control.width(),
        }
    return {"window": [window.width(), window.height()], "columns": columns}


def main() -> int:
    app = QApplication(sys.argv[:1])
    model = ApplicationsModel(IconProvider())
    proxy = ApplicationsProxy()
    proxy.setSourceModel(model)
    proxy.sort_by_activity()
    window = MainWindow(model, proxy, Settings())
    window.set_status(HelperStatus(HelperState.CONNECTED, "", True, True))
    window.set_backends(
        (BackendInfo("ebpf", True, "", ("down",)), BackendInfo("tc", True, "", ("up",)))
    )
    for _ in range(3):
        model.apply_snapshot(quota_applications())
    # the longest message the application shows at start, as the controller shows it
    window.show_message(NO_TRAY_NOTICE, 20000, short=NO_TRAY_SHORT)
    # The link field at its longest usual width (issue 16): estimated, in bits, partly in force.
    window.status_line.set_link(link_summary(LinkShapingInfo(60_000_000, 12_500_000, 0, 0, True, True, False),
                                             UnitSystem.BITS_DECIMAL))  # fmt: skip
    window.show()
    for _ in range(5):
        app.processEvents()
    window.select_application(QUOTA_APP)  # its open control and the detail pane's quota notes
    for _ in range(5):
        app.processEvents()
    table = window.table
    header = table.header()
    status = window.status_line
    available = window.screen().availableGeometry()
    report = {
        "scale": window.devicePixelRatioF(),
        "available": [available.left(), available.top(), available.right(), available.bottom()],
        "frame": [
            window.frameGeometry().left(),
            window.frameGeometry().top(),
            window.frameGeometry().right(),
            window.frameGeometry().bottom(),
        ],
        "window": [window.width(), window.height()],
        "minimum": [window.minimumSizeHint().width(), window.minimumSizeHint().height()],
        "viewport_width": table.viewport().width(),
        "horizontal_scroll": table.horizontalScrollBar().isVisible(),
        "columns": {
            Column(c).name: [header.sectionViewportPosition(c), header.sectionSize(c)]
            for c in range(len(Column))
        },
        "name_minimum": table.name_minimum_width(),
        "row_height": table.visualRect(proxy.index(0, 0)).height(),
        "list_rows": table.viewport().height() / table.visualRect(proxy.index(0, 0)).height(),
        "graph_folded": window.detail.folded,
        "font_height": table.fontMetrics().height(),
        "parts": {
            "menu_button": _rect(window.header.menu_button, window),
            "totals": _rect(window.header.totals, window),
            "filter": _rect(window.header.filter, window),
            "fold": _rect(window.detail.fold_button, window),
            "status_bar": _rect(status, window),
            **{
                name: _rect(label, window)
                for name, label in (
                    ("backend", status.backend),
                    ("helper", status.helper),
                    ("limits", status.limits),
                    ("link", status.link),
                )
            },
        },
        "cut_labels": [
            name
            for name, label in (
                ("totals", window.header.totals),
                ("backend", status.backend),
                ("helper", status.helper),
                ("limits", status.limits),
            )
            if label.width() < label.sizeHint().width()
        ],
        "message_shown": status.message.shown_text(),
        "quota": quota_report(window, model),
        "cut_titles": cut_titles(table),
        "titles_on_arrow": titles_on_arrow(table),
        "overall_name": overall_name_shown(table),
        "overall_shown": table.overall.overall_shown,
    }
    # The graph, open (as it starts on a roomy screen, or once unfolded on a short
    # one), the application's connection known (its line under the graph, whole)
    window.show_connections(QUOTA_APP, [ConnectionInfo("tcp", "10.0.0.5:40000", "192.0.2.7:443",
                                                       "ESTABLISHED", 7, 1000, 1000)])  # fmt: skip
    if window.detail.folded:
        window.detail.fold_button.click()  # as the user opens it
    for _ in range(5):
        app.processEvents()
    graphs = window.detail.graphs.values()
    report["unfolded"] = {
        "graph_visible": window.detail.plot.isVisible(),
        "graph": _rect(window.detail.plot, window),
        "span": _rect(window.detail.span, window),
        "list_rows": table.viewport().height() / table.visualRect(proxy.index(0, 0)).height()
        + (1 if table.overall.overall_shown else 0),  # the "All applications" row is one
        "compact": window.detail.compact,
        "lanes": [round(graph.item.getViewBox().height()) for graph in graphs],
        "time_axis": any(graph.item.getAxis("bottom").isVisible() for graph in graphs),
        # the notes' lines past the first, in rows of the list: whole (gui18), they
        # take them from the list
        "notes_rows": max(
            0,
            window.detail.notes_box.height()
            - window.detail.limit_notes.fontMetrics().lineSpacing(),
        )
        / table.visualRect(proxy.index(0, 0)).height()
        if window.detail.notes_box.isVisible()
        else 0,
    }
    report["least"] = least_report(window, app)
    print(json.dumps(report))
    window.deleteLater()
    app.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())
