"""The filter box at the window's least (1x and 2x on 1366x768, gui31's
walk under Xvfb): its placeholder read "Filter apps…  (C…", cut in the
middle of its shortcut. Narrower than its words it says "Filter apps…"."""

from __future__ import annotations

from chadthrottle.gui.views.header_bar import FILTER_SHORT, FILTER_WORDS, FilterField


def test_a_narrow_filter_box_says_its_words_short(qtbot) -> None:  # type: ignore[no-untyped-def]
    field = FilterField()
    qtbot.addWidget(field)
    whole = field.fontMetrics().horizontalAdvance(FILTER_WORDS)
    field.resize(whole + 40, field.sizeHint().height())
    field.show()
    qtbot.waitUntil(lambda: field.placeholderText() == FILTER_WORDS)
    field.resize(whole - 20, field.height())
    qtbot.waitUntil(lambda: field.placeholderText() == FILTER_SHORT)
    assert field.fontMetrics().horizontalAdvance(FILTER_SHORT) <= field.width() - 16
    field.resize(whole + 40, field.height())
    qtbot.waitUntil(lambda: field.placeholderText() == FILTER_WORDS)
