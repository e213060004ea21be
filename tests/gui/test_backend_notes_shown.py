"""ListBackends' notes said where a user looks when shaping or priorities
misbehave. Until gui31 tc's notes (a direction policed, not shaped, and why;
no one-way reading of the upload, and why) reached only `chadthrottle-ctl
backends` and the log. The real window's status line (its link field's and
backend field's tooltips) and link dialog, offscreen."""

from __future__ import annotations

from chadthrottle.contract import BackendInfo, LinkShapingInfo
from chadthrottle.gui.models.priority_view import (
    TOOLTIP_WIDTH,
    backend_notes,
    link_summary,
    note_heads,
    tooltip_lines,
)
from chadthrottle.gui.views.link_dialog import LinkDialog
from chadthrottle.gui.views.status_line import StatusLine
from chadthrottle.units import UnitSystem

WHY = "the kernel refused the program (R2 !read_ok)"
# as the real helper said it under Xvfb (gui31's walk): its reason holds "; " too
FOREIGN = ("cthb65c47: a filter this helper did not create holds ChadThrottle's place on it (prio 0xc7ad; "
           "another ChadThrottle helper's?); it is left untouched; uploads through cthb65c47 are not shaped")  # fmt: skip
NOTES = (
    f"policed, not shaped: {FOREIGN}; "
    "no one-way reading of the upload (an estimated upload capacity is judged by round trips alone): "
    + WHY
)
TC = BackendInfo("tc", True, "", ("down", "up"), NOTES)
SHAPED = LinkShapingInfo(12_500_000, 5_000_000, 12_500_000, 5_000_000, True, True, True)


def test_the_notes_in_plain_words() -> None:
    said = backend_notes([TC, BackendInfo("ebpf", False, "no BTF", (), "ignored: not available")])
    assert len(said) == 2, said
    assert said[0].startswith("Some limits are policed, not shaped: traffic over them is dropped")
    assert f"({FOREIGN})" in said[0], said[0]
    assert said[1] == ("An estimated upload capacity is judged by round trips alone: the one-way "
                       f"reading of the upload's queue is off on this machine ({WHY}).")  # fmt: skip


def test_the_link_field_backend_field_and_dialog_say_them(qtbot) -> None:  # type: ignore[no-untyped-def]
    line = StatusLine()
    qtbot.addWidget(line)
    line.set_link(link_summary(SHAPED, UnitSystem.BYTES_DECIMAL))
    assert "policed" not in line.link.toolTip()
    line.set_backends((TC,))  # after the link: its tooltip follows
    tip = line.link.toolTip()
    for note in tooltip_lines(backend_notes([TC])):  # wrapped: plain tooltips do not wrap
        assert note in tip and note in line.backend.toolTip(), tip
    assert max(len(text) for text in tip.split("\n")) <= TOOLTIP_WIDTH + 20, tip
    assert tip.endswith("Click to change."), tip
    dialog = LinkDialog(UnitSystem.BYTES_DECIMAL)
    qtbot.addWidget(dialog)
    dialog.show_shaping(SHAPED, line.backend_notes())
    # short in the dialog (at 2x on 1366x768 it is at its height already), whole in its tooltip
    assert dialog.state.text().endswith("\n" + "\n".join(note_heads(backend_notes([TC])))), (
        dialog.state.text()
    )
    assert dialog.state.text().endswith(
        "\nSome limits are policed, not shaped (point here for why)."
        "\nAn estimated upload capacity is judged by round trips alone (point here for why)."
    ), dialog.state.text()
    assert "0xc7ad" in dialog.state.toolTip()
