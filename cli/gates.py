"""chadthrottle-ctl block, unblock and quota.

    chadthrottle-ctl block APP [--down | --up]
    chadthrottle-ctl unblock APP [--down | --up]
    chadthrottle-ctl quota APP 5MB --per day [--reset HH:MM] [--then block|RATE] [--down | --up]
    chadthrottle-ctl quota APP --off [--down | --up]     (forgets the period's use: a quota set
                                                        again counts from zero; SIZE again keeps it)

Without --down or --up both directions (a quota: each its own budget). The
helper checks every value and refuses bad input by name, changing nothing.
"""

from __future__ import annotations

import argparse
import re

from chadthrottle.cli.terminal import for_terminal
from chadthrottle.contract import BLOCK_LEASE_S, QUOTA_PERIODS, Direction
from chadthrottle.units import UnitError, format_rate, format_size
from chadthrottle.units import parse_size as units_parse_size

TYPE_CHECKING = False  # not typing's (see cli/ctl.py)
if TYPE_CHECKING:
    from chadthrottle.blocking_client import BlockingHelperClient

GATE_VERBS = ("block", "unblock", "quota")
# What a block is while the helper is gone (docs/helper.md, "Block and quotas").
BLOCK_HELD_NOTE = (
    f"held by the kernel while the helper runs; if the helper stops or is killed, traffic flows "
    f"again within {BLOCK_LEASE_S:g} s until it starts again"
)
# compiled on first use (re caches them), not by every call at import
_CLOCK_PATTERN = r"^([01][0-9]|2[0-3]):([0-5][0-9])$"


def parse_size(text: str) -> int:
    """argparse type for a quota: 5MB, 500M, 2GiB, 1000000 (decimal units, or
    binary with i); the helper checks the bounds."""
    try:
        return units_parse_size(text)
    except UnitError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parse_clock(text: str) -> int:
    """argparse type for --reset: HH:MM, as a minute of the day."""
    match = re.match(_CLOCK_PATTERN, text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a time of day: {text!r} (HH:MM, 00:00 to 23:59)")
    return int(match.group(1)) * 60 + int(match.group(2))


def add_gate_parsers(
    commands: argparse._SubParsersAction, rate_type: object, add_scope: object
) -> None:
    """The three verbs' options, on the CLI's subcommands."""
    block = commands.add_parser("block", help="let no data of an application through, open connections "
                                "included, until unblocked")  # fmt: skip
    unblock = commands.add_parser("unblock", help="lift a block (a limit beneath it applies again)")
    quota = commands.add_parser(
        "quota", help="bytes per day, week or month for an application; spent, it is blocked or throttled",
        epilog="SIZE: 5MB, 2GB, 500MiB (bytes on the wire at L3). Periods begin at --reset (default 00:00) of "
        "the helper's local time: each day, each Monday, each 1st. Without --down/--up each direction gets "
        "the budget.",
    )  # fmt: skip
    quota.add_argument("--per", choices=QUOTA_PERIODS, help="the period")
    quota.add_argument(
        "--reset", metavar="HH:MM", type=parse_clock, help="when periods begin (default 00:00)"
    )
    quota.add_argument(
        "--then",
        metavar="block|RATE",
        help="when spent: block (the default) or limit to RATE until the next period",
    )
    quota.add_argument(
        "--off",
        action="store_true",
        help="remove the quota and forget what its period used (one set again counts from zero)",
    )
    for command in (block, unblock, quota):
        command.add_argument(
            "app", metavar="APP", help="an application id as 'list' prints it, or pid:N"
        )
        if command is quota:
            quota.add_argument(
                "size", metavar="SIZE", type=parse_size, nargs="?", default=None, help="the budget"
            )
        direction = command.add_mutually_exclusive_group()
        direction.add_argument(
            "--down",
            dest="direction",
            action="store_const",
            const=Direction.DOWN,
            help="downloads only",
        )
        direction.add_argument(
            "--up", dest="direction", action="store_const", const=Direction.UP, help="uploads only"
        )
        command.set_defaults(direction=None, rate_type=rate_type)
        add_scope(command)  # type: ignore[operator]


def check_arguments(parser: argparse.ArgumentParser, arguments: argparse.Namespace) -> None:
    """Status 2 (argparse's) for options that do not go together."""
    if arguments.command != "quota":
        return
    if arguments.off:
        if (
            arguments.size is not None
            or arguments.per
            or arguments.reset is not None
            or arguments.then is not None
        ):
            parser.error("quota --off takes no SIZE, --per, --reset nor --then")
        return
    if arguments.size is None or not arguments.per:
        parser.error("quota: give SIZE and --per day|week|month (or --off)")
    if arguments.reset is None:
        arguments.reset = 0
    if arguments.then is None:
        arguments.then = "block"
    elif arguments.then != "block":
        try:
            arguments.then = arguments.rate_type(arguments.then)
        except argparse.ArgumentTypeError as error:
            parser.error(f"quota --then: {error}")
        if arguments.then is None:
            parser.error("quota --then: block or a rate, not unlimited")


def _still_blocked_note(
    client: BlockingHelperClient, app_id: str, direction: Direction | None
) -> str:
    """unblock lifts the plain block only: name an active schedule that still
    blocks a direction asked (it said 'unblocked' and nothing changed)."""
    asked = [direction] if direction else list(Direction)
    names = sorted({s.name for s in client.list_schedules() if s.app_id == app_id and s.active and any(
        s.down_blocked if d is Direction.DOWN else s.up_blocked for d in asked)})  # fmt: skip
    if not names:
        return ""
    return (
        f"; still blocked by the schedule {' and '.join(for_terminal(n) for n in names)} while it is active "
        f"(chadthrottle-ctl schedule remove {for_terminal(app_id)} NAME lifts it)"
    )


def run_gate(client: BlockingHelperClient, arguments: argparse.Namespace) -> str:
    """Make the call; the line to print."""
    app, direction, scope = arguments.app, arguments.direction, arguments.scope
    which = direction.value if direction else "down and up"
    if arguments.command in ("block", "unblock"):
        blocked = arguments.command == "block"
        resolved = client.set_blocked(app, direction, blocked, scope=scope)
        if not blocked:
            return f"{for_terminal(resolved)}: {which} unblocked{_still_blocked_note(client, resolved, direction)}"
        return f"{for_terminal(resolved)}: {which} blocked ({BLOCK_HELD_NOTE})"
    if arguments.off:
        resolved = client.clear_quota(app, direction, scope=scope)
        return (
            f"{for_terminal(resolved)}: {which} quota removed (what its period used is forgotten)"
        )
    then_bps = 0 if arguments.then == "block" else arguments.then
    resolved = client.set_quota(
        app, direction, arguments.size, arguments.per, arguments.reset, then_bps, scope=scope
    )
    then = f"limited to {format_rate(then_bps)}" if then_bps else "blocked"
    return (f"{for_terminal(resolved)}: {which} quota of {format_size(arguments.size)} per {arguments.per}, "
            f"then {then}{_period_note(client, resolved, direction)}")  # fmt: skip


def _period_note(client: BlockingHelperClient, app_id: str, direction: Direction | None) -> str:
    """The current period as the helper counts it (ListRules, API 8), so a
    caller whose zone is not the helper's reads when it began and ends; ""
    from an older helper. The caller's own rule if listed, else any."""
    import os

    from chadthrottle.cli.output import quota_period_words  # only this verb needs it
    from chadthrottle.helper_errors import HelperClientError

    asked = {direction.value} if direction else {d.value for d in Direction}
    try:
        listed = client.list_rules()
    except HelperClientError:  # the quota is set: a failed read back does not undo that
        return ""
    rules = [r for r in listed if r.app_id == app_id and r.direction in asked
             and r.quota_period_start]  # fmt: skip
    rules.sort(key=lambda r: r.owner != os.getuid())
    return f"; this period: {quota_period_words(rules[0])}" if rules else ""
