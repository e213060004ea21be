"""User settings, kept in QSettings, passed around as a plain value."""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from enum import Enum

from chadthrottle.gui.alerts.policy import AlertSwitches
from chadthrottle.units import UnitSystem
from PySide6.QtCore import QSettings

log = logging.getLogger(__name__)

REFRESH_CHOICES_S = (0.5, 1.0, 2.0, 5.0)
# A stored interval outside these (a hand edit) is garbled: the default, not a clamp.
REFRESH_BOUNDS_S = (0.2, 60.0)


class Theme(Enum):
    """The window's colours: the desktop's, or a light or dark palette of our own."""

    SYSTEM = "system"
    LIGHT = "light"
    DARK = "dark"


@dataclass(frozen=True)
class Settings:
    units: UnitSystem = UnitSystem.BYTES_DECIMAL
    refresh_interval_s: float = 1.0
    start_hidden: bool = False
    close_to_tray: bool = True  # closing the window keeps ChadThrottle in the tray
    notifications: bool = True  # desktop notifications (the tray's balloon messages)
    theme: Theme = Theme.SYSTEM
    # which desktop alerts (gui/alerts/); each its own switch
    alerts: AlertSwitches = AlertSwitches()


_ALERT_SWITCHES = tuple(field.name for field in dataclasses.fields(AlertSwitches))


def _flag(store: QSettings, key: str, default: bool) -> bool:
    """true/1 or false/0; anything else (a hand-edited typo) is the default."""
    text = str(store.value(key, default)).strip().lower()
    return True if text in ("true", "1") else False if text in ("false", "0") else default


def _refresh_interval(store: QSettings, default: float) -> float:
    """The stored refresh interval, or the default (logged) for one that is
    not a number within REFRESH_BOUNDS_S: nan passed a min/max clamp as nan."""
    stored = store.value("monitor/refresh_interval_s", default)
    try:
        interval = float(stored)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        interval = math.nan
    least, most = REFRESH_BOUNDS_S
    if least <= interval <= most:  # also refuses nan and inf
        return interval
    log.warning("monitor/refresh_interval_s %r is not %g..%g seconds: using %g", stored, least, most,
                default)  # fmt: skip
    return default


def load_settings(store: QSettings) -> Settings:
    """Read settings, falling back to defaults for anything missing or garbled."""
    defaults = Settings()
    try:
        units = UnitSystem(str(store.value("display/units", defaults.units.value)))
    except ValueError:
        units = defaults.units
    interval = _refresh_interval(store, defaults.refresh_interval_s)
    try:
        theme = Theme(str(store.value("display/theme", defaults.theme.value)))
    except ValueError:
        theme = defaults.theme
    return Settings(
        units,
        interval,
        _flag(store, "window/start_hidden", defaults.start_hidden),
        _flag(store, "window/close_to_tray", defaults.close_to_tray),
        _flag(store, "notifications/enabled", defaults.notifications),
        theme,
        AlertSwitches(
            **{
                name: _flag(store, f"alerts/{name}", getattr(defaults.alerts, name))
                for name in _ALERT_SWITCHES
            }
        ),
    )


def save_settings(store: QSettings, settings: Settings) -> None:
    store.setValue("display/units", settings.units.value)
    store.setValue("monitor/refresh_interval_s", settings.refresh_interval_s)
    store.setValue("window/start_hidden", settings.start_hidden)
    store.setValue("window/close_to_tray", settings.close_to_tray)
    store.setValue("notifications/enabled", settings.notifications)
    store.setValue("display/theme", settings.theme.value)
    for name in _ALERT_SWITCHES:
        store.setValue(f"alerts/{name}", getattr(settings.alerts, name))
    store.sync()
