"""What the window remembers across restarts, and a first size that fits the screen.

Kept in the same QSettings as the user's settings: the window's geometry and
maximized state (``saveGeometry``), the splitter between list and graph, each
column's width, the sort column and order, the graph's time span and whether
the graph is folded. Every
value read back is checked; anything missing or garbled falls back to the
default rather than to a window that does not fit.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from chadthrottle.gui.models.columns import Column
from chadthrottle.gui.models.sort_proxy import ApplicationsProxy
from PySide6.QtCore import QByteArray, QSettings, QSize, Qt
from PySide6.QtGui import QScreen

if TYPE_CHECKING:
    from chadthrottle.gui.views.main_window import MainWindow

log = logging.getLogger(__name__)

PREFERRED_SIZE = QSize(1100, 720)
SCREEN_SHARE = 0.9  # a first window leaves some of the screen around it
FRAME_ALLOWANCE = QSize(16, 40)  # what a window manager's frame and title may take
MAX_COLUMN_WIDTH = 2000

GEOMETRY_KEY = "window/geometry"
SPLITTER_KEY = "window/splitter"
WIDTHS_KEY = "table/column_widths"
WIDTHS_LAYOUT_KEY = "table/column_widths_layout"
# The layout the saved widths are of. 2: a 0 is a column never dragged, which
# follows the units. Older widths (no layout saved) are every column's width
# of then, the wide defaults among them, and cannot be told from dragged ones:
# they are dropped.
WIDTHS_LAYOUT = 2
SORT_COLUMN_KEY = "table/sort_column"
SORT_DESCENDING_KEY = "table/sort_descending"
SPAN_KEY = "graph/span"
FOLDED_KEY = "graph/folded"


def first_size(screen: QScreen | None) -> QSize:
    """The preferred size where it fits in 90% of the screen's available area;
    on a smaller screen (2x on 1366x768 is 683x384 device-independent pixels)
    nearly all of it."""
    if screen is None:
        return PREFERRED_SIZE
    available = screen.availableGeometry().size()
    roomy = QSize(int(available.width() * SCREEN_SHARE), int(available.height() * SCREEN_SHARE))
    if PREFERRED_SIZE.width() <= roomy.width() and PREFERRED_SIZE.height() <= roomy.height():
        return PREFERRED_SIZE
    # A small screen: use nearly all of it, leaving room for a title bar.
    return PREFERRED_SIZE.boundedTo(QSize(available.width() - FRAME_ALLOWANCE.width(),
                                          available.height() - FRAME_ALLOWANCE.height()))  # fmt: skip


def save_window_state(window: MainWindow, store: QSettings) -> None:
    """Remember size, maximized state, column widths, sort order and graph span."""
    store.setValue(GEOMETRY_KEY, window.saveGeometry())
    store.setValue(SPLITTER_KEY, window.splitter.saveState())
    store.setValue(WIDTHS_KEY, [str(width) for width in window.table.preferred_widths()])
    store.setValue(WIDTHS_LAYOUT_KEY, WIDTHS_LAYOUT)
    proxy = window.table.model()
    assert isinstance(proxy, ApplicationsProxy)  # AppTable's model
    order = proxy.sortColumn(), proxy.sortOrder()
    store.setValue(SORT_COLUMN_KEY, int(order[0]))
    store.setValue(SORT_DESCENDING_KEY, order[1] == Qt.SortOrder.DescendingOrder)
    store.setValue(SPAN_KEY, window.detail.span.currentIndex())
    store.setValue(FOLDED_KEY, window.detail.folded)
    store.sync()


def restore_window_state(window: MainWindow, store: QSettings) -> None:
    """Put back what save_window_state kept; call before the window is shown."""
    geometry = store.value(GEOMETRY_KEY)
    if isinstance(geometry, QByteArray) and not geometry.isEmpty():
        if not window.restoreGeometry(geometry):
            log.info("ignoring a saved window geometry that Qt could not read")
        window.fit_to_screen()
    splitter = store.value(SPLITTER_KEY)
    if isinstance(splitter, QByteArray) and not splitter.isEmpty():
        window.splitter.restoreState(splitter)
    widths = _int_list(store.value(WIDTHS_KEY))
    if widths and _int(store.value(WIDTHS_LAYOUT_KEY), 1) != WIDTHS_LAYOUT:
        log.info("dropping column widths saved by an older version: they follow the units")
        widths = []
    if len(widths) == len(Column):
        window.table.set_preferred_widths([min(max(w, 0), MAX_COLUMN_WIDTH) for w in widths])
    column = _int(store.value(SORT_COLUMN_KEY), -2)
    if 0 <= column < len(Column):
        descending = str(store.value(SORT_DESCENDING_KEY, "true")).lower() in ("true", "1")
        window.table.sortByColumn(
            column, Qt.SortOrder.DescendingOrder if descending else Qt.SortOrder.AscendingOrder
        )
    span = _int(store.value(SPAN_KEY), -1)
    if 0 <= span < window.detail.span.count():
        window.detail.span.setCurrentIndex(span)
    folded = str(store.value(FOLDED_KEY, "")).lower()
    if folded in ("true", "false"):  # the user's choice; else decided on the first showing
        window.detail.set_folded(folded == "true")
        window.fold_decided = True


def _int(value: object, default: int) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return default


def _int_list(value: object) -> list[int]:
    """QSettings gives a list back, a lone string for one item, or None."""
    items = value if isinstance(value, list) else [] if value is None else [value]
    numbers = [_int(item, -1) for item in items]
    return numbers if all(n >= 0 for n in numbers) else []
