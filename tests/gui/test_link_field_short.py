"""The status line's link field on a narrow status line (2x on 1366x768): it
read 'Link shaped: ▼ 12.5 MB/s ▲ 5.00 …' (now 'Link capacity: …'), the upload's unit cut; it now gives
the unit once ('▼ 12.5 ▲ 5.00 MB/s') before anything is cut."""

from __future__ import annotations

from chadthrottle.contract import LinkShapingInfo
from chadthrottle.gui.models.priority_view import link_summary
from chadthrottle.gui.views.status_line import StatusLine
from chadthrottle.units import UnitSystem

SHAPED = LinkShapingInfo(12_500_000, 5_000_000, 12_500_000, 5_000_000, False, True, True)


def test_short_text_gives_the_unit_once() -> None:
    summary = link_summary(SHAPED, UnitSystem.BYTES_DECIMAL)
    assert summary.text == "Link capacity: ▼ 12.5 MB/s ▲ 5.00 MB/s"
    assert summary.short == "Link ▼ 12.5 ▲ 5.00 MB/s"
    mixed = link_summary(LinkShapingInfo(12_500_000, 500_000, 12_500_000, 500_000, False, True, True),
                         UnitSystem.BYTES_DECIMAL)  # fmt: skip
    assert mixed.short == "Link ▼ 12.5 MB/s ▲ 500 KB/s"  # MB/s and KB/s: each its unit


def test_narrow_link_field_shows_the_short_text_whole(qtbot) -> None:  # type: ignore[no-untyped-def]
    line = StatusLine()
    qtbot.addWidget(line)
    summary = link_summary(SHAPED, UnitSystem.BYTES_DECIMAL)
    line.set_link(summary)
    field = line.link
    metrics = field.fontMetrics()
    field.resize(metrics.horizontalAdvance(summary.text) + 14, field.height())
    assert field.shown_text() == summary.text
    field.resize(metrics.horizontalAdvance(summary.short) + 14, field.height())
    assert field.shown_text() == summary.short  # was cut: "… ▲ 5.00 …"
    field.resize(metrics.horizontalAdvance("Link…") + 12, field.height())
    assert field.shown_text().endswith("…")  # narrower still: cut, the tooltip has it whole
    assert field.text() == summary.text  # what a screen reader reads stays whole


def test_at_its_least_the_link_field_keeps_its_unit(qtbot) -> None:  # type: ignore[no-untyped-def]
    """gui30, seen and left: at the window's least (588 px at 2x on 1366x768)
    the field read "Link ▼ 12.5 ▲ 5.0…", the unit its short form keeps cut
    away. Its least form, "Link ▼12.5 ▲5 MB/s", fits its least width."""
    line = StatusLine()
    qtbot.addWidget(line)
    summary = link_summary(SHAPED, UnitSystem.BYTES_DECIMAL)
    assert summary.least == "Link ▼12.5 ▲5 MB/s"
    line.set_link(summary)
    field = line.link
    field.resize(field.minimumSizeHint().width(), field.height())
    assert field.shown_text() == summary.least, field.shown_text()


def test_at_its_least_a_direction_not_in_force_is_what_it_says(qtbot) -> None:  # type: ignore[no-untyped-def]
    """Under load the helper had the upload's shaping not in force yet: at the
    window's least (2x) the field read "Link ▼ 12.5 MB/s …", the amber part cut."""
    line = StatusLine()
    qtbot.addWidget(line)
    half = LinkShapingInfo(12_500_000, 5_000_000, 12_500_000, 5_000_000, False, True, False)
    summary = link_summary(half, UnitSystem.BYTES_DECIMAL)
    assert summary.short == "Link ▼ 12.5 MB/s ▲ not in force"
    assert summary.least == "Link ▲ not in force"
    line.set_link(summary)
    field = line.link
    field.resize(field.minimumSizeHint().width(), field.height())
    assert field.shown_text() == summary.least, field.shown_text()
