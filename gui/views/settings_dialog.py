"""The settings dialog: every choice applies at once, as it is made.

It edits a Settings value and emits it whole; the controller stores it and
applies what changed. Start at login is not in Settings (the autostart file is
its one source of truth) and has a signal of its own.
"""

from __future__ import annotations

import dataclasses

from chadthrottle.gui.settings import REFRESH_CHOICES_S, Settings, Theme
from chadthrottle.gui.views.header_bar import UNIT_LABELS
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QVBoxLayout,
    QWidget,
)

# gui/alerts/policy.py AlertSwitches field -> its check box. At most one alert
# of a kind a minute, several applications in one.
ALERT_LABELS: dict[str, str] = {
    "first_use": "An application uses the network for the first time",
    "quota_reached": "An application used up its data quota",
    "limit_not_met": "A limit is not met or not enforced",
    "helper_stopped": "The helper stops",
}

THEME_LABELS: dict[Theme, str] = {
    Theme.SYSTEM: "Follow the desktop",
    Theme.LIGHT: "Light",
    Theme.DARK: "Dark",
}


class SettingsDialog(QDialog):
    """Units, refresh, start-up, closing, notifications, theme and alerts."""

    settingsChanged = Signal(object)  # Settings
    startAtLoginToggled = Signal(bool)

    def __init__(self, settings: Settings, start_at_login: bool, has_tray: bool,
                 parent: QWidget | None = None) -> None:  # fmt: skip
        super().__init__(parent)
        # Qt adds the application's display name: "Settings — ChadThrottle", not
        # "ChadThrottle settings — ChadThrottle".
        self.setWindowTitle("Settings")
        self.setObjectName("settingsDialog")
        self._settings = settings
        self._choices: dict[QComboBox, list[object]] = {}  # Qt would turn str enums into str
        self.units = self._combo(
            "Units", [(label, units) for units, label in UNIT_LABELS.items()], settings.units
        )
        self.refresh = self._combo("Refresh every", [(f"{s:g} s", s) for s in REFRESH_CHOICES_S],
                                   settings.refresh_interval_s)  # fmt: skip
        self.theme = self._combo(
            "Theme", [(label, theme) for theme, label in THEME_LABELS.items()], settings.theme
        )
        self.start_at_login = self._check("Start at login", start_at_login)
        self.start_hidden = self._check("Start hidden in the tray", settings.start_hidden)
        self.close_to_tray = self._check(
            "Closing the window keeps ChadThrottle in the tray", settings.close_to_tray
        )
        # Not "Show notifications": next to "Alerts (desktop notifications)" that read
        # as the switch for every alert, which it is not.
        self.notifications = self._check(
            "Say so when closing the window leaves it in the tray", settings.notifications
        )
        self.notifications.setToolTip(
            "The tray's message when the window is first closed and ChadThrottle keeps running"
        )
        for box in (self.start_hidden, self.close_to_tray, self.notifications):
            box.setEnabled(has_tray)
            if not has_tray:
                box.setToolTip("This desktop has no system tray")

        self.alerts = {
            name: self._check(text, getattr(settings.alerts, name))
            for name, text in ALERT_LABELS.items()
        }
        alerts_box = QGroupBox("Alerts (desktop notifications)", self)
        alerts_layout = QVBoxLayout(alerts_box)
        for name, box in self.alerts.items():
            box.setObjectName(f"alert:{name}")
            alerts_layout.addWidget(box)
            box.toggled.connect(
                lambda on, n=name: self._change(
                    alerts=dataclasses.replace(self._settings.alerts, **{n: on})
                )
            )

        form = QFormLayout()
        for label, combo in (
            ("&Units", self.units),
            ("&Refresh every", self.refresh),
            ("&Theme", self.theme),
        ):
            caption = QLabel(label, self)
            caption.setBuddy(combo)
            form.addRow(caption, combo)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        buttons.button(QDialogButtonBox.StandardButton.Close).setAccessibleName(
            "Close the settings"
        )
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        for box in (self.start_at_login, self.start_hidden, self.close_to_tray, self.notifications):
            layout.addWidget(box)
        layout.addWidget(alerts_box)
        layout.addWidget(buttons)

        self.units.currentIndexChanged.connect(
            lambda _i: self._change(units=self.value(self.units))
        )
        self.refresh.currentIndexChanged.connect(
            lambda _i: self._change(refresh_interval_s=self.value(self.refresh))
        )
        self.theme.currentIndexChanged.connect(
            lambda _i: self._change(theme=self.value(self.theme))
        )
        self.start_hidden.toggled.connect(lambda on: self._change(start_hidden=on))
        self.close_to_tray.toggled.connect(lambda on: self._change(close_to_tray=on))
        self.notifications.toggled.connect(lambda on: self._change(notifications=on))
        self.start_at_login.toggled.connect(self.startAtLoginToggled)

    def _combo(self, name: str, choices: list[tuple[str, object]], current: object) -> QComboBox:
        combo = QComboBox(self)
        combo.setAccessibleName(name)
        values = [value for _label, value in choices]
        for label, _value in choices:
            combo.addItem(label)
        if current not in values and isinstance(
            current, float
        ):  # an interval set in the file by hand
            combo.addItem(f"{current:g} s")
            values.append(current)
        self._choices[combo] = values
        combo.setCurrentIndex(values.index(current) if current in values else 0)
        return combo

    def value(self, combo: QComboBox) -> object:
        """What the combo box's current entry stands for."""
        return self._choices[combo][combo.currentIndex()]

    def choose(self, combo: QComboBox, value: object) -> None:
        """Pick an entry by what it stands for, as the user would."""
        combo.setCurrentIndex(self._choices[combo].index(value))

    def _check(self, text: str, checked: bool) -> QCheckBox:
        box = QCheckBox(text, self)
        box.setAccessibleName(text)
        box.setChecked(checked)
        return box

    def _change(self, **changes: object) -> None:
        self._settings = dataclasses.replace(self._settings, **changes)  # type: ignore[arg-type]
        self.settingsChanged.emit(self._settings)

    def show_start_at_login(self, enabled: bool) -> None:
        """Reflect the autostart entry as it is (writing it may have failed)."""
        blocked = self.start_at_login.blockSignals(True)
        self.start_at_login.setChecked(enabled)
        self.start_at_login.blockSignals(blocked)
