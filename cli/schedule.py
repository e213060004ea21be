"""chadthrottle-ctl schedule: limits in force only on some days between two times.

    chadthrottle-ctl schedule APP --limit 1M --days mon-fri --from 09:00 --to 17:00
    chadthrottle-ctl schedule APP --block both --days sat,sun --from 22:00 --to 06:00
    chadthrottle-ctl schedule list [--json]
    chadthrottle-ctl schedule remove APP [NAME]     (NAME as 'list' shows it; none: every one)

Imported only when the verb runs. The helper checks everything (days, times,
overlaps, daylight saving) and refuses bad input by name, changing nothing;
here only what argparse cannot say is checked: which options go together.
"""

from __future__ import annotations

import argparse

from chadthrottle.cli.output import owner_label, to_json
from chadthrottle.cli.terminal import for_terminal
from chadthrottle.units import format_rate

TYPE_CHECKING = False  # not typing's (see cli/ctl.py)
if TYPE_CHECKING:
    from chadthrottle.blocking_client import BlockingHelperClient
    from chadthrottle.contract import ScheduleInfo

LIST, REMOVE = "list", "remove"


def add_schedule_parser(
    commands: argparse._SubParsersAction, rate_type: object, add_scope: object
) -> None:
    """The verb's options, on the CLI's subcommands."""
    schedule = commands.add_parser(
        "schedule", help="limit an application only on some days between two times; 'schedule list', "
        "'schedule remove APP [NAME]'",
        epilog="DAYS: mon..sun, ranges (mon-fri), lists (sat,sun), daily, weekdays or weekend. Times are HH:MM in "
        "the helper's local time; --to at or before --from runs past midnight. While a schedule is active its "
        "rates replace the application's plain limit; overlapping schedules of one application are refused.",
    )  # fmt: skip
    schedule.add_argument(
        "app", metavar="APP|list|remove", help="an application id as 'list' prints it, or pid:N"
    )
    schedule.add_argument(
        "more", metavar="...", nargs="*", help="remove: APP and the schedule's NAME (default: all)"
    )
    schedule.add_argument("--days", metavar="DAYS", help="e.g. mon-fri")
    schedule.add_argument("--from", dest="start", metavar="HH:MM", help="when it starts")
    schedule.add_argument("--to", dest="end", metavar="HH:MM", help="when it ends")
    schedule.add_argument(
        "--limit",
        metavar="RATE",
        type=rate_type,
        default=False,
        help="both directions (not with --down or --up)",
    )
    schedule.add_argument(
        "--down", metavar="RATE", type=rate_type, default=False, help="download only"
    )
    schedule.add_argument("--up", metavar="RATE", type=rate_type, default=False, help="upload only")
    schedule.add_argument(
        "--block",
        choices=("down", "up", "both"),
        default="",
        help="block these directions while it is active (instead of a rate)",
    )
    schedule.add_argument("--json", action="store_true", help="list: machine-readable output")
    add_scope(schedule)  # type: ignore[operator]


def check_arguments(parser: argparse.ArgumentParser, arguments: argparse.Namespace) -> None:
    """Status 2 (argparse's) for options that do not go together."""
    if arguments.app == LIST:
        if arguments.more:
            parser.error("schedule list takes no application")
        return
    if arguments.app == REMOVE:
        if not arguments.more:
            parser.error(
                "schedule remove: give APP, and the schedule's NAME as 'schedule list' shows it"
            )
        return
    if arguments.more:
        parser.error(f"schedule: unexpected {' '.join(arguments.more)!r}")
    missing = [option for option, value in (("--days", arguments.days), ("--from", arguments.start),
                                            ("--to", arguments.end)) if not value]  # fmt: skip
    if missing:
        parser.error(f"schedule: give {', '.join(missing)}")
    if arguments.limit is not False and (arguments.down is not False or arguments.up is not False):
        parser.error(
            "schedule: --limit sets both directions; give it, or --down and/or --up, not both"
        )
    down, up = _rates(arguments)
    if not down and not up and not arguments.block:
        parser.error(
            "schedule: give --limit RATE, --down RATE and/or --up RATE (not 'unlimited'), or --block"
        )


def _rates(arguments: argparse.Namespace) -> tuple[int, int]:
    """(down, up) bytes/s, 0 where the schedule leaves the direction alone."""
    both = arguments.limit or 0
    return (arguments.down or both or 0), (arguments.up or both or 0)


def run_schedule(client: BlockingHelperClient, arguments: argparse.Namespace) -> str:
    """What the verb prints."""
    if arguments.app == LIST:
        schedules = client.list_schedules()
        return to_json(schedules) if arguments.json else format_schedules(schedules)
    if arguments.app == REMOVE:
        app, name = arguments.more[0], " ".join(arguments.more[1:])
        resolved = client.clear_schedules(app, name, scope=arguments.scope)
        return (
            f"{for_terminal(resolved)}: {'schedule ' + name if name else 'every schedule'} removed"
        )
    down, up = _rates(arguments)
    resolved = client.set_schedule(arguments.app, arguments.days, arguments.start, arguments.end, down, up,
                                   arguments.block, scope=arguments.scope)  # fmt: skip
    what = ", ".join([f"{name} {format_rate(rate)}" for name, rate in (("down", down), ("up", up)) if rate]
                     + ([f"{arguments.block} blocked"] if arguments.block else []))  # fmt: skip
    return f"{for_terminal(resolved)}: {what} on {arguments.days} {arguments.start}-{arguments.end}"


def format_schedules(schedules: list[ScheduleInfo]) -> str:
    from chadthrottle.cli.output import _table

    rows = [["ID", "SCHEDULE", "DOWN", "UP", "WHOSE", "ACTIVE NOW"]]
    for s in schedules:
        down, up = (("blocked" if blocked else format_rate(rate) if rate else "-")
                    for rate, blocked in ((s.down_bps, s.down_blocked), (s.up_bps, s.up_blocked)))  # fmt: skip
        rows.append([s.app_id, s.name, down, up, owner_label(s.owner), "yes" if s.active else "no"])
    return _table(rows)
