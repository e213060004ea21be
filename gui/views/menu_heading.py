"""A menu's heading: whose menu it is, in bold, above its items.

The row menu acts on the application it was opened on (docs/gui.md, "The row
menu"); its name at the top says which, also where the menu covers the row
(at 2x on 1366x768 it opened over the name it was for). Fusion draws no
section titles (QMenu.addSection), so the heading is a label of its own.
"""

from __future__ import annotations

from chadthrottle.app_names import Tell
from chadthrottle.gui.models.name_cut import fitted_name_apart
from PySide6.QtCore import Qt
from PySide6.QtGui import QFontMetrics, QPalette
from PySide6.QtWidgets import QLabel, QMenu, QStyle, QWidgetAction

HEADING_CHARS = 40  # a longer name ends in "…" (the tooltip has it whole)
ITEM_TEXT_INDENT = 28


def add_heading(
    menu: QMenu, text: str, tooltip: str = "", app_id: str = "", tell: Tell | None = None
) -> QWidgetAction:
    """A bold, plain-text line first in ``menu`` (objectName ``menu-heading``),
    then a separator. Not an item: disabled, so keys and clicks pass it by,
    but drawn in the menu's text colour, not greyed as an unavailable choice.
    A name told apart by app_id is cut keeping tell (name_cut.py): cut at the
    right, "python3.11 (exe:/tmp/words29/apps/py…" said not which (words29)."""
    label = QLabel(menu)
    label.setTextFormat(Qt.TextFormat.PlainText)  # a name is never markup
    font = label.font()
    font.setBold(True)
    label.setFont(font)
    metrics = QFontMetrics(font)
    room = metrics.averageCharWidth() * HEADING_CHARS
    shown = (
        fitted_name_apart(text, app_id, room, metrics.horizontalAdvance, tell) if app_id else text
    )
    label.setText(metrics.elidedText(shown, Qt.TextElideMode.ElideRight, room))
    label.setToolTip(tooltip or text)
    style = menu.style()
    across = style.pixelMetric(QStyle.PixelMetric.PM_MenuHMargin, None, menu)
    down = style.pixelMetric(QStyle.PixelMetric.PM_MenuVMargin, None, menu)
    # in line with the items' text: Fusion indents it by its frame (2), the check
    # column (20), a margin (3) and its panel (3, measured under Xvfb)
    label.setContentsMargins(across + ITEM_TEXT_INDENT, down + 2, across + 8, down + 2)
    palette = label.palette()
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text):
        palette.setColor(
            QPalette.ColorGroup.Disabled, role, palette.color(QPalette.ColorGroup.Active, role)
        )
    label.setPalette(palette)
    heading = QWidgetAction(menu)
    heading.setObjectName("menu-heading")
    heading.setText(text)
    heading.setDefaultWidget(label)
    heading.setEnabled(False)
    menu.addAction(heading)
    menu.addSeparator()
    return heading
