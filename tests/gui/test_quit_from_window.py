"""The window's ☰ menu had no Quit (walk28, under Xvfb): closing the window
hides it in the tray, and only the tray's menu quit, which a user looking at
the window does not find. The menu's *Quit ChadThrottle* and Ctrl+Q ask the
application to quit, as the tray's Quit does. The real AppController and
window on a scripted client."""

from __future__ import annotations

from PySide6.QtCore import Qt


def test_the_window_menu_and_ctrl_q_quit(qtbot, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.gui.scripted_app import scripted_app
    from tests.gui.test_connection import ScriptedClient

    with scripted_app(ScriptedClient(), tmp_path) as app:
        app.start(show_window=True)
        window = app.window
        qtbot.waitExposed(window)
        menu = window.header.menu_button.menu()
        assert menu is not None
        (quit_action,) = [a for a in menu.actions() if a.objectName() == "quit"]
        assert quit_action.text().startswith("Quit ChadThrottle")
        assert menu.actions()[-1] is quit_action  # last, under a line, as menus end
        with qtbot.waitSignal(app.quitRequested, timeout=2000):
            quit_action.trigger()
        window.activateWindow()
        qtbot.waitUntil(window.isActiveWindow)
        with qtbot.waitSignal(app.quitRequested, timeout=2000):
            qtbot.keyClick(window.table, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)
