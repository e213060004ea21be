"""First start: the pane under the list is not a blank part of the window.

Before any application is shown (no helper yet, or none selected) the graph
and the connections are not there; under Xvfb at 1366x768 that left about two
fifths of the window empty under the "Graph" line. A note stands in the
graph's place and says what will show there."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel

from tests.gui.bare_window import shown_connected_window
from tests.gui.sample_data import sample_applications


def _words_in_graph_place(window) -> str:  # type: ignore[no-untyped-def]
    """The visible text inside the pane's graph-and-connections area."""
    return " ".join(
        label.text() for label in window.detail.split.findChildren(QLabel) if label.isVisible()
    )


def test_before_any_application_the_graph_place_says_what_will_show_there(qtbot) -> None:  # type: ignore[no-untyped-def]
    model, window = shown_connected_window(1100, 720)
    qtbot.addWidget(window)
    qtbot.waitExposed(window)
    window.detail.refresh()
    assert not window.detail.folded and not window.detail.plot.isVisible()
    assert "the one you select shows here" in _words_in_graph_place(window)
    # the note takes the graph's place, not a line of it: the pane is not blank
    note = window.detail.empty_note
    assert note.height() >= window.detail.split.height() // 2

    model.apply_snapshot(sample_applications())
    window.detail.show_application("")  # listed, none chosen
    assert "Select an application in the list" in _words_in_graph_place(window)

    app_id = sample_applications()[0].id
    window.detail.show_application(app_id)
    assert window.detail.plot.isVisible() and not note.isVisible()  # the graph itself now
