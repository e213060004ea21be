"""The usage view's name cells as a user sees them: the real dialog at half of
1366x768, today's rows shown, each cell's text as its delegate draws it."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from tests.gui.usage_rows import row


def usage_name_cells(
    qtbot,
    moved: Sequence[tuple[str, int]],
    name_of: Callable[[str], str],  # type: ignore[no-untyped-def]
) -> list[tuple[str, bool]]:
    """Each row's name cell (busiest first): its text, and whether it fits its cell.
    `moved` is each application id with the bytes it moved this hour."""
    from chadthrottle.gui.models.usage_periods import UsagePeriod
    from chadthrottle.gui.models.usage_table import UsageColumn
    from chadthrottle.gui.views.usage_dialog import UsageDialog
    from chadthrottle.units import UnitSystem
    from PySide6.QtWidgets import QStyleOptionViewItem

    dialog = UsageDialog(UsagePeriod.TODAY)
    qtbot.addWidget(dialog)
    dialog.resize(683, 384)
    dialog.show()
    qtbot.waitExposed(dialog)
    now = time.time()
    start = int(now) // 3600 * 3600
    rows = [row(app_id, start, 600, down) for app_id, down in moved]
    dialog.show_rows(UsagePeriod.TODAY, rows, now, name_of, UnitSystem.BYTES_DECIMAL)
    table, cells = dialog.table, []
    for r in range(dialog.table_model.rowCount()):
        index = dialog.table_model.index(r, UsageColumn.NAME)
        option = QStyleOptionViewItem()
        option.initFrom(table)
        option.rect = table.visualRect(index)
        table.itemDelegateForIndex(index).initStyleOption(option, index)
        fits = option.fontMetrics.horizontalAdvance(option.text) <= option.rect.width()
        cells.append((option.text, fits))
    return cells
