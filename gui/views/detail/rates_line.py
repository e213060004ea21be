"""The detail pane's first line: the shown application's rates, each limit
beside them with the mean it is judged by. Its size is fixed to its widest
form (steady_text.py), so a poll's new rates repaint it without laying the
window out again; where the room is short it is cut, whole in its tooltip."""

from __future__ import annotations

from typing import NamedTuple

from chadthrottle.app_names import Tell
from chadthrottle.gui.models.name_cut import fitted_name_apart
from chadthrottle.gui.views.detail.words import average_tooltip, describe_rates
from chadthrottle.gui.views.steady_text import (
    ClipBox,
    elided_to_room,
    fix_to_widest,
    set_selectable_text,
    widest_rate,
)
from chadthrottle.units import UnitSystem
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QWidget


class Named(NamedTuple):
    """An application's name as the line heads with it."""

    shown: str  # as the list shows it: "name (id)" beside another of its name
    bare: str  # the name alone
    app_id: str
    tell: Tell | None = None  # what of the id tells it apart (app_names.tells_apart)


class RatesLine:
    """The line's label (selectable) in a box that lets a long line give way."""

    def __init__(self, pane: QWidget) -> None:
        self._pane = pane
        self.label = QLabel("", pane)  # nothing to ask for until something is listed
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setAccessibleName("Rates of the selected application")
        self.box = ClipBox(self.label, pane)  # a long line gives way (elided_to_room)
        self._text = ""  # the whole line, cut to the box's room when shown
        self.box.resized.connect(self._cut)
        self._widest = ""  # the widest form of the line shown, its fixed size's measure
        self._named = Named("", "", "")

    def show_words(self, words: str, widest: str) -> None:
        """Words, not rates (nothing shown), sized as the widest given."""
        self.fit(widest)
        self._text = ""
        self.label.setText(words)

    def show_rates(
        self,
        name: Named,
        rates: tuple[float | None, float | None],
        limits: tuple[int, int],
        means: tuple[float | None, float | None],
        units: UnitSystem,
        unmeasured: str,
        average_s: float,
    ) -> None:
        """The rates (None: unmeasured) and beside a limit the mean of average_s.
        name: as the list shows it, "name (id)" beside another of its name, with
        its id and the part of the id that tells it apart (Named)."""
        widest = widest_rate(self.label, units)
        self.fit(describe_rates(name.shown, 0, 0, limits, (0, 0), units, lambda _r, _u: widest))
        self._named = name
        self._text = describe_rates(
            name.shown, rates[0], rates[1], limits, means, units, unmeasured=unmeasured
        )
        shown = self._fitted()
        set_selectable_text(self.label, shown)
        tooltip = average_tooltip(average_s) if any(limits) else ""
        if shown != self._text:  # cut: the whole line first
            tooltip = f"{self._text}\n{tooltip}".rstrip("\n")
        if tooltip != self.label.toolTip():
            self.label.setToolTip(tooltip)

    def _cut(self) -> None:
        """The line cut again to the box's new room (or whole, given room)."""
        if self._text:
            set_selectable_text(self.label, self._fitted())

    def _fitted(self) -> str:
        """The line cut to the box's room: a name told apart by its id cut
        first, keeping what tells it apart (name_cut.py), so that the rates
        after it stay; cut at the right, two "python3.11 (exe:/usr/…" lines
        read alike at 2x and said no rate (words29). Then Qt's cut at the right."""
        name, text = self._named, self._text
        metrics = self.label.fontMetrics()
        if name.shown != name.bare and metrics.horizontalAdvance(text) > self.box.room():
            rest = text[len(name.shown) :]
            room = self.box.room() - metrics.horizontalAdvance(rest)
            cut = fitted_name_apart(name.shown, name.app_id, room, metrics.horizontalAdvance,
                                    name.tell)  # fmt: skip
            text = cut + rest
        return elided_to_room(self.box, text)

    def fit(self, widest: str) -> None:
        """The line's size fixed to its widest form; it changes with the name,
        the limits or the units."""
        if widest != self._widest:
            self._widest = widest
            fix_to_widest(self.label, [widest])
            self.box.updateGeometry()
            layout = self._pane.layout()
            if layout is not None and self._pane.isVisible():
                layout.activate()  # the box's room now, for the line about to be cut to it

    def refit(self) -> None:
        """Measured again in a new font or style."""
        if self._widest:
            fix_to_widest(self.label, [self._widest])
            self.box.updateGeometry()
