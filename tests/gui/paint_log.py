"""Which parts of a widget a poll paints: a few GUI tests count repaints (issue 17's GUI CPU)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from PySide6.QtCore import QEvent, QObject, QRect
from PySide6.QtWidgets import QWidget


class _Paints(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.rects: list[QRect] = []

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint:
            self.rects.append(event.rect())  # type: ignore[attr-defined]
        return False


@contextmanager
def painted_rects(widget: QWidget) -> Iterator[list[QRect]]:
    """The rectangles of every paint event the widget gets inside the block."""
    spy = _Paints()
    widget.installEventFilter(spy)
    try:
        yield spy.rects
    finally:
        widget.removeEventFilter(spy)
