"""The amber of a priority that is not in force (its badge) and of the status
line's warnings stays readable in the dark theme: #c64600 read 2.9:1 on the
dark rows and status bar (WCAG asks 4.5:1 for text this small); in the light
theme it read 4.27:1 on the status bar (#efefef)."""

from __future__ import annotations

from chadthrottle.gui.models.priority_view import LinkSummary
from chadthrottle.gui.settings import Theme
from chadthrottle.gui.theme import apply_theme, contrast, dark_palette
from chadthrottle.gui.views.status_line import StatusLine
from chadthrottle.gui.widgets.limit_slider import problem_colour
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication, QStyleFactory


def _amber_reads_on(palette: QPalette) -> None:
    """The status line's warning on the window colour, a limit's on the rows: WCAG 4.5:1."""
    amber = QColor(problem_colour(palette))
    for role in (
        QPalette.ColorRole.Window,
        QPalette.ColorRole.Base,
        QPalette.ColorRole.AlternateBase,
    ):
        assert contrast(amber, palette.color(role)) >= 4.5, role


def test_problem_amber_reads_on_the_dark_theme() -> None:
    _amber_reads_on(dark_palette())


def test_status_line_warning_follows_the_theme(qtbot) -> None:  # type: ignore[no-untyped-def]
    app = QApplication.instance()
    assert app is not None
    line = StatusLine()
    qtbot.addWidget(line)
    line.set_link(LinkSummary("Link: not shaped", "No link capacity is set.", warning=True))
    light = line.link.styleSheet()
    try:
        apply_theme(app, Theme.DARK)
        line.follow_palette()  # as MainWindow.follow_palette does after Settings → Theme
        assert problem_colour(dark_palette()) in line.link.styleSheet()
    finally:
        apply_theme(app, Theme.SYSTEM)  # as found
    line.follow_palette()
    assert line.link.styleSheet() == light
    line.set_link(LinkSummary("Link capacity: ▼ 6.00 MB/s", "in force", warning=False))
    assert line.link.styleSheet() == ""


def test_problem_amber_reads_on_the_light_theme() -> None:
    """Fusion's light palette, as Settings → Theme → Light sets it: the status
    line's warning on the window colour, a limit's on the rows."""
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    light = QStyleFactory.create("Fusion").standardPalette()
    assert light.color(QPalette.ColorRole.Window).name() == "#efefef"  # what was measured
    _amber_reads_on(light)


def test_an_open_limit_control_takes_the_dark_amber(qtbot) -> None:  # type: ignore[no-untyped-def]
    """Seen on screen (Settings → Theme → Dark, a real limit not met): the
    selected row's open control kept the light amber #b34000, 1.7:1 on the dark
    selection, while the painted rows took the dark one. The real window."""
    import dataclasses

    from chadthrottle.contract import Direction

    from tests.gui.bare_window import bare_window
    from tests.gui.sample_data import sample_applications

    app = QApplication.instance()
    assert isinstance(app, QApplication)
    dropbox = "app:com.dropbox.Client"
    model, window = bare_window()
    qtbot.addWidget(window)
    from chadthrottle.gui.ipc.state import HelperState, HelperStatus

    window.set_status(HelperStatus(HelperState.CONNECTED, "", True, True))
    model.apply_snapshot([dataclasses.replace(a, up_limit_problem="not met: measured 9.10 MB/s, above the "
                                              "limit for 6 s") if a.id == dropbox else a
                          for a in sample_applications()])  # fmt: skip
    window.show()
    qtbot.waitExposed(window)
    window.select_application(dropbox)
    control = window.limit_control(dropbox, Direction.UP)
    assert control is not None and control.field.property("problem")
    assert problem_colour(app.palette()) in control.field.styleSheet()
    try:
        apply_theme(app, Theme.DARK)
        window.follow_palette()  # as the controller does after Settings → Theme
        control = window.limit_control(dropbox, Direction.UP)
        assert control is not None
        dark_amber = problem_colour(dark_palette())
        assert dark_amber in control.field.styleSheet(), control.field.styleSheet()
        selection = window.table.palette().color(QPalette.ColorRole.Highlight)
        assert contrast(QColor(dark_amber), selection) >= 3.5, selection.name()
    finally:
        apply_theme(app, Theme.SYSTEM)  # as found
        window.follow_palette()
