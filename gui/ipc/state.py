"""The helper's condition as the GUI sees it.

Kept apart from the connection so that views, the tray and tests can depend on
the state vocabulary without importing threads or D-Bus.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class HelperState(Enum):
    """What the GUI can do right now, from the user's point of view."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    NOT_RUNNING = "not-running"  # no owner / no bus: retried quietly
    NOT_AUTHORIZED = "not-authorized"
    NOT_INSTALLED = "not-installed"  # no bus policy / service unknown
    KERNEL_FEATURE_MISSING = "kernel-feature-missing"  # no backend can enforce


@dataclass(frozen=True)
class HelperStatus:
    """A state plus the one-line detail that explains it.

    ``can_monitor`` says whether traffic numbers are live; ``can_limit`` whether
    limit controls may be used. NOT_AUTHORIZED for limiting keeps monitoring.
    """

    state: HelperState
    detail: str = ""
    can_monitor: bool = False
    can_limit: bool = False

    @property
    def is_problem(self) -> bool:
        return self.state not in (HelperState.CONNECTED, HelperState.CONNECTING)
