"""chadthrottle-ctl usage: what each application moved, from the helper's history.

`usage [APP] [--since WHEN] [--by hour|day|month] [--json]`. Without --by, one
line per application with its totals over the range and a total line; with
--by, one line per period and application. Only this verb imports this module
(ctl.py keeps other verbs' start-up as it was). Periods are the helper's: days
and months begin at local midnight.

WHEN is `today` (the default; without --by, and with --by hour), `Nh` (the
last N hours, from the start of an hour), `Nd` (today and the N-1 days before
it), `Nw` (N weeks of days), `YYYY-MM-DD` (that day's local midnight) or
`@UNIX` (unix seconds). With --by day the default is 30d; with --by month,
the start of the month 11 months ago (a year of months). With --by, the
first period is whole: --since goes back to the start of its hour, day or
month (the helper returns the periods that begin in the range). The table
names each application as `list` does (--json keeps the ids).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping

from chadthrottle.cli.terminal import for_terminal
from chadthrottle.helper_errors import HelperClientError
from chadthrottle.units import format_size as format_bytes
from chadthrottle.usage_contract import UsageResolution, UsageRow

TYPE_CHECKING = (
    False  # not typing's: importing typing costs a CLI call ~2 ms (mypy reads this name alike)
)
if TYPE_CHECKING:
    import argparse
    from typing import Any

    from chadthrottle.blocking_client import BlockingHelperClient

_RELATIVE_RE = re.compile(r"([1-9][0-9]{0,5})([hdw])", re.ASCII)
_DATE_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})", re.ASCII)
_UNIX_RE = re.compile(r"@([0-9]{1,12})", re.ASCII)
DAY_S, HOUR_S = 86_400, 3_600
# Without --by: the finest stored level that still holds the whole range.
MINUTES_KEPT_S, HOURS_KEPT_S = DAY_S, 90 * DAY_S


class UsageArgumentError(ValueError):
    """--since cannot be read; the message says what would be."""


def _midnight(moment: float, days_back: int = 0) -> int:
    year, month, day = time.localtime(moment)[:3]
    return int(time.mktime((year, month, day - days_back, 0, 0, 0, 0, 0, -1)))


def _default_since(by: UsageResolution | None, now: float) -> int:
    if by is UsageResolution.DAY:
        return _midnight(now, 29)
    if by is UsageResolution.MONTH:
        year, month = time.localtime(now)[:2]
        return int(time.mktime((year, month - 11, 1, 0, 0, 0, 0, 0, -1)))
    return _midnight(now)


def parse_since(text: str | None, by: UsageResolution | None, now: float) -> int:
    """Unix seconds for WHEN (see the module's docstring)."""
    if text is None:
        return _default_since(by, now)
    text = text.strip().lower()
    if text == "today":
        return _midnight(now)
    if match := _RELATIVE_RE.fullmatch(text):
        count, unit = int(match.group(1)), match.group(2)
        if unit == "h":
            start = int(now) - count * HOUR_S
            return start - start % HOUR_S
        return _midnight(now, count * (7 if unit == "w" else 1) - 1)
    if match := _DATE_RE.fullmatch(text):
        year, month, day = (int(part) for part in match.groups())
        try:
            time.strptime(text, "%Y-%m-%d")  # refuses 2026-02-30
        except ValueError:
            raise UsageArgumentError(f"no such date: {text!r}") from None
        return int(time.mktime((year, month, day, 0, 0, 0, 0, 0, -1)))
    if match := _UNIX_RE.fullmatch(text):
        return int(match.group(1))
    raise UsageArgumentError(
        f"--since {text!r}: give today, 24h, 7d, 4w, 2026-12-01 or @UNIX-SECONDS"
    )


def check_arguments(parser: argparse.ArgumentParser, arguments: argparse.Namespace) -> None:
    """Turn --since into arguments.since_unix and --by into a UsageResolution;
    a usage error (status 2) if --since cannot be read."""
    now = time.time()
    arguments.by = UsageResolution(arguments.by) if arguments.by else None
    try:
        arguments.since_unix = parse_since(arguments.since, arguments.by, now)
    except UsageArgumentError as error:
        parser.error(f"usage: {error}")
    if arguments.since_unix >= now:
        parser.error(f"usage: --since {arguments.since!r} is not in the past")
    if (
        arguments.by is not None
    ):  # the helper returns periods that begin at or after since: the whole first one
        arguments.since_unix = period_start(arguments.by, arguments.since_unix)


def period_start(by: UsageResolution, moment: int) -> int:
    """The start of the hour, local day or local month that moment falls in."""
    if by is UsageResolution.HOUR:
        return moment - moment % HOUR_S
    if by is UsageResolution.MONTH:
        year, month = time.localtime(moment)[:2]
        return int(time.mktime((year, month, 1, 0, 0, 0, 0, 0, -1)))
    return _midnight(moment)


def totals_resolution(since: int, now: float) -> UsageResolution:
    """The finest level the helper still keeps for the whole of [since, now)."""
    if now - since <= MINUTES_KEPT_S and since % HOUR_S:
        return UsageResolution.MINUTE
    if now - since <= HOURS_KEPT_S:
        return UsageResolution.HOUR
    return UsageResolution.DAY


_COUNT_KEYS = ("down_bytes", "up_bytes", "loopback_down_bytes", "loopback_up_bytes")


def _totals(rows: list[UsageRow]) -> dict[str, list[int]]:
    totals: dict[str, list[int]] = {}
    for row in rows:
        total = totals.setdefault(row.app_id, [0, 0, 0, 0])
        for at, key in enumerate(_COUNT_KEYS):
            total[at] += getattr(row, key)
    return totals


def _period_label(by: UsageResolution, start: int) -> str:
    form = {UsageResolution.HOUR: "%Y-%m-%d %H:00", UsageResolution.DAY: "%Y-%m-%d",
            UsageResolution.MONTH: "%Y-%m", UsageResolution.MINUTE: "%Y-%m-%d %H:%M"}[by]  # fmt: skip
    return time.strftime(form, time.localtime(start))


def _table(rows: list[list[str]], right_from: int) -> str:
    rows = [
        [for_terminal(cell) for cell in row] for row in rows
    ]  # ids come from other users and the kernel
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.rjust(width) if column >= right_from else cell.ljust(width)
                  for column, (cell, width) in enumerate(zip(row, widths, strict=True))).rstrip()
        for row in rows
    )  # fmt: skip


def shown_names(app_ids: Iterable[str], listed: Mapping[str, str]) -> dict[str, str]:
    """Each id's name as people read it: as `list` names a running application
    (listed: id -> ListApplications' name), else its .desktop file's or its id's
    end (app_names.fallback_name: the helper keeps no names); "name (id)" where
    two of them share a name. Ids alone were shown (walk26)."""
    from chadthrottle.app_names import fallback_name, names_apart

    return names_apart(
        {app_id: listed.get(app_id) or fallback_name(app_id) for app_id in set(app_ids)}
    )


def format_usage(
    rows: list[UsageRow],
    by: UsageResolution | None,
    since: int,
    names: Mapping[str, str] | None = None,
) -> str:
    """The table people read: per application (busiest first), or per period
    and application; then the total. Loopback is left out, as in `list`.
    names: id -> the name shown (shown_names); without, the ids."""
    named = names or {}
    totals = _totals(rows)
    grand = [sum(total[at] for total in totals.values()) for at in range(2)]
    header = (
        f"since {time.strftime('%Y-%m-%d %H:%M', time.localtime(since))} (loopback not counted)"
    )
    if by is None:
        table = [["APPLICATION", "DOWNLOAD", "UPLOAD", "TOTAL"]]
        for app_id, total in sorted(
            totals.items(), key=lambda item: (-(item[1][0] + item[1][1]), item[0])
        ):
            if total[0] or total[1]:
                table.append(
                    [
                        named.get(app_id, app_id),
                        format_bytes(total[0]),
                        format_bytes(total[1]),
                        format_bytes(total[0] + total[1]),
                    ]
                )
        table.append(
            ["total", format_bytes(grand[0]), format_bytes(grand[1]), format_bytes(sum(grand))]
        )
        return header + "\n" + _table(table, right_from=1)
    table = [[by.value.upper(), "APPLICATION", "DOWNLOAD", "UPLOAD", "TOTAL"]]
    for row in sorted(rows, key=lambda r: (r.start, -(r.down_bytes + r.up_bytes), r.app_id)):
        if row.down_bytes or row.up_bytes:
            table.append([_period_label(by, row.start), named.get(row.app_id, row.app_id), format_bytes(row.down_bytes),
                          format_bytes(row.up_bytes), format_bytes(row.down_bytes + row.up_bytes)])  # fmt: skip
    table.append(
        ["total", "", format_bytes(grand[0]), format_bytes(grand[1]), format_bytes(sum(grand))]
    )
    return header + "\n" + _table(table, right_from=2)


def usage_json(rows: list[UsageRow], by: UsageResolution | None, since: int, until: int) -> str:
    """{"since", "until", "by", "totals": [per application], "total", and with --by "rows"}."""
    import json  # only JSON needs it

    totals = _totals(rows)
    report: dict[str, Any] = {
        "since": since, "until": until, "by": by.value if by else None,
        "totals": [{"app_id": app_id, **dict(zip(_COUNT_KEYS, total, strict=True))} for app_id, total in sorted(totals.items())],
        "total": {key: sum(total[at] for total in totals.values()) for at, key in enumerate(_COUNT_KEYS)},
    }  # fmt: skip
    if by is not None:
        report["rows"] = [{"app_id": r.app_id, "start": r.start, "end": r.end,
                           **{key: getattr(r, key) for key in _COUNT_KEYS}} for r in rows]  # fmt: skip
    return json.dumps(report, indent=2, ensure_ascii=True)


def usage_report(client: BlockingHelperClient, arguments: argparse.Namespace) -> str:
    """Ask the helper, and what `usage` prints."""
    now = time.time()
    since, by = arguments.since_unix, arguments.by
    resolution = by or totals_resolution(since, now)
    rows = client.get_usage(arguments.app or "", since, 0, resolution)
    if arguments.json:  # ids, as scripts know them
        return usage_json(rows, by, since, int(now))
    return format_usage(
        rows, by, since, shown_names((row.app_id for row in rows), _listed_names(client))
    )


def _listed_names(client: BlockingHelperClient) -> dict[str, str]:
    """Running applications' names by id; none when the helper did not answer:
    the usage it gave is still shown, named as gone applications are (review28)."""
    try:
        return {app.id: app.name for app in client.list_applications()}
    except HelperClientError:
        return {}
