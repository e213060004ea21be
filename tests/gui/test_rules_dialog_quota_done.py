"""The rules dialog said "Done." after Set quota while its Block and quota
tab still read "No quota. A new quota counts from when it is set." with
Remove quota greyed, until the next poll about a second later (walk28, under
Xvfb with the real helper): it said the quota was set beside words saying
there was none. "Done." now comes with the listing that shows the change.
The real AppController and RulesFlow, on a scripted client whose listing
shows a quota once it is set; polls far apart, so only the change's own poll
can bring it."""

from __future__ import annotations

import dataclasses

from chadthrottle.client import HelperClientError
from chadthrottle.contract import ApplicationInfo, Direction

from tests.gui.sample_data import sample_applications
from tests.gui.test_connection import ScriptedClient

FIREFOX = "app:org.mozilla.firefox"
NO_QUOTA = "No quota."
NO_REPLY = "org.freedesktop.DBus.Error.NoReply"


class QuotaClient(ScriptedClient):
    """Lists Firefox's download quota once set; polls fail while failing is set."""

    quota: tuple[int, str] | None = None
    failing = False

    async def list_applications(self) -> list[ApplicationInfo]:
        if self.failing:
            raise HelperClientError(NO_REPLY, "scripted")
        apps = sample_applications()
        if self.quota is None:
            return apps
        size, period = self.quota
        return [dataclasses.replace(app, down_quota_bytes=size, down_quota_left_bytes=size,
                                    down_quota_period=period) if app.id == FIREFOX else app
                for app in apps]  # fmt: skip

    async def set_quota(self, app_id: str, direction: Direction | None, quota_bytes: int,
                        period: str, reset_minute: int = 0, then_rate_bps: int = 0) -> str:  # fmt: skip
        self.calls.append(("quota", app_id, direction, quota_bytes, period))
        self.quota = (quota_bytes, period)
        return app_id

    async def clear_quota(self, app_id: str, direction: Direction | None = None) -> str:
        self.calls.append(("clear quota", app_id, direction))
        self.quota = None
        return app_id


def _rules_dialog_of_firefox(qtbot, app):  # type: ignore[no-untyped-def]
    """The window shown, Firefox listed, its rules dialog opened with no quota."""
    app.start(show_window=True)
    qtbot.waitUntil(lambda: app.model.application(FIREFOX) is not None, timeout=5000)
    app.window.rulesRequested.emit(FIREFOX)
    dialog = app.rules.dialog
    assert dialog is not None
    assert dialog.quota_state.text().startswith(NO_QUOTA)
    return dialog


def test_done_after_set_quota_comes_with_the_quota_shown(qtbot, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.gui.scripted_app import scripted_app

    client = QuotaClient()
    with scripted_app(client, tmp_path, refresh_s=30.0) as app:
        dialog = _rules_dialog_of_firefox(qtbot, app)
        dialog.quota_size.setText("20MB")
        dialog.set_quota.click()
        qtbot.waitUntil(lambda: dialog.message.text() == "Done.", timeout=5000)
        assert client.calls[-1][:2] == ("quota", FIREFOX)
        assert "20.0 MB" in dialog.quota_state.text(), dialog.quota_state.text()
        assert dialog.clear_quota.isEnabled()
        dialog.message.setText("")
        dialog.clear_quota.click()
        qtbot.waitUntil(lambda: dialog.message.text() == "Done.", timeout=5000)
        assert client.calls[-1][:2] == ("clear quota", FIREFOX)
        assert dialog.quota_state.text().startswith(NO_QUOTA), dialog.quota_state.text()
        dialog.close()


def test_done_comes_with_the_answer_and_a_failed_poll_after_is_said_as_one(qtbot, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The poll after Set quota failed (the helper slow to answer a listing):
    the dialog never said "Done." of the quota the helper had set, only "The
    helper did not answer in time.", as if the change had failed. "Done." now
    comes with the helper's answer, the quota shown as asked; the failed poll
    after it says the change was made and the reading back failed; the next
    listing shows the quota, "Done." again."""
    from tests.gui.scripted_app import scripted_app

    client = QuotaClient()
    with scripted_app(client, tmp_path, refresh_s=30.0) as app:
        dialog = _rules_dialog_of_firefox(qtbot, app)
        client.failing = True  # every poll from now on, the change's own too
        dialog.quota_size.setText("20MB")
        dialog.set_quota.click()
        qtbot.waitUntil(lambda: bool(client.calls) and client.calls[-1][0] == "quota", timeout=5000)
        qtbot.waitUntil(lambda: dialog.message.text().startswith("Done"), timeout=5000)
        assert "20.0 MB today, set" in dialog.quota_state.text(), dialog.quota_state.text()
        qtbot.waitUntil(lambda: "did not answer in time" in dialog.message.text(), timeout=5000)
        said = dialog.message.text()
        assert said.startswith("Done: the helper made the quota change. Reading it back failed"), (
            said
        )
        assert "20.0 MB today, set" in dialog.quota_state.text(), dialog.quota_state.text()
        client.failing = False
        app.connection.poll_now()
        qtbot.waitUntil(lambda: dialog.message.text() == "Done.", timeout=5000)
        qtbot.waitUntil(
            lambda: "20.0 MB of 20.0 MB left today" in dialog.quota_state.text(), timeout=5000
        )
        dialog.close()
