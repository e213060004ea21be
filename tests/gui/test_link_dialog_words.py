"""The link capacity dialog as a new user meets it: 'unlimited' (which the
parse error itself suggests) reads as that direction not shaped, not as an
out-of-range rate; the dialog does not tell the user to 'click to set it' when
they are in it; its error line stays readable in the dark theme."""

from __future__ import annotations

from chadthrottle.contract import ESTIMATE_COST, Direction, LinkShapingInfo
from chadthrottle.gui.theme import dark_palette
from chadthrottle.gui.views.link_dialog import LinkDialog
from chadthrottle.units import UnitSystem
from PySide6.QtGui import QColor, QPalette

from tests.gui.test_warning_amber_contrast import contrast


def test_unlimited_means_not_shaped(qtbot) -> None:  # type: ignore[no-untyped-def]
    dialog = LinkDialog(UnitSystem.BYTES_DECIMAL)
    qtbot.addWidget(dialog)
    dialog.edits[Direction.DOWN].setText("unlimited")
    dialog.edits[Direction.UP].setText("2M")
    with qtbot.waitSignal(dialog.capacityRequested) as sent:
        dialog.apply.click()
    assert sent.args == [0, 2_000_000, False]


def test_no_click_hint_inside_the_dialog(qtbot) -> None:  # type: ignore[no-untyped-def]
    dialog = LinkDialog(UnitSystem.BYTES_DECIMAL)
    qtbot.addWidget(dialog)
    dialog.show_shaping(LinkShapingInfo(problem="no link capacity is set: priorities need it"))
    assert "No link capacity is set" in dialog.state.text() and "Click" not in dialog.state.text()
    dialog.show_shaping(
        LinkShapingInfo(12_500_000, 5_000_000, 12_500_000, 5_000_000, False, True, True)
    )
    assert (
        "Upload: capacity 5.00 MB/s, in force" in dialog.state.text()
        and "Click" not in dialog.state.text()
    )


def test_the_interfaces_are_named_in_words_a_user_knows(qtbot) -> None:  # type: ignore[no-untyped-def]
    """Under Xvfb the dialog and the link field's tooltip said "Uplinks:
    cth8848e6": a word of ours; the dialog's own text speaks of the network
    card (walk26, shots/10-link-set.png)."""
    dialog = LinkDialog(UnitSystem.BYTES_DECIMAL)
    qtbot.addWidget(dialog)
    one = LinkShapingInfo(4_000_000, 0, 4_000_000, 0, False, True, False, interfaces=("eth0",))
    dialog.show_shaping(one)
    assert "Paced on network interface: eth0" in dialog.state.text(), dialog.state.text()
    assert "Uplink" not in dialog.state.text()
    two = LinkShapingInfo(
        4_000_000, 0, 4_000_000, 0, False, True, False, interfaces=("eth0", "wlan0")
    )
    dialog.show_shaping(two)
    assert "Paced on network interfaces: eth0, wlan0" in dialog.state.text()


def test_error_line_reads_on_dark(qtbot) -> None:  # type: ignore[no-untyped-def]
    dialog = LinkDialog(UnitSystem.BYTES_DECIMAL)
    qtbot.addWidget(dialog)
    dialog.setPalette(dark_palette())
    dialog.edits[Direction.DOWN].setText("abc")
    dialog.apply.click()
    colour = QColor(dialog.message.styleSheet().removeprefix("color: ").strip("; "))
    assert "not a rate" in dialog.message.text() and colour.isValid()
    assert contrast(colour, dark_palette().color(QPalette.ColorRole.Window)) >= 4.5


def test_empty_fields_show_the_form_in_the_windows_units(qtbot) -> None:  # type: ignore[no-untyped-def]
    for units, example in (
        (UnitSystem.BYTES_DECIMAL, "6.25 MB/s"),
        (UnitSystem.BITS_DECIMAL, "50.0 Mbit/s"),
    ):
        dialog = LinkDialog(units)
        qtbot.addWidget(dialog)
        assert dialog.edits[Direction.DOWN].placeholderText() == f"not set (e.g. {example})"


def test_the_estimate_choice_says_what_it_costs_the_calls(qtbot) -> None:  # type: ignore[no-untyped-def]
    """Estimation probes past the link's rate now and then (call p99 ~0.1-0.2 s
    while it does): the choice's tooltip says so, in the contract's words."""
    dialog = LinkDialog(UnitSystem.BYTES_DECIMAL)
    qtbot.addWidget(dialog)
    assert " ".join(dialog.estimate.toolTip().split()) == ESTIMATE_COST


def test_no_capacity_is_said_once(qtbot) -> None:  # type: ignore[no-untyped-def]
    """The helper's problem then says what the line says: the dialog and the
    status line's tooltip say it once; another problem is still told."""
    from chadthrottle.gui.models.priority_view import link_summary
    from chadthrottle.gui.views.status_line import StatusLine

    dialog = LinkDialog(UnitSystem.BYTES_DECIMAL)
    qtbot.addWidget(dialog)
    line = StatusLine()
    qtbot.addWidget(line)
    unset = LinkShapingInfo(problem="no link capacity is set: priorities need it")
    dialog.show_shaping(unset)
    line.set_link(link_summary(unset, UnitSystem.BYTES_DECIMAL))
    for text in (dialog.state.text(), line.link.toolTip()):
        assert text.casefold().count("no link capacity is set") == 1, text
        assert "Problem" not in text, text
    assert line.link.styleSheet()  # still amber: the helper says priorities wait for it
    dialog.show_shaping(LinkShapingInfo(problem="upload: no IFB"))
    assert "No link capacity is set" in dialog.state.text()
    assert "Problem: upload: no IFB." in dialog.state.text()


def test_turn_shaping_off_only_while_something_is_shaped(qtbot) -> None:  # type: ignore[no-untyped-def]
    """Under Xvfb the dialog said 'No link capacity is set' above an enabled
    'Turn shaping off' (now 'Clear capacity'), which asked the helper to stop what was
    not running."""
    dialog = LinkDialog(UnitSystem.BYTES_DECIMAL)
    qtbot.addWidget(dialog)
    dialog.show_shaping(LinkShapingInfo(problem="no link capacity is set: priorities need it"))
    assert not dialog.off.isEnabled()
    assert "no capacity is set" in dialog.off.toolTip().casefold()
    dialog.show_shaping(LinkShapingInfo(20_000_000, 0, 20_000_000, 0, False, True, False))
    assert dialog.off.isEnabled()
    dialog.show_shaping(LinkShapingInfo(estimate=True))  # estimating, nothing measured yet
    assert dialog.off.isEnabled()
