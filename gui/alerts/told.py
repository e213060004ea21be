"""Which used-up quotas were told, kept across starts of the GUI.

Without it every start of the window alerted again for each quota already
used up in this period (walk26: three starts, three alerts). A quota is told
once per (application, direction, period, budget, start of that period); a
new period or another quota is news again. Kept as JSON beside the settings
file. It is only a convenience: a file that cannot be read or is not of our
form is ignored (logged), never a reason to fail; one that cannot be written
costs a repeated alert, not the window.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from chadthrottle.contract import QUOTA_PERIODS, Direction

log = logging.getLogger(__name__)

FILE_NAME = "quota-alerts.json"
FORMAT = 1
MAX_BYTES = 1 << 20  # a file larger than this is not ours
MAX_TOLD = 2000  # the newest are kept
# Longest a period lasts (a clock change's hour included): an entry begun
# longer ago is of a period over.
LONGEST_S = {"day": 25 * 3600, "week": (7 * 24 + 1) * 3600, "month": (31 * 24 + 1) * 3600}
_DIRECTIONS = {d.value for d in Direction}


@dataclass(frozen=True)
class Told:
    """One used-up quota told: began is the unix time its period began."""

    app_id: str
    direction: str
    period: str
    budget: int
    began: int

    def over(self, now_unix: float) -> bool:
        return now_unix - self.began >= LONGEST_S[self.period]


def _entry(item: object) -> Told:
    """ValueError for anything not of the form written below."""
    if not isinstance(item, dict) or set(item) != {"app", "direction", "period", "budget", "began"}:
        raise ValueError(f"not an entry: {item!r:.80}")
    app, direction, period = item["app"], item["direction"], item["period"]
    budget, began = item["budget"], item["began"]
    if not (isinstance(app, str) and app and len(app) <= 4096):
        raise ValueError("bad application id")
    if direction not in _DIRECTIONS or period not in QUOTA_PERIODS:
        raise ValueError(f"bad direction or period: {direction!r:.20} {period!r:.20}")
    if type(budget) is not int or budget <= 0 or type(began) is not int or began < 0:
        raise ValueError("bad budget or period start")
    return Told(app, direction, period, budget, began)


def load(path: Path, now_unix: float) -> set[Told]:
    """What was told, periods over left out; nothing for a file missing,
    unreadable or not of our form."""
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            raise ValueError(f"larger than {MAX_BYTES} bytes")
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError("not format 1")
        items = data.get("told")
        if not isinstance(items, list):
            raise ValueError("no list of quotas told")
        told = {_entry(item) for item in items}
    except FileNotFoundError:
        return set()
    except (OSError, ValueError, RecursionError) as error:  # json's errors are ValueErrors
        log.warning("ignoring %s (%s): used-up quotas may be alerted again", path, error)
        return set()
    return {entry for entry in told if not entry.over(now_unix)}


def save(path: Path, told: set[Told], now_unix: float) -> None:
    """Write what is told (periods over pruned, the newest MAX_TOLD) in place of
    the file, whole or not at all."""
    kept = sorted((e for e in told if not e.over(now_unix)), key=lambda e: e.began)[-MAX_TOLD:]
    data = {"format": FORMAT, "told": [{"app": e.app_id, "direction": e.direction, "period": e.period,
                                        "budget": e.budget, "began": e.began} for e in kept]}  # fmt: skip
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=".quota-alerts.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                json.dump(data, file)
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
    except OSError as error:
        log.warning("could not keep the quotas alerted in %s (%s)", path, error)
