"""The zone a quota's period is counted in: the helper's. The helper resets a
quota at its own local midnight (helper/engine/quotas.py); the GUI counted the
period on its own clock (gui30), so a session whose TZ was not the helper's
told a quota used up again after the helper's reset as the same period (or
one not yet reset as a new one). The contract says where the helper's days
begin: GetUsage's day rows "begin at the helper's local midnight"."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta, timezone, tzinfo

from chadthrottle.gui.models.usage_periods import local_midnight
from chadthrottle.usage_contract import UsageRow

ZONE_KEY = "alerts:helper-zone"  # GetUsage's key (usageFetched): the alerts' own
ASK_SPAN_S = 2 * 86400  # yesterday's and today's day rows: one at least while bytes move
DAY_S = 86400
# A day row says the offset modulo a day: east of UTC+12 reads as west of UTC-12
# (UTC+14 as UTC-10, Hawaii's, the more common of the two).
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
