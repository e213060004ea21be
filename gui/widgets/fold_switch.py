"""A switch that shows or hides what is under it: a flat tool button, its
arrow beside its words, down while shown and right while folded (the detail
pane's "Graph", the count over the connections table)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QToolButton, QWidget


def fold_switch(parent: QWidget, accessible_name: str) -> QToolButton:
    """The switch, checked (shown); toggled(shown) says each change."""
    switch = QToolButton(parent)
    switch.setAccessibleName(accessible_name)
    switch.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    switch.setAutoRaise(True)
    switch.setCheckable(True)
    switch.setChecked(True)
    point_fold(switch, shown=True)
    return switch


def point_fold(switch: QToolButton, shown: bool) -> None:
    """Its arrow: down while what it folds is shown, right while folded."""
    switch.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)
