"""An unticked check box can be seen in our own themes: Fusion outlines its
indicator in the window colour darker(140), 1.2:1 against the dark palette's
window and the box's base (issue 17 leftover). WCAG 1.4.11 asks 3:1 of a
control's boundary against what is around it; measured on rendered pixels."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from chadthrottle.gui.settings import Theme
from chadthrottle.gui.theme import apply_theme, contrast
from PySide6.QtCore import QRect
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QApplication, QCheckBox, QStyle, QStyleOptionButton


@pytest.fixture(autouse=True)
def _desktop_theme_again() -> Iterator[None]:
    """The theme is the whole application's: put the desktop's back for other tests."""
    yield
    apply_theme(QApplication.instance(), Theme.SYSTEM)  # type: ignore[arg-type]


def _commonest(image: QImage, points: list[tuple[int, int]]) -> QColor:
    (rgb, _count), *_ = Counter(image.pixel(x, y) for x, y in points).most_common(1)
    return QColor(rgb)


def _indicator(qtbot, enabled: bool) -> tuple[QColor, QColor, QColor]:  # type: ignore[no-untyped-def]
    """An unticked box's outline, the window beside it and its inside, as painted."""
    box = QCheckBox("Start at login")
    box.setEnabled(enabled)
    qtbot.addWidget(box)
    box.show()
    qtbot.waitExposed(box)
    option = QStyleOptionButton()
    box.initStyleOption(option)
    rect: QRect = box.style().subElementRect(QStyle.SubElement.SE_CheckBoxIndicator, option, box)
    image = box.grab().toImage()
    left, top, right, bottom = rect.left(), rect.top(), rect.right(), rect.bottom()
    edge = [(x, top) for x in range(left + 2, right - 1)] + [(x, bottom) for x in range(left + 2, right - 1)]  # fmt: skip
    edge += [(left, y) for y in range(top + 2, bottom - 1)] + [(right, y) for y in range(top + 2, bottom - 1)]  # fmt: skip
    beside = [(right + 2, y) for y in range(top, bottom + 1)]  # the gap before the label
    inside = [(x, y) for x in range(left + 3, right - 2) for y in range(top + 4, bottom - 2)]
    return _commonest(image, edge), _commonest(image, beside), _commonest(image, inside)


@pytest.mark.parametrize("theme", [Theme.DARK, Theme.LIGHT])
def test_an_unticked_box_is_outlined_at_3_to_1_against_the_window_and_its_inside(
    qtbot, theme: Theme
) -> None:  # type: ignore[no-untyped-def]
    apply_theme(QApplication.instance(), theme)  # type: ignore[arg-type]
    outline, window, inside = _indicator(qtbot, enabled=True)
    palette = QApplication.palette()
    assert window == palette.window().color() and inside == palette.base().color()
    assert contrast(outline, window) >= 3.0, (outline.name(), window.name())
    assert contrast(outline, inside) >= 3.0, (outline.name(), inside.name())


def test_a_disabled_box_stays_visible_and_dimmer_than_an_enabled_one(qtbot) -> None:  # type: ignore[no-untyped-def]
    apply_theme(QApplication.instance(), Theme.DARK)  # type: ignore[arg-type]
    enabled, window, _inside = _indicator(qtbot, enabled=True)
    disabled, _window, _inside = _indicator(qtbot, enabled=False)
    assert 1.8 <= contrast(disabled, window) < contrast(enabled, window)
