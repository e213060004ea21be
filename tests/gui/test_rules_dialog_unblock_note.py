"""The rules dialog's Block box, unticked, said "Done." while the download
read 0 B/s for 25 s and more (an open TCP connection goes on at its sender's
next retry: 3.2 s after a 10 s block, 24.8 s after 30 s, 47.6 s after 60 s,
walk26). It says what the status line says after the row menu's unblock:
the same words, from one place (block_choice.unblocked_words). The real
AppController and RulesFlow, on a scripted client."""

from __future__ import annotations

from chadthrottle.contract import Direction
from chadthrottle.gui.models.block_choice import RESUME_AFTER_UNBLOCK

FIREFOX = "app:org.mozilla.firefox"


def test_an_unblock_from_the_rules_dialog_says_when_open_connections_go_on(qtbot, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.gui.scripted_app import scripted_app
    from tests.gui.test_connection import ScriptedClient

    class BlockingClient(ScriptedClient):
        async def set_blocked(self, app_id: str, direction: Direction, blocked: bool) -> str:
            self.calls.append(("blocked", app_id, direction, blocked))
            return app_id

    client = BlockingClient()
    with scripted_app(client, tmp_path) as app:
        app.start(show_window=True)
        qtbot.waitUntil(lambda: app.model.application(FIREFOX) is not None, timeout=5000)
        app.window.rulesRequested.emit(FIREFOX)
        dialog = app.rules.dialog
        assert dialog is not None
        box = dialog.block_boxes[Direction.DOWN]
        assert RESUME_AFTER_UNBLOCK in " ".join(box.toolTip().split())  # said before it is chosen
        box.click()  # block
        qtbot.waitUntil(lambda: dialog.message.text() == "Done.", timeout=5000)
        assert ("blocked", FIREFOX, Direction.DOWN, True) in client.calls
        box.click()  # unblock
        qtbot.waitUntil(lambda: "unblocked" in dialog.message.text(), timeout=5000)
        assert dialog.message.text() == (
            "Firefox: download unblocked. An open connection goes on when its sender next tries: "
            "seconds after a short block, up to a minute or two after a long one."
        )
        assert ("blocked", FIREFOX, Direction.DOWN, False) in client.calls
        dialog.close()
