"""User settings, kept in QSettings, passed around as a plain value."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from PySide6.QtCore import QSettings

from chadthrottle.units import UnitSystem

log = logging.getLogger(__name__)

REFRESH_CHOICES_S = (0.5, 1.0, 2.0, 5.0)


@dataclass(frozen=True)
class Settings:
    units: UnitSystem = UnitSystem.BYTES_DECIMAL
    refresh_interval_s: float = 1.0
    start_hidden: bool = False


def load_settings(store: QSettings) -> Settings:
    """Read settings, falling back to defaults for anything missing or garbled."""
    defaults = Settings()
    try:
        units = UnitSystem(str(store.value("display/units", defaults.units.value)))
    except ValueError:
        units = defaults.units
    try:
        interval = float(store.value("monitor/refresh_interval_s", defaults.refresh_interval_s))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        interval = defaults.refresh_interval_s
    interval = min(max(interval, 0.2), 60.0)
    hidden = str(store.value("window/start_hidden", defaults.start_hidden)).lower() in ("true", "1")
    return Settings(units, interval, hidden)


def save_settings(store: QSettings, settings: Settings) -> None:
    store.setValue("display/units", settings.units.value)
    store.setValue("monitor/refresh_interval_s", settings.refresh_interval_s)
    store.setValue("window/start_hidden", settings.start_hidden)
    store.sync()
