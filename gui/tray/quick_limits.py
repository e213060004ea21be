"""What the tray menu offers: the busiest applications and quick limits.

Plain data and functions, so a test can check the menu's content from a model
without opening a menu.

After the quick limits each direction has a real "Block" (SetBlocked: no
packet passes, open connections included, until "Unblock"), not the smallest
limit under that name: a block that let bytes through would be a claim the
kernel does not make true.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from chadthrottle.contract import ApplicationInfo
from chadthrottle.units import NO_LIMIT, UnitSystem, format_round, unit_bps

TRAY_APPLICATIONS = 8


@dataclass(frozen=True)
class QuickLimit:
    label: str
    rate_bps: int | None  # None: no limit; CUSTOM: ask


CUSTOM = -1
# The quick limits in units of k and M: about 100 KB/s, 1 MB/s and 5 MB/s,
# round in what the user reads (1, 10 and 50 Mbit/s in bits mode).
_QUICK_BYTES = ((100, 1), (1, 2), (5, 2))
_QUICK_BITS = ((1, 2), (10, 2), (50, 2))


@cache
def quick_limits(units: UnitSystem = UnitSystem.BYTES_DECIMAL) -> tuple[QuickLimit, ...]:
    """The tray's choices, labelled and rounded in ``units``."""
    rates = [
        round(number * unit_bps(units, power))
        for number, power in (_QUICK_BITS if units.bits else _QUICK_BYTES)
    ]
    return (
        QuickLimit(NO_LIMIT.capitalize(), None),
        *(QuickLimit(format_round(rate, units), rate) for rate in rates),
        QuickLimit("Custom…", CUSTOM),
    )


QUICK_LIMITS = quick_limits()


def busiest_applications(
    applications: list[ApplicationInfo], count: int = TRAY_APPLICATIONS
) -> list[ApplicationInfo]:
    """The applications to list: by total rate, limited ones kept in view.

    An application with a limit, a block or a priority stays listed even when
    quiet (a blocked one is quiet), so it can be lifted from the tray.
    """
    ranked = sorted(applications, key=lambda a: (-(a.down_bps + a.up_bps), a.name.casefold()))
    chosen = ranked[:count]
    for app in ranked[count:]:
        held = (
            app.down_limit_bps
            or app.up_limit_bps
            or app.down_blocked
            or app.up_blocked
            or app.priority != "normal"
        )
        if held and len(chosen) < count + 4:
            chosen.append(app)
    return chosen


def checked_label(
    current_limit_bps: int, units: UnitSystem = UnitSystem.BYTES_DECIMAL
) -> str | None:
    """The quick limit that matches the current limit, for its check mark."""
    for quick in quick_limits(units):
        if quick.rate_bps == (current_limit_bps or None):
            return quick.label
    return None if current_limit_bps == 0 else "Custom…"
