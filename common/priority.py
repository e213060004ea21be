"""Application priorities: the words people use, and their order.

NetLimiter and NetBalancer taught users four levels and no numbers; a call or
a game is "critical", a backup "low". Under load the link serves higher
priorities first; applications of one priority share what is left fairly.
Shared by the helper, the CLI and the GUI (issue 16).
"""

from __future__ import annotations

from enum import StrEnum


class PriorityError(ValueError):
    """A priority could not be understood."""


class Priority(StrEnum):
    """Served in this order under load; NORMAL is every application's default."""

    CRITICAL = "critical"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @property
    def rank(self) -> int:
        """0 is served first (HTB's prio: the lowest number borrows first)."""
        return list(Priority).index(self)


DEFAULT_PRIORITY = Priority.NORMAL


def parse_priority(text: str) -> Priority:
    """ "critical", "High", ... -> Priority; anything else a PriorityError that lists the words."""
    try:
        return Priority(text.strip().lower())
    except ValueError:
        words = ", ".join(p.value for p in Priority)
        raise PriorityError(f"not a priority: {text!r} (one of {words})") from None
