"""Sort arrows that point the way the rows go, in every sortable table.

QHeaderView hands a descending sort to the style as SortUp, which Fusion (and
most styles) draw pointing up: the usage view's "Total ▲" stood over the
largest total first, as the applications list's "Activity ▲" over the busiest.
Here ▼ is largest first (Z to A), ▲ smallest first, whatever the style.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHeaderView, QStyleOptionHeader, QTableView, QWidget

_SWAPPED = {
    QStyleOptionHeader.SortIndicator.SortUp: QStyleOptionHeader.SortIndicator.SortDown,
    QStyleOptionHeader.SortIndicator.SortDown: QStyleOptionHeader.SortIndicator.SortUp,
}


def arrow_for(indicator: QStyleOptionHeader.SortIndicator) -> QStyleOptionHeader.SortIndicator:
    """The arrow a sort is drawn with: QHeaderView's SortUp (a descending sort)
    as SortDown, an arrow pointing down, and the other way round."""
    return _SWAPPED.get(indicator, indicator)


class HonestArrowHeader(QHeaderView):
    """A horizontal header whose sort arrow points down over a descending sort."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(Qt.Orientation.Horizontal, parent)
        self.setSectionsClickable(True)
        self.setHighlightSections(True)

    def initStyleOptionForIndex(self, option: QStyleOptionHeader, logicalIndex: int) -> None:
        super().initStyleOptionForIndex(option, logicalIndex)
        option.sortIndicator = arrow_for(option.sortIndicator)


def use_honest_arrows(view: QTableView) -> QHeaderView:
    """Give the table a HonestArrowHeader (before its header is set up)."""
    header = HonestArrowHeader(view)
    view.setHorizontalHeader(header)
    return header
