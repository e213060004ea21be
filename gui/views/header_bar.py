"""The window's top line: title, filter box, totals, and a settings menu."""

from __future__ import annotations

from chadthrottle.gui.models.applications import total_text
from chadthrottle.gui.settings import REFRESH_CHOICES_S, Settings
from chadthrottle.gui.views.app_table import tabular_font
from chadthrottle.gui.views.steady_text import fix_to_widest, widest_rates
from chadthrottle.units import UnitSystem
from PySide6.QtCore import QEvent, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence, QResizeEvent, QShortcut
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QMenu, QToolButton, QWidget

TOTALS_GAP = "   "  # between the download and the upload rate


def widest_totals(units: UnitSystem) -> list[str]:
    """The widest texts set_totals can show in these units."""
    return [f"▼ {rate}{TOTALS_GAP}▲ {rate}" for rate in widest_rates(units)]


UNIT_LABELS: dict[UnitSystem, str] = {
    UnitSystem.BYTES_DECIMAL: "Bytes, decimal (MB/s)",
    UnitSystem.BYTES_BINARY: "Bytes, binary (MiB/s)",
    UnitSystem.BITS_DECIMAL: "Bits, decimal (Mbit/s)",
    UnitSystem.BITS_BINARY: "Bits, binary (Mibit/s)",
}


FILTER_WORDS, FILTER_SHORT = "Filter apps…  (Ctrl+F)", "Filter apps…"


class FilterField(QLineEdit):
    """The filter box; narrower than its words (the window at its least, 1x
    and 2x) it says them short: "Filter apps… (C…" was cut mid-shortcut (gui31)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setPlaceholderText(FILTER_WORDS)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        room = self.width() - 16  # its frame and text margins
        fits = self.fontMetrics().horizontalAdvance(FILTER_WORDS) <= room
        words = FILTER_WORDS if fits else FILTER_SHORT
        if words != self.placeholderText():
            self.setPlaceholderText(words)


class HeaderBar(QWidget):
    """Filter text, the live totals, and the settings menu."""

    filterChanged = Signal(str)
    unitsChosen = Signal(object)  # UnitSystem
    refreshIntervalChosen = Signal(float)
    startHiddenToggled = Signal(bool)
    startAtLoginToggled = Signal(bool)
    settingsRequested = Signal()
    usageRequested = Signal()  # the usage view (Ctrl+U)
    linkRequested = (
        Signal()
    )  # the link capacity dialog (gui/priority_flow.py), as the status bar's link field
    quitRequested = Signal()  # the menu's Quit (Ctrl+Q), as the tray's

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        title = QLabel("ChadThrottle", self)
        font = title.font()
        font.setPointSizeF(font.pointSizeF() * 1.25)
        font.setBold(True)
        title.setFont(font)
        self.filter = FilterField(self)
        self.filter.setAccessibleName("Filter applications")
        self.filter.setClearButtonEnabled(True)
        for button in self.filter.findChildren(QToolButton):  # Qt's own clear button
            button.setAccessibleName("Clear the filter")
        self.filter.setMaximumWidth(320)
        self.filter.textChanged.connect(self.filterChanged)
        QShortcut(QKeySequence.StandardKey.Find, self).activated.connect(self.filter.setFocus)
        self.totals = QLabel(self)
        self.totals.setFont(tabular_font(self.totals.font()))
        self.totals.setAccessibleName("Total traffic")
        self._totals_units: UnitSystem | None = None
        self._fit_totals(settings.units)
        self.usage_button = QToolButton(self)
        self.usage_button.setText("Usage")
        self.usage_button.setAccessibleName("Data usage")
        self.usage_button.setToolTip(
            "Data used by each application today, in 7 or 30 days, this month (Ctrl+U)"
        )
        self.usage_button.clicked.connect(self.usageRequested)
        QShortcut(QKeySequence("Ctrl+U"), self).activated.connect(self.usageRequested.emit)
        QShortcut(QKeySequence("Ctrl+Q"), self).activated.connect(self.quitRequested.emit)
        self.menu_button = QToolButton(self)
        self.menu_button.setText("☰")
        self.menu_button.setAccessibleName("Settings")
        self.menu_button.setToolTip(
            "Settings: units, refresh interval, theme, start at login, tray"
        )
        self.menu_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.menu_button.setMenu(self._build_menu(settings))

        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 4)
        layout.addWidget(title)
        layout.addStretch(1)
        layout.addWidget(self.filter, 2)
        layout.addSpacing(12)
        layout.addWidget(self.totals)
        layout.addWidget(self.usage_button)
        layout.addWidget(self.menu_button)

    def set_totals(
        self, down_bps: float | None, up_bps: float | None, units: UnitSystem, live: bool
    ) -> None:
        """None: not known this poll (a rate in it being measured): "…"."""
        if units is not self._totals_units:
            self._fit_totals(units)
        text = (
            f"▼ {total_text(down_bps, units, live)}{TOTALS_GAP}▲ {total_text(up_bps, units, live)}"
        )
        self.totals.setText(text if live else f"<span style='color: gray'>{text}</span>")

    def _fit_totals(self, units: UnitSystem) -> None:
        """A fixed size from the widest value in these units (steady_text.py):
        each poll's new text repaints the label only."""
        self._totals_units = units
        fix_to_widest(self.totals, widest_totals(units), slack=4)

    def changeEvent(self, event: QEvent) -> None:
        """A new font or style (the theme) measures the widest value again."""
        super().changeEvent(event)
        changed = event.type() in (QEvent.Type.FontChange, QEvent.Type.StyleChange)
        if changed and self._totals_units is not None:
            self._fit_totals(self._totals_units)

    def _build_menu(self, settings: Settings) -> QMenu:
        menu = QMenu(self)
        open_settings = menu.addAction("Settings…", self.settingsRequested.emit)
        open_settings.setObjectName("open-settings")
        self.open_usage = open_usage = menu.addAction(
            "Data usage…\tCtrl+U", self.usageRequested.emit
        )  # the key: the QShortcut above; the list's column's period follows it (usage_flow)
        open_usage.setObjectName("open-usage")
        self.open_link = menu.addAction("Link capacity…", self.linkRequested.emit)
        self.open_link.setObjectName("open-link")
        menu.addSeparator()
        units_menu = menu.addMenu("Units")
        units_group = QActionGroup(units_menu)
        self._unit_actions: dict[UnitSystem, QAction] = {}
        for units, label in UNIT_LABELS.items():
            action = QAction(label, units_menu, checkable=True, checked=units is settings.units)
            action.triggered.connect(lambda _c=False, u=units: self.unitsChosen.emit(u))
            units_group.addAction(action)
            units_menu.addAction(action)
            self._unit_actions[units] = action
        refresh_menu = menu.addMenu("Refresh every")
        refresh_group = QActionGroup(refresh_menu)
        self._refresh_actions: dict[float, QAction] = {}
        for seconds in REFRESH_CHOICES_S:
            action = QAction(
                f"{seconds:g} s",
                refresh_menu,
                checkable=True,
                checked=abs(seconds - settings.refresh_interval_s) < 1e-6,
            )
            action.triggered.connect(lambda _c=False, s=seconds: self.refreshIntervalChosen.emit(s))
            refresh_group.addAction(action)
            refresh_menu.addAction(action)
            self._refresh_actions[seconds] = action
        self.start_hidden = hidden = QAction("Start hidden in the tray", menu, checkable=True,
                                             checked=settings.start_hidden)  # fmt: skip
        hidden.toggled.connect(self.startHiddenToggled)
        menu.addAction(hidden)
        self.start_at_login = QAction("Start at login", menu, checkable=True)
        self.start_at_login.toggled.connect(self.startAtLoginToggled)
        menu.addAction(self.start_at_login)
        # Closing the window hides it in the tray: only the tray's menu quit, and a
        # user at the window did not find it there (walk28). The key: the QShortcut above.
        menu.addSeparator()
        menu.addAction("Quit ChadThrottle\tCtrl+Q", self.quitRequested.emit).setObjectName("quit")
        return menu

    def show_settings(self, settings: Settings) -> None:
        """Check what the settings dialog chose, without asking for a change."""
        actions = [*self._unit_actions.values(), *self._refresh_actions.values(), self.start_hidden]
        blocked = [action.blockSignals(True) for action in actions]
        self._unit_actions[settings.units].setChecked(True)
        for seconds, action in self._refresh_actions.items():
            action.setChecked(abs(seconds - settings.refresh_interval_s) < 1e-6)
        self.start_hidden.setChecked(settings.start_hidden)
        for action, was in zip(actions, blocked, strict=True):
            action.blockSignals(was)

    def show_start_at_login(self, enabled: bool) -> None:
        """Reflect the autostart entry without asking for a change."""
        blocked = self.start_at_login.blockSignals(True)
        self.start_at_login.setChecked(enabled)
        self.start_at_login.blockSignals(blocked)
