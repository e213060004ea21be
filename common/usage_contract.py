"""The part of the D-Bus contract (chadthrottle.contract) that only GetUsage
uses: its resolutions, bounds and the fields of a row.

Apart from contract.py because every chadthrottle-ctl call imports that
module, and an enum and a dataclass more cost each call about half a
millisecond (docs/benchmarks.md, "CLI start-up"); only the usage verb, the
GUI and the helper import this one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class UsageResolution(StrEnum):
    """The period one row of GetUsage covers. The helper keeps minutes for a
    day, hours for 90 days and days for two years; months are summed from days.
    Days and months begin at the helper's local midnight."""

    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"
    MONTH = "month"


# GetUsage answers at most this many rows (InvalidArgument beyond: ask for one
# application, a shorter range or a coarser resolution).
MAX_USAGE_ROWS = 50_000  # a month by day of 1,500 applications
# The application id of the usage a caller's least active applications folded
# into, when more applications moved bytes in one minute than the helper keeps.
OTHER_APPLICATIONS_ID = "(other)"

# Keys and D-Bus types of one entry of GetUsage.
USAGE_FIELDS: dict[str, str] = {
    "app_id": "s",
    "start": "x",  # unix seconds: the period's first second
    "end": "x",  # unix seconds: the first second after it
    "down_bytes": "t",  # on the wire at L3, loopback excluded
    "up_bytes": "t",
    "loopback_down_bytes": "t",
    "loopback_up_bytes": "t",
}


@dataclass(frozen=True)
class UsageRow:
    """Bytes one application moved in one period, as GetUsage reports them
    (summed over the users the caller may see)."""

    app_id: str
    start: int
    end: int
    down_bytes: int
    up_bytes: int
    loopback_down_bytes: int = 0
    loopback_up_bytes: int = 0
