"""The zone a quota's period is counted in: the helper's. The helper resets a
quota at its own local midnight (helper/engine/quotas.py); the GUI counted the
period on its own clock (gui30), so a session whose TZ was not the helper's
told a quota used up again after the helper's reset as the same period (or
one not yet reset as a new one). The contract says where the helper's days
begin: GetUsage's day rows "begin at the helper's local midnight". A helper of API 8 says each quota's
period itself (ListRules quota_period_start; gui/alerts/policy.py uses it):
this guess is for older helpers only."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta, timezone, tzinfo

from chadthrottle.gui.models.usage_periods import local_midnight
from chadthrottle.usage_contract import UsageRow

ZONE_KEY = "alerts:helper-zone"  # GetUsage's key (usageFetched): the alerts' own
# The zone last read, kept with the settings: "own" (the GUI's) or the offset in
# seconds. An answer with no day rows (the machine idle in the span asked: a used-up
# quota that blocks moves no bytes) says nothing, and a start must not count a
# period told before on another clock and tell it again (review33b).
STORE_KEY, OWN = "alerts/helper_zone", "own"
ASK_SPAN_S = 2 * 86400  # yesterday's and today's day rows: one at least while bytes move
DAY_S = 86400
# A day row says the offset modulo a day: east of UTC+12 reads as west of UTC-12
# (UTC+14 as UTC-10, Hawaii's, the more common of the two). Not rare: New
# Zealand's summer time is UTC+13 (October to April) and reads as UTC-11; a
# day's period is the same instants either way, a week's or a month's begins a
# day off (only where the GUI's zone is not the helper's; review33b).
EAST_MOST_S = 12 * 3600


def zone_of_day_rows(rows: Sequence[UsageRow] | None) -> tzinfo | None:
    """The helper's offset as its latest day row's start (its local midnight)
    shows it; None where that is the GUI's own midnight (its own zone, with
    its clock changes) or no row says. A fixed offset: across the helper's
    clock change it is an hour off until asked again (hourly)."""
    if not rows:
        return None
    start = max(row.start for row in rows)
    if local_midnight(start) == start:
        return None
    offset = (-start) % DAY_S
    return timezone(timedelta(seconds=offset - DAY_S if offset > EAST_MOST_S else offset))


def stored_zone(zone: tzinfo | None) -> str:
    """zone_of_day_rows' answer as kept under STORE_KEY."""
    offset = zone.utcoffset(None) if zone is not None else None
    return OWN if offset is None else str(int(offset.total_seconds()))


def zone_of_stored(value: object) -> tzinfo | None:
    """stored_zone's text back; None (the GUI's own) for none or one not read."""
    try:
        seconds = int(str(value))
    except ValueError:
        return None
    return timezone(timedelta(seconds=seconds)) if abs(seconds) < DAY_S else None
