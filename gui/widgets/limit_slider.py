"""LimitControl: a log-scale slider plus an exact value field for one limit.

One gesture sets a limit: a drag (emitted once, on release), a typed value
(on Enter), or the keyboard (arrow keys preview, then the value is applied
after a short pause or at once on Enter). Escape cancels whatever is in
progress and puts back the limit in force.

Every value the slider gives is round in the user's units (``rate_scale``):
arrows step through 1, 1.2, 1.5, 2 ... 8, Page Up/Down through 1, 2, 5, Home
is the smallest limit and End no limit. From "none", the first step down or a
click on the knob suggests a limit near what the application uses now, not
the top of the scale (which is about 1 GB/s).
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Callable

from chadthrottle.contract import LIMIT_REACH
from chadthrottle.gui.models.limit_truth import describe_problem
from chadthrottle.gui.theme import is_dark
from chadthrottle.gui.widgets.rate_scale import (
    UNLIMITED_POSITION,
    position_for_rate,
    rate_for_position,
    round_rates,
    snap_rate,
    step_rate,
    suggest_rate,
)
from chadthrottle.gui.widgets.rate_width import BLOCKED_TEXT, limit_field_width
from chadthrottle.gui.widgets.slider_look import paint_rate_slider
from chadthrottle.units import (
    NO_LIMIT,
    UnitError,
    UnitSystem,
    format_limit,
    format_rate,
    parse_rate,
    unit_label,
)
from PySide6.QtCore import QEvent, QObject, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QFocusEvent,
    QFontMetrics,
    QGuiApplication,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPalette,
    QPen,
    QPixmap,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProxyStyle,
    QSlider,
    QStyle,
    QStyleOptionSlider,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

log = logging.getLogger(__name__)

KEYBOARD_SETTLE_MS = 700
_ENTER_KEYS = (Qt.Key.Key_Return, Qt.Key.Key_Enter)


# A limit that is not enforced: its value in this colour, with a warning icon.
# #b34000 reads 5.0:1 on the light theme's window (#efefef), where the status line's
# warnings are, and 5.4-5.8:1 on its rows; #c64600 was 4.27:1 there (WCAG: 4.5:1).
PROBLEM_COLOUR = "#b34000"
# The same amber for text on the dark theme, where #b34000 reads only 2.6-3.0:1
# (a not-in-force priority badge, the status line's warnings); this one 5.6-6.6:1.
PROBLEM_COLOUR_ON_DARK = "#f0883e"


def problem_colour(palette: QPalette) -> str:
    """The amber of a 'not in force' text, readable on this palette's window and rows."""
    return PROBLEM_COLOUR_ON_DARK if is_dark(palette) else PROBLEM_COLOUR


# A dialog's refusal or bad input: #c0392b reads only 2.1:1 on the dark theme's window.
ERROR_COLOUR, ERROR_COLOUR_ON_DARK = "#c0392b", "#ff7b6b"


def error_colour(palette: QPalette) -> str:
    """The red of a dialog's error line, readable on this palette's window."""
    return ERROR_COLOUR_ON_DARK if is_dark(palette) else ERROR_COLOUR


def _field_style(error: bool) -> str:
    """The value field reads like the painted rows (no box, accent when limited,
    amber when not enforced, in the amber of the palette now: the light one read
    1.7:1 on the dark theme's selection) until the pointer or the focus is on
    it; a refused value gets a red frame."""
    border = "#e01b24" if error else "transparent"
    amber = problem_colour(QApplication.palette())
    return (
        f"QLineEdit {{ border: 1px solid {border}; border-radius: 3px; background: transparent;"
        " color: palette(placeholder-text); padding: 0 2px; }"
        ' QLineEdit[limited="true"] { color: palette(highlight); font-weight: bold; }'
        f' QLineEdit[limited="true"][problem="true"] {{ color: {amber}; }}'
        " QLineEdit:hover, QLineEdit:focus { background: palette(base); color: palette(text);"
        f" border-color: {'#e01b24' if error else 'palette(mid)'}; font-weight: normal; }}"
        # The focus is seen at a glance: an accent frame, not the hover's grey one.
        f" QLineEdit:focus {{ border-color: {'#e01b24' if error else 'palette(highlight)'}; }}"
        ' QLineEdit[readOnly="true"]:hover, QLineEdit[readOnly="true"]:focus { background: transparent; }'
        # Disabled (the helper is away): grey like the painted rows, warning or not.
        ' QLineEdit[limited="true"]:disabled, QLineEdit[limited="true"][problem="true"]:disabled'
        " { color: palette(placeholder-text); }"
    )


# From the field's right edge to its text's: border 1 px, padding 2 px,
# QLineEdit's own 2 px margin and its cursor's 1 px (_field_style).
FIELD_TEXT_INSET = 6


# The quota line: grey as the owner note; spent, in the text colour (it stands
# out, and reads on the row and on the selection in light and dark themes).
def _quota_style() -> str:
    """The line under the control: grey; a spent quota in the text colour; a
    limit not enforced or not met in the palette's amber, as its value."""
    amber = problem_colour(QApplication.palette())
    return (
        'QLabel { color: palette(placeholder-text); } QLabel[spent="true"] { color: palette(text); }'
        f' QLabel[problem="true"] {{ color: {amber}; }}'
        " QLabel:disabled { color: palette(placeholder-text); }"
    )


def field_hint(units: UnitSystem) -> str:
    """The value field's tooltip, with examples in the units shown, and what
    a limit holds (the sum, not a share per namespace)."""
    return (
        f"Type 500K, 2M, 2 {unit_label(units, 2)} or {NO_LIMIT}; Enter applies, Esc cancels\n"
        f"{textwrap.fill(LIMIT_REACH, 72)}"  # a tooltip of plain text does not wrap
    )


# Where the slider is not shown, the value field steps with these (Left and Right
# still move its cursor).
_FIELD_STEP_KEYS = (Qt.Key.Key_Up, Qt.Key.Key_Down, Qt.Key.Key_PageUp, Qt.Key.Key_PageDown)
_STEP_KEYS: dict[Qt.Key, tuple[int, bool]] = {  # key: (steps, coarse)
    Qt.Key.Key_Left: (-1, False),
    Qt.Key.Key_Down: (-1, False),
    Qt.Key.Key_Right: (1, False),
    Qt.Key.Key_Up: (1, False),
    Qt.Key.Key_PageDown: (-1, True),
    Qt.Key.Key_PageUp: (1, True),
}


def fitting_line(lines: tuple[str, ...], metrics: QFontMetrics, width: int) -> str:
    """The first of lines (longest first) that fits width, else the last one."""
    for line in lines:
        if metrics.horizontalAdvance(line) <= width:
            return line
    return lines[-1] if lines else ""


def warning_pixmap(style: QStyle, size: int = 14) -> QPixmap:
    """The style's warning icon, for a limit that is not enforced."""
    return style.standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning).pixmap(size, size)


# A disabled control's warning (the helper away): its own colour, faded, in the
# painted rows (gui/views/delegates.py) and in the open control alike.
WARNING_DISABLED_OPACITY = 0.45


class _WarningIcon(QLabel):
    """The warning sign. Disabled, it is faded, not greyed by the style: greyed,
    it all but vanished beside the bold limit of the selected row, while the
    painted rows around it kept theirs."""

    def paintEvent(self, event: QPaintEvent) -> None:
        pixmap = self.pixmap()
        if self.isEnabled() or pixmap.isNull():
            super().paintEvent(event)
            return
        size = pixmap.deviceIndependentSize().toSize()
        rect = QStyle.alignedRect(
            self.layoutDirection(), self.alignment(), size, self.contentsRect()
        )
        painter = QPainter(self)
        painter.setOpacity(WARNING_DISABLED_OPACITY)
        painter.drawPixmap(rect, pixmap)
        painter.end()


class _ClickJumpsStyle(QProxyStyle):
    """A left click on the track moves the knob there (and starts a drag)."""

    def styleHint(
        self,
        hint: QStyle.StyleHint,
        option: object = None,
        widget: object = None,
        return_data: object = None,
    ) -> int:
        if hint == QStyle.StyleHint.SH_Slider_AbsoluteSetButtons:
            return int(Qt.MouseButton.LeftButton.value)
        return super().styleHint(hint, option, widget, return_data)  # type: ignore[arg-type]


# A drag crosses the whole scale (five decades and "none") in no less pointer
# travel than this, however short the slider: about 2 px a round value, as a
# slider at 1x gives. At 2x on 1366x768 a slider had 19 px of travel and a drag
# of 4 px went from 5 MB/s to 400 KB/s. A shorter slider's knob moves slower
# than the pointer, and the value field shows where the drag is.
DRAG_TRAVEL_LEAST = 110


class RateSlider(QSlider):
    """A horizontal QSlider that can abandon a drag on Escape, and whose drag
    is no coarser than DRAG_TRAVEL_LEAST allows.

    The wheel is left to the surrounding table: scrolling past a row must never
    change a limit.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(Qt.Orientation.Horizontal, parent)
        self.setRange(0, UNLIMITED_POSITION)
        self.setSingleStep(10)
        self.setPageStep(100)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        # No base style given: QProxyStyle(style) would take ownership of the
        # application's style and delete it with this slider, leaving every
        # other widget (and ~QApplication) with a dangling style.
        self._click_style = _ClickJumpsStyle()
        self._click_style.setParent(self)
        self.setStyle(self._click_style)
        self.drag_cancelled = False
        # A press on the knob that is let go without moving is a click, not a drag.
        self.clicked_knob = False
        self._press_x = 0.0
        self._drag_from = (0.0, 0)  # pointer x and knob position where the drag began

    def travel(self) -> int:
        """The knob's travel from end to end, in px."""
        option = QStyleOptionSlider()
        self.initStyleOption(option)
        style, control = self.style(), QStyle.ComplexControl.CC_Slider
        groove = style.subControlRect(control, option, QStyle.SubControl.SC_SliderGroove, self)
        handle = style.subControlRect(control, option, QStyle.SubControl.SC_SliderHandle, self)
        return max(1, groove.width() - handle.width())

    def paintEvent(self, event: QPaintEvent) -> None:
        option = QStyleOptionSlider()
        self.initStyleOption(option)
        painter = QPainter(self)
        paint_rate_slider(
            painter,
            option,
            self.style(),
            self,
            limited=self.sliderPosition() < UNLIMITED_POSITION,
            enabled=self.isEnabled(),
            focused=self.hasFocus(),
        )
        if self.hasFocus():  # a focus frame seen at a glance, in dark mode too
            accent = QColor(QGuiApplication.palette().color(QPalette.ColorRole.Highlight))
            accent.setAlpha(170)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            painter.setPen(QPen(accent, 1.5))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(QRectF(self.rect()).adjusted(1, 2, -1, -2), 4, 4)
        painter.end()

    def wheelEvent(self, event: QWheelEvent) -> None:
        event.ignore()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self.drag_cancelled = False
        option = QStyleOptionSlider()
        self.initStyleOption(option)
        handle = self.style().subControlRect(
            QStyle.ComplexControl.CC_Slider, option, QStyle.SubControl.SC_SliderHandle, self
        )
        self.clicked_knob = handle.adjusted(-4, -4, 4, 4).contains(event.position().toPoint())
        self._press_x = event.position().x()
        super().mousePressEvent(event)
        self._drag_from = (event.position().x(), self.sliderPosition())  # after a click's jump

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if abs(event.position().x() - self._press_x) * 2 >= QApplication.startDragDistance():
            self.clicked_knob = False  # it is a drag
        if self.drag_cancelled:
            event.accept()
            return
        travel = self.travel()
        if self.isSliderDown() and travel < DRAG_TRAVEL_LEAST:
            x, start = self._drag_from
            span = self.maximum() - self.minimum()
            moved = (event.position().x() - x) * span / DRAG_TRAVEL_LEAST
            self.setSliderPosition(round(start + moved))  # clamped to the range
            event.accept()
            return
        super().mouseMoveEvent(event)


SHORT_OWNERS = {"administrator": "admin"}  # a word still read whole in a narrow column


def fitting_note(note: str, metrics: QFontMetrics, width: int) -> str:
    """An owner note in ``width``: whole, else the owner alone ("administrator"),
    else its short word ("admin"), else that cut with "…" (a narrow limit column
    at 2x read "adm…", which says nothing)."""
    owner = note.removeprefix("set by ")
    candidates = (note, owner, SHORT_OWNERS.get(owner, owner))
    for candidate in candidates:
        if metrics.horizontalAdvance(candidate) <= width:
            return candidate
    return metrics.elidedText(candidates[-1], Qt.TextElideMode.ElideRight, max(0, width))


SLIDER_LEAST = 24  # px of slider a note leaves (the knob and a little travel)
# A limit column's slider is shown only with this much room beside the value (a
# knob, 15 px, and 25 px of travel), else the column shows the value alone, typed
# or stepped with the arrow keys. At the window's least (640x420 and 2x under Xvfb)
# it was a 34 px stub, 19 px of travel, a wide gap before "none" (gui22's walk).
SLIDER_SHOWN_LEAST = 40


def slider_fits(room: int) -> bool:
    """Whether a limit column's slider is drawn in this room (px beside the value
    field: the painted rows and the open LimitControl alike)."""
    return room >= SLIDER_SHOWN_LEAST


class LimitControl(QWidget):
    """Slider + field for one direction of one application's limit."""

    limitChosen = Signal(object)  # int bytes/s, or None for no limit

    def __init__(
        self,
        direction_label: str = "Limit",
        units: UnitSystem = UnitSystem.BYTES_DECIMAL,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._units = units
        self._committed: int | None = None
        self._preview: int | None = None  # what the slider shows while editing
        self._current_bps = 0.0  # what the application uses now, for a first limit
        self.current_rate_source: Callable[[], float] | None = None  # read when needed
        self._setting_programmatically = False
        self.slider = RateSlider(self)
        self.field = QLineEdit(self)
        self._select_on_release = False  # the field's focus came with a click (eventFilter)
        self.field.setPlaceholderText(NO_LIMIT)
        self.field.setStyleSheet(_field_style(error=False))
        self.field.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.field.setFixedWidth(limit_field_width(self.field.font(), units))
        # Whose limit it is, when not the viewer's ("set by administrator"), and
        # a warning icon when it is not enforced.
        self.note = QLabel(self)
        self.note.setObjectName("limit-note")
        self.note.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        small = self.note.font()
        small.setPointSizeF(max(6.0, small.pointSizeF() * 0.85))  # as the painted rows draw it
        self.note.setFont(small)
        self.note.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        # The note gives way to the field in a narrow column (2x): cut with "…" (the
        # tooltip has it whole) rather than pushing the field out of the cell.
        self.note.setMinimumWidth(1)
        self._note_text = ""
        self.note.hide()
        self.warning = _WarningIcon(self)
        self.warning.setObjectName("limit-warning")
        self.warning.setPixmap(warning_pixmap(self.style()))
        self.warning.hide()
        self._read_only = False
        self._direction_blocked = False  # no data passes: "Blocked", no slider (set_state)
        self._blocked_text = BLOCKED_TEXT  # what the field says while blocked
        self._problem = ""  # why the limit shown is not enforced or not met (set_state)
        self._blocked_reason = ""
        self._state_tooltip = ""
        self._settle_timer = QTimer(self)
        self._settle_timer.setSingleShot(True)
        self._settle_timer.setInterval(KEYBOARD_SETTLE_MS)
        self._settle_timer.timeout.connect(self._commit_slider)

        # A quota's use, a small line under slider and field ("1.2 GB left today"),
        # as the painted rows draw it (gui/views/delegates.py).
        self.quota = QLabel(self)
        self.quota.setObjectName("limit-quota")
        self.quota.setFont(small)
        self.quota.setProperty("spent", False)
        self.quota.setStyleSheet(_quota_style())
        self.quota.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        # It ends where the field's text ends (its border, padding and margin in):
        # flush with the control's edge it read as part of the next column.
        self.quota.setContentsMargins(0, 0, FIELD_TEXT_INSET, 0)
        self.quota.hide()
        self._quota_lines: tuple[str, ...] = ()

        outer = QVBoxLayout(self)
        outer.setContentsMargins(2, 0, 2, 0)
        outer.setSpacing(0)
        layout = self._row = QHBoxLayout()
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        # Takes the room of a hidden slider (a block), so the value stays at the right edge.
        layout.addStretch(0)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.note)
        layout.addWidget(self.warning)
        layout.addWidget(self.field)
        outer.addLayout(layout, 1)
        # The line under: the quota's use, or why the limit is not held, with the
        # warning sign before it then (_place_warning).
        self._under = QHBoxLayout()
        self._under.setContentsMargins(0, 0, 0, 0)
        self._under.setSpacing(3)
        self._under.addStretch(1)
        self._under.addWidget(self.quota)
        outer.addLayout(self._under)
        self._warning_in_line = False
        # No focus proxy: the container would then be a second Tab stop for the
        # slider. The table chains slider and field into the window's Tab order.
        self.set_direction_label(direction_label)

        self.slider.sliderMoved.connect(self._preview_position)
        # A press on the track jumps the knob (valueChanged, which starts the
        # keyboard's settle) before the drag begins: the drag's release decides,
        # not the settle timer mid-drag (gui32: a limit sent with the button down).
        self.slider.sliderPressed.connect(self._settle_timer.stop)
        self.slider.sliderReleased.connect(self._on_released)
        self.slider.valueChanged.connect(self._on_value_changed)
        self.field.returnPressed.connect(self._commit_field)
        self.field.textEdited.connect(lambda _text: self._set_field_error(""))
        self.slider.installEventFilter(self)
        self.field.installEventFilter(self)
        self._show(self._committed)

    # --- public API ---------------------------------------------------------------------

    def limit(self) -> int | None:
        """The limit in force as far as this control knows (None: no limit)."""
        return self._committed

    def set_limit(self, rate_bps: int | None) -> None:
        """Show a limit that came from outside; ignored while the user is editing."""
        rate_bps = rate_bps or None
        if self.is_editing():
            return
        self._committed = rate_bps
        self._show(rate_bps)

    def set_units(self, units: UnitSystem) -> None:
        changed = units != self._units
        self._units = units
        if changed:
            self._describe()
            self.field.setFixedWidth(limit_field_width(self.field.font(), units))
        if not self.is_editing():
            self._show(self._committed)

    def set_current_rate(self, rate_bps: float) -> None:
        """What the application uses now in this direction: the first limit the
        keyboard or a click suggests from "none" is near it."""
        self._current_bps = max(0.0, float(rate_bps))

    def _suggestion(self) -> int:
        if self.current_rate_source is not None:
            self.set_current_rate(self.current_rate_source())
        return suggest_rate(self._current_bps, self._units)

    def set_direction_label(self, label: str) -> None:
        """Accessible names say which limit this is: "Download limit for Firefox"."""
        self.slider.setAccessibleName(label)
        self.field.setAccessibleName(f"{label} value")
        self._describe()

    def _describe(self) -> None:
        """Descriptions and hints in the units shown."""
        rates = round_rates(self._units)
        self.slider.setAccessibleDescription(
            f"Logarithmic from {format_rate(rates[0], self._units)} to {format_rate(rates[-1], self._units)}; "
            "the right end means no limit. Arrow keys and Page Up/Down step through round values, "
            "Home is the smallest limit, End no limit; Enter applies, Escape cancels."
        )
        self.field.setAccessibleDescription(
            f"Type a rate such as 500K, 2M, 2 {unit_label(self._units, 2)} or {NO_LIMIT}, then press Enter."
        )
        if not self.field.property("error"):
            self._show_field_tooltip()

    def _show_field_tooltip(self) -> None:
        """How to type a limit, after why the one shown is not enforced or not
        met: the amber value is where the pointer goes, and its tooltip gave
        only the hint (the warning's own tooltip is a sign's width away).
        Read-only, none: the control's tooltip says whose limit it is."""
        problem = describe_problem(self._problem, self._units) if self._problem else ""
        hint = "" if self._fixed else field_hint(self._units)
        self.field.setToolTip("\n\n".join(part for part in (problem, hint) if part))

    def set_blocked(self, reason: str) -> None:
        """Disable the control and say why ("" enables it again)."""
        self._blocked_reason = reason
        self.setEnabled(not reason)
        self._show_tooltip()
        if reason:
            self.cancel()

    def set_state(
        self,
        note: str,
        read_only: bool,
        problem: str,
        tooltip: str,
        blocked: bool = False,
        blocked_text: str = BLOCKED_TEXT,
    ) -> None:
        """Whose limit this is (note, "" for the viewer's own), whether the viewer
        may change it, and why it is not enforced or not met ("" when it is). A read-only
        limit has no slider: a drag would only change a rule that is outranked.
        blocked: the direction is blocked, and says so where the rate would be, with
        no slider, as the painted rows (it read "none" beside a slider on the
        selected row while the others read "Blocked"; unblocking is the menus'):
        blocked_text (a used-up quota on its way to its rate reads that rate)."""
        if (read_only or blocked) and not (self._read_only or self._direction_blocked):
            self.cancel()
        self._read_only = read_only
        changed = blocked != self._direction_blocked or blocked_text != self._blocked_text
        self._direction_blocked = blocked
        self._blocked_text = blocked_text
        self._problem = problem
        self._show_slider()
        self.field.setReadOnly(self._fixed)
        if changed and not self.is_editing():
            self._show(self._committed)
        self._note_text = note
        self.note.setVisible(bool(note))
        self._row.setStretchFactor(self.note, 1 if read_only else 0)
        self.warning.setVisible(bool(problem))
        self.warning.setToolTip(describe_problem(problem, self._units) if problem else "")
        self._place_warning()
        self._show_field_tooltip()
        self._fit_note()
        if self.field.property("problem") != bool(problem):
            self.field.setProperty("problem", bool(problem))
            self.field.setStyleSheet(self.field.styleSheet())  # re-evaluate [problem]
        self._state_tooltip = tooltip
        self._show_tooltip()

    def changeEvent(self, event: QEvent) -> None:
        """A theme chosen: the field's amber is the new palette's (its style sheet
        has the colour written in)."""
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            style = _field_style(error=bool(self.field.property("error")))
            if style != self.field.styleSheet():
                self.field.setStyleSheet(style)
            if _quota_style() != self.quota.styleSheet():
                self.quota.setStyleSheet(_quota_style())
        super().changeEvent(event)

    def set_quota_lines(
        self, lines: tuple[str, ...], spent: bool = False, problem: bool = False
    ) -> None:
        """The line under the control (LimitState.note_lines: the first that
        fits is shown; none: no line): a quota's use, a spent one in the text
        colour; or why the limit is not held (problem), in amber."""
        if (lines, spent, problem) == (
            self._quota_lines,
            self.quota.property("spent"),
            self.quota.property("problem"),
        ):
            return
        self._quota_lines = lines
        self.quota.setProperty("spent", spent)
        self.quota.setProperty("problem", problem)
        self.quota.setStyleSheet(_quota_style())  # re-evaluate [spent], [problem]
        self.quota.setVisible(bool(lines))
        self._place_warning()
        self._fit_quota()

    def _place_warning(self) -> None:
        """The warning sign before the words when the line under the value says
        why the limit is not held ("not enforced", "limit not met"): between
        slider and value it took 20 of a narrow slider's 39 px (2x on 1366x768
        under Xvfb: only the knob was left). Under a quota's line, or with no
        line, it stays beside the value."""
        in_line = bool(self._problem and self._quota_lines and self.quota.property("problem"))
        if in_line == self._warning_in_line:
            return
        self._warning_in_line = in_line
        (self._row if in_line else self._under).removeWidget(self.warning)
        if in_line:
            self._under.insertWidget(1, self.warning)  # after the stretch, before the words
            size = max(10, self.quota.fontMetrics().height() - 2)  # the line keeps its height
        else:
            self._row.insertWidget(self._row.indexOf(self.field), self.warning)
            size = 14
        self.warning.setPixmap(warning_pixmap(self.style(), size))
        self._fit_quota()
        self._fit_note()

    def _fit_quota(self) -> None:
        if self._quota_lines:
            room = self.width() - 4 - FIELD_TEXT_INSET
            if self._warning_in_line:
                room -= self.warning.sizeHint().width() + self._under.spacing()
            self.quota.setText(fitting_line(self._quota_lines, self.quota.fontMetrics(), room))

    def _fit_note(self) -> None:
        """The note, cut to what the field, the warning and a usable slider leave."""
        spacing = self._row.spacing()
        room = self.width() - 4 - self.field.width() - spacing
        if self.warning.isVisibleTo(self) and not self._warning_in_line:
            room -= self.warning.sizeHint().width() + spacing
        if not self._read_only:
            room -= SLIDER_LEAST + spacing
        self.note.setText(fitting_note(self._note_text, self.note.fontMetrics(), room))

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._show_slider()
        self._fit_quota()
        self._fit_note()

    def _show_slider(self) -> None:
        """No slider for a block or another's limit, nor where it would be a stub
        (slider_fits): the value alone then, as the painted rows show it."""
        room = self.width() - 4 - self.field.width() - self._row.spacing()
        shown = not self._fixed and slider_fits(room)
        if self.slider.isHidden() == shown:
            if not shown and self.slider.isSliderDown():
                self.cancel()
            self.slider.setVisible(shown)

    @property
    def read_only(self) -> bool:
        return self._read_only

    @property
    def _fixed(self) -> bool:
        """Nothing to choose here: another's limit that outranks, or a block."""
        return self._read_only or self._direction_blocked

    def _show_tooltip(self) -> None:
        parts = [
            part for part in (self._blocked_reason, self._state_tooltip) if part
        ]  # why disabled, first
        self.setToolTip("\n".join(parts))

    def is_editing(self) -> bool:
        return (
            self.slider.isSliderDown()
            or self._settle_timer.isActive()
            or (self.field.hasFocus() and self.field.isModified())
        )

    def cancel(self) -> None:
        """Abandon any drag, pending keyboard change or typed text."""
        self._settle_timer.stop()
        if self.slider.isSliderDown():
            self.slider.drag_cancelled = True
            self.slider.clicked_knob = False
        self.field.setModified(False)
        self._set_field_error("")
        self._show(self._committed)

    # --- events ------------------------------------------------------------------------

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.KeyPress and isinstance(event, QKeyEvent):
            key = event.key()
            if key == Qt.Key.Key_Escape and self._has_something_to_cancel():
                self.cancel()
                return True
            if watched is self.slider and key in _ENTER_KEYS:
                self._commit_slider()
                return True
            if watched is self.slider and self._step_with_key(Qt.Key(key)):
                return True
            if (  # no slider (too narrow): the field steps as it would
                watched is self.field
                and self.slider.isHidden()
                and key in _FIELD_STEP_KEYS
                and self._step_with_key(Qt.Key(key))
            ):
                return True
        elif (
            event.type() == QEvent.Type.FocusOut
            and watched is self.field
            and self.field.isModified()  # left without Enter: not applied
        ):
            self.cancel()
        elif watched is self.field and event.type() == QEvent.Type.FocusIn:
            # Its value is its text ("none", "400 KB/s"): a click put the cursor in
            # it and "1M" typed read "1Mnone", refused (walk28). The click that
            # gives it the focus selects it, as Tab does, once released (the press
            # places the cursor); a drag that selected a part keeps that part.
            reason = event.reason() if isinstance(event, QFocusEvent) else None
            self._select_on_release = reason == Qt.FocusReason.MouseFocusReason
        elif watched is self.field and event.type() == QEvent.Type.MouseButtonRelease:
            if self._select_on_release and not self.field.hasSelectedText():
                self.field.selectAll()  # before the line edit's own release: it keeps it
            self._select_on_release = False
        return super().eventFilter(watched, event)

    def _has_something_to_cancel(self) -> bool:
        return self.is_editing() or self.field.isModified() or bool(self.field.property("error"))

    def _step_with_key(self, key: Qt.Key) -> bool:
        """Arrows, Page Up/Down, Home and End move through round values in the
        units shown; from "none" the first step down suggests a limit near the
        current rate. True if the key was one of them."""
        if self._fixed or not self.isEnabled():
            return False
        start = self._preview if self._settle_timer.isActive() else self._committed
        if key == Qt.Key.Key_Home:
            rate: int | None = round_rates(self._units)[0]
        elif key == Qt.Key.Key_End:
            rate = None
        elif key in _STEP_KEYS:
            steps, coarse = _STEP_KEYS[key]
            if start is None and steps < 0:
                rate = self._suggestion()
            else:
                rate = step_rate(start, steps, self._units, coarse)
        else:
            return False
        self._preview_rate(rate)
        self._settle_timer.start()
        return True

    def _preview_rate(self, rate_bps: int | None) -> None:
        """Show a rate on the slider and in the field without applying it yet."""
        self._preview = rate_bps
        self._setting_programmatically = True
        try:
            self.slider.setValue(position_for_rate(rate_bps))
        finally:
            self._setting_programmatically = False
        self.field.setText(format_limit(rate_bps or 0, self._units))

    def _snapped(self, position: int) -> int | None:
        rate = rate_for_position(position)
        return None if rate is None else snap_rate(rate, self._units)

    def _preview_position(self, position: int) -> None:
        self._preview = self._snapped(position)
        self.field.setText(format_limit(self._preview or 0, self._units))

    def _on_released(self) -> None:
        if self.slider.drag_cancelled:
            self.slider.drag_cancelled = False
            self._show(self._committed)
            return
        if self.slider.clicked_knob:  # a click on the knob, not a drag
            self.slider.clicked_knob = False
            if self._committed is None:
                self._commit(self._suggestion())
            else:
                self._settle_timer.stop()
                self._show(self._committed)
            return
        self._commit(self._snapped(self.slider.value()))

    def _on_value_changed(self, position: int) -> None:
        if self._setting_programmatically or self.slider.isSliderDown():
            return
        # A click on the groove, or an accessibility action: preview now, apply once it settles.
        self._preview_position(position)
        self._settle_timer.start()

    def _commit_slider(self) -> None:
        self._settle_timer.stop()
        self._commit(self._preview)

    def _commit_field(self) -> None:
        text = self.field.text().strip() or NO_LIMIT
        if not self.field.isModified() and text == format_limit(self._committed or 0, self._units):
            return
        try:
            rate_bps = parse_rate(text, self._units)
        except UnitError as error:
            self._set_field_error(str(error))
            return
        self._commit(rate_bps)

    def _commit(self, rate_bps: int | None) -> None:
        if self._fixed:  # not the viewer's to change, or blocked: nothing is sent
            self._show(self._committed)
            return
        self._settle_timer.stop()
        self.field.setModified(False)
        self._set_field_error("")
        changed = rate_bps != self._committed
        self._committed = rate_bps
        self._show(rate_bps)
        if changed:
            log.debug("limit chosen: %s", rate_bps)
            self.limitChosen.emit(rate_bps)

    def _show(self, rate_bps: int | None) -> None:
        """Show a rate as the one in force: the field no longer counts as edited."""
        self._preview_rate(rate_bps)
        if self._direction_blocked:
            self.field.setText(self._blocked_text)
        self.field.setModified(False)
        limited = bool(rate_bps) or self._direction_blocked
        if self.field.property("limited") != limited:
            self.field.setProperty("limited", limited)
            self.field.setStyleSheet(self.field.styleSheet())  # re-evaluate [limited]

    def _set_field_error(self, message: str) -> None:
        if not message and not self.field.property("error"):
            return
        self.field.setProperty("error", bool(message))
        self.field.setStyleSheet(_field_style(error=bool(message)))
        if message:
            self.field.setToolTip(message)
        else:
            self._show_field_tooltip()
        if message and self.field.isVisible():
            QToolTip.showText(
                self.field.mapToGlobal(self.field.rect().bottomLeft()), message, self.field
            )
