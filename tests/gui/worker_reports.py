"""What a widget test, which runs no worker, tells a HelperConnection in the
worker's place (issue 18: the product carries no test hooks)."""

from __future__ import annotations

from chadthrottle.gui.ipc.connection import HelperConnection


def inject_observations(connection: HelperConnection, **changes: object) -> None:
    """Feed observations as if the worker had reported them (the status
    follows, statusChanged is emitted as for a real report)."""
    connection._observe(**changes)


def inject_paused(connection: HelperConnection, paused: bool | None) -> None:
    """Report that the helper has every limit paused (True) or not, as the
    worker does after each poll (pausedChanged follows a change)."""
    connection._signals.paused.emit(paused)
