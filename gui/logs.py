"""Logging for the GUI: stdlib loggers per area, Qt's own messages routed in."""

from __future__ import annotations

import logging

from PySide6.QtCore import QMessageLogContext, QtMsgType, qInstallMessageHandler

qt_log = logging.getLogger("chadthrottle.gui.qt")

_LEVELS: dict[QtMsgType, int] = {
    QtMsgType.QtDebugMsg: logging.DEBUG,
    QtMsgType.QtInfoMsg: logging.INFO,
    QtMsgType.QtWarningMsg: logging.WARNING,
    QtMsgType.QtCriticalMsg: logging.ERROR,
    QtMsgType.QtFatalMsg: logging.CRITICAL,
}

# Harmless chatter of the offscreen/xcb platforms that would only alarm people.
_QUIET = ("This plugin does not support",)


def _handle_qt_message(kind: QtMsgType, context: QMessageLogContext, message: str) -> None:
    level = _LEVELS.get(kind, logging.WARNING)
    if any(message.startswith(quiet) for quiet in _QUIET):
        level = logging.DEBUG
    qt_log.log(level, "%s", message)


def install_qt_message_handler() -> None:
    """Send qDebug/qWarning/... into ``chadthrottle.gui.qt``."""
    qInstallMessageHandler(_handle_qt_message)


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    install_qt_message_handler()
