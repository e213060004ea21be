"""The helper's condition as the GUI sees it.

Kept apart from the connection so that views, the tray and tests can depend on
the state vocabulary without importing threads or D-Bus.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from chadthrottle.helper_run_state import LastStop

# The enforcement problem of every limit while a killed helper is away: the
# kernel keeps its rate limits, nothing watches them (limit_truth words it).
LEFT_IN_FORCE = "the helper stopped unexpectedly"
# Why no limit holds with the helper away and what it set off the kernel (or not known)
STOPPED_PROBLEM = "the helper stopped"
NOT_RUNNING_PROBLEM = "the helper is not running"
NOT_INSTALLED_PROBLEM = "the helper is not installed"


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
    # NOT_RUNNING: how the helper ended, from its run record (chadthrottle.helper_run_state):
    # STOPPED took its limits off the kernel, KILLED left them in force
    last_stop: LastStop = LastStop.UNKNOWN

    @property
    def left_in_force(self) -> bool:
        """The helper is away and what it set stays in the kernel (it was killed)."""
        return self.state is HelperState.NOT_RUNNING and self.last_stop is LastStop.KILLED

    @property
    def killed_paused(self) -> bool:
        """The helper is away, killed while every limit was paused: none is in force."""
        return self.state is HelperState.NOT_RUNNING and self.last_stop is LastStop.KILLED_PAUSED

    @property
    def ended_known(self) -> bool:
        """The helper is away and its run record says how it ended."""
        return self.stopped_clean or self.left_in_force or self.killed_paused

    @property
    def stopped_clean(self) -> bool:
        """The helper is away and took what it set off the kernel as it stopped."""
        return self.state is HelperState.NOT_RUNNING and self.last_stop is LastStop.STOPPED

    @property
    def is_problem(self) -> bool:
        return self.state not in (HelperState.CONNECTED, HelperState.CONNECTING)
