"""Application icons: from the helper's icon field, else a calm letter tile.

The helper sends an icon name (from the .desktop file) or an absolute path, or
"" when the application has none. Looked up once per distinct value.
"""

from __future__ import annotations

import zlib
from pathlib import Path

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QIcon, QPainter, QPixmap

_TILE_COLOURS = (
    "#3584e4",
    "#2190a4",
    "#3a944a",
    "#c88800",
    "#ed5b00",
    "#e62d42",
    "#9141ac",
    "#6f8396",
)


def letter_tile(name: str, size: int = 32) -> QPixmap:
    """A rounded tile with the name's first letter, coloured by the name."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    colour = QColor(_TILE_COLOURS[zlib.crc32(name.encode()) % len(_TILE_COLOURS)])
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(colour)
    rect = QRectF(1, 1, size - 2, size - 2)
    painter.drawRoundedRect(rect, size * 0.22, size * 0.22)
    font = QFont()
    font.setPixelSize(int(size * 0.55))
    font.setBold(True)
    painter.setFont(font)
    painter.setPen(QColor("white"))
    letter = next((c for c in name if c.isalnum()), "?").upper()
    painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, letter)
    painter.end()
    return pixmap


class IconProvider:
    """Caches QIcons by the helper's icon string (and name, for fallbacks)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], QIcon] = {}

    def icon(self, icon_field: str, name: str) -> QIcon:
        key = (icon_field, name if not icon_field else "")
        cached = self._cache.get(key)
        if cached is None:
            cached = self._lookup(icon_field, name)
            self._cache[key] = cached
        return cached

    def _lookup(self, icon_field: str, name: str) -> QIcon:
        if icon_field.startswith("/") and Path(icon_field).is_file():
            icon = QIcon(icon_field)
            if not icon.isNull():
                return icon
        elif icon_field and QIcon.hasThemeIcon(icon_field):
            return QIcon.fromTheme(icon_field)
        return QIcon(letter_tile(name or icon_field))
