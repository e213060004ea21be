"""Quota answers go to the change they answer, whatever their order
(review33b G4). The worker runs each call as its own task: until gui31 the
rules flow paired answers with the changes sent by order, so a refused change
on Steam answered before a slow one on Firefox took Firefox's ask, and
Firefox's success then showed Steam's refused quota "as asked" in Steam's
dialog, with "Done." there, until a listing came. The real AppController,
RulesFlow and dialog on a scripted client: Firefox's SetQuota held until
released, Steam's refused at once, listings held after, so only the answers
can change what the dialog shows. Opening Steam's rules while Firefox's
dialog was open raised AttributeError (the closed dialog's finished had
already forgotten it)."""

from __future__ import annotations

import asyncio

from chadthrottle.client import HelperClientError
from chadthrottle.contract import ApplicationInfo, Direction, ErrorName

from tests.gui.test_connection import ScriptedClient

FIREFOX, STEAM = "app:org.mozilla.firefox", "app:com.valvesoftware.Steam"
NO_QUOTA = "No quota."


class SlowThenRefusing(ScriptedClient):
    """Firefox's quota answered once released; Steam's refused at once;
    listings wait while held (so the change's own poll brings nothing)."""

    release = False
    hold_listings = False

    async def list_applications(self) -> list[ApplicationInfo]:
        while self.hold_listings:
            await asyncio.sleep(0.01)
        return await super().list_applications()

    async def set_quota(self, app_id: str, direction: Direction | None, quota_bytes: int,
                        period: str, reset_minute: int = 0, then_rate_bps: int = 0) -> str:  # fmt: skip
        self.calls.append(("quota", app_id, quota_bytes))
        if app_id == STEAM:
            raise HelperClientError(ErrorName.INVALID_ARGUMENT, "scripted refusal")
        while not self.release:
            await asyncio.sleep(0.01)
        self.calls.append(("quota answered", app_id))
        return app_id


def test_a_late_answer_is_not_given_to_another_applications_change(qtbot, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.gui.scripted_app import scripted_app

    client = SlowThenRefusing()
    with scripted_app(client, tmp_path, refresh_s=30.0) as app:
        app.start(show_window=True)
        qtbot.waitUntil(lambda: app.model.application(STEAM) is not None, timeout=5000)
        app.window.rulesRequested.emit(FIREFOX)
        dialog = app.rules.dialog
        dialog.quota_size.setText("20MB")
        dialog.set_quota.click()
        qtbot.waitUntil(lambda: ("quota", FIREFOX, 20_000_000) in client.calls, timeout=5000)
        app.window.rulesRequested.emit(STEAM)  # Firefox's answer still to come
        steam = app.rules.dialog
        assert steam is not dialog and steam.quota_state.text().startswith(NO_QUOTA)
        steam.quota_size.setText("5MB")
        steam.set_quota.click()
        qtbot.waitUntil(lambda: "refusal" in steam.message.text(), timeout=5000)
        refused = steam.message.text()
        client.hold_listings = True
        answered: list[str] = []  # quota answers handed to the flow without error
        app.connection.callFinished.connect(
            lambda key, _r, error, _w: (
                answered.append(key) if "quota" in key and not error else None
            )
        )
        client.release = True
        qtbot.waitUntil(lambda: bool(answered), timeout=5000)  # the flow (connected first) has it
        # Steam's refused 5 MB is not shown as asked, nor "Done." said of it.
        assert steam.quota_state.text().startswith(NO_QUOTA), steam.quota_state.text()
        assert steam.message.text() == refused
        client.hold_listings = False
        steam.close()
