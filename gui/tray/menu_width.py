"""How wide the tray menu is: its entries' names and rates, nothing more, and
with long names no wider than leaves its submenu room beside it on the screen
(names cut to fit).

Under Xvfb at 2x on a 1366x768 screen the menu was 82% of the screen wide
with short names. Two causes: QMenu adds the widest rates column ("▼ 25.2
KB/s  ▲ 4.13 MB/s", after the tab) to each entry's width and Fusion adds it
again (sizeFromContents counts reservedShortcutWidth), so a gap as wide as
the rates stood between the names and the rates; and a name of 36 characters
at 2x is a third of the screen by itself.
"""

from __future__ import annotations

from PySide6.QtCore import QSize
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import (
    QApplication,
    QProxyStyle,
    QStyle,
    QStyleFactory,
    QStyleOption,
    QStyleOptionMenuItem,
    QWidget,
)

# The menu at most this share of its screen's width.
MENU_SCREEN_SHARE = 0.6
# A name is never cut shorter than this many average characters.
MENU_NAME_LEAST_CHARS = 12


class RatesCountedOnce(QProxyStyle):
    """The application's style, with a menu entry's rates (the text after its
    tab) counted once in its width: QMenu adds them itself."""

    def sizeFromContents(
        self,
        type: QStyle.ContentsType,
        option: QStyleOption,
        size: QSize,
        widget: QWidget | None = None,
    ) -> QSize:
        if type == QStyle.ContentsType.CT_MenuItem and isinstance(option, QStyleOptionMenuItem):
            option = QStyleOptionMenuItem(option)
            option.reservedShortcutWidth = 0
        return super().sizeFromContents(type, option, size, widget)  # type: ignore[arg-type]


def menu_style(current: RatesCountedOnce | None) -> RatesCountedOnce:
    """The menu's style over the application's (again after a theme was chosen);
    ``current`` is kept while the application's style is the same. Over a new
    instance of that style: given the application's own, QProxyStyle would take
    ownership of it."""
    style = QApplication.style()
    while not style.name() and isinstance(style, QProxyStyle):  # ours: OutlinedFusion
        style = style.baseStyle()
    name = style.name()
    if current is not None and current.baseStyle().name() == name:
        return current
    return RatesCountedOnce(QStyleFactory.create(name))


def name_room(metrics: QFontMetrics, screen_width: int, widest_rest: int, most_chars: int,
              beside: int | None = None) -> int:  # fmt: skip
    """The pixels a name and its marker (" (limited)") may take: what is left
    beside the widest rates (widest_rest) and the entry's check column, margins
    and arrow (about four lines' height) of the screen less its widest submenu
    (``beside``), which opens beside the menu, and a line's height each side;
    without ``beside``, of MENU_SCREEN_SHARE of the screen. Never more than
    most_chars nor less than MENU_NAME_LEAST_CHARS average characters. Until
    gui36 always the share: at 2x on 1366x768 *Parcel Upd… (download blocked)*
    in a menu of 794 px with 250 px of the screen left beside its submenu."""
    average = metrics.averageCharWidth()
    menu = (
        int(screen_width * MENU_SCREEN_SHARE)
        if beside is None
        else screen_width - beside - 2 * metrics.height()
    )
    left = menu - widest_rest - 4 * metrics.height()
    return min(average * most_chars, max(average * MENU_NAME_LEAST_CHARS, left))
