"""Quitting on SIGTERM and SIGINT while Qt's event loop runs.

Python runs a signal handler only when the interpreter gets control, and while
Qt waits in C++ for events it does not: a logout's SIGTERM could wait for the
next timer or event. ``signal.set_wakeup_fd`` makes the C-level handler write
the signal's number to a socket that a QSocketNotifier watches, so the event
loop wakes at once and the action runs in the GUI thread like any other slot.
"""

from __future__ import annotations

import logging
import signal
import socket
from collections.abc import Callable, Iterable
from typing import Any

from PySide6.QtCore import QObject, QSocketNotifier

log = logging.getLogger(__name__)

QUIT_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class QuitOnSignals(QObject):
    """Calls ``action(signal_number)`` in the GUI thread when one of ``signals``
    arrives; ``uninstall()`` puts back what was there before."""

    def __init__(
        self,
        action: Callable[[int], None],
        signals: Iterable[signal.Signals] = QUIT_SIGNALS,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._action = action
        self._reader, self._writer = socket.socketpair()
        for end in (self._reader, self._writer):
            end.setblocking(False)
        self._previous_fd = signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        # A Python-level handler is still needed, or the default action (exit
        # without cleanup) would run; the work happens in _on_readable.
        self._previous: dict[signal.Signals, Any] = {}
        for number in signals:
            self._previous[number] = signal.signal(number, _noop)
        self._notifier = QSocketNotifier(self._reader.fileno(), QSocketNotifier.Type.Read, self)
        self._notifier.activated.connect(self._on_readable)

    def _on_readable(self, *_: object) -> None:
        try:
            received = self._reader.recv(64)
        except BlockingIOError:
            return
        for number in received:
            if number in self._previous:
                log.info("quitting on %s", signal.Signals(number).name)
                self._action(number)

    def uninstall(self) -> None:
        """Restore the previous handlers and wakeup fd; safe to call twice."""
        if not self._previous:
            return
        self._notifier.setEnabled(False)
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}
        signal.set_wakeup_fd(self._previous_fd)
        self._reader.close()
        self._writer.close()


def _noop(_number: int, _frame: object) -> None:
    """Stands in for the default action; the wakeup fd carries the signal."""
