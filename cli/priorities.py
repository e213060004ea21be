"""chadthrottle-ctl priority and capacity (issue 16).

    chadthrottle-ctl priority APP critical|high|normal|low [--own | --all-users]
    chadthrottle-ctl capacity [--json]                          show it, and whether in force
    chadthrottle-ctl capacity --down 50Mbit --up 10Mbit [--estimate | --no-estimate]
    chadthrottle-ctl capacity --estimate                        estimate from scratch
    chadthrottle-ctl capacity --off                             clear it: not set

A priority orders an application's traffic only while a link capacity is set
and in force: ChadThrottle then paces the whole machine's traffic just under it.
Said in the window's words (docs/gui.md, *Priorities*): a direction's capacity
is "in force", "not in force now" or "not set". What a capacity call
does not give is kept (a direction's set rate, estimation on or off), except
that --estimate starts a direction without a RATE from scratch. The
helper checks every value and refuses bad input by name, changing nothing.
"""

from __future__ import annotations

import argparse

from chadthrottle.cli.output import owner_label
from chadthrottle.cli.terminal import for_terminal
from chadthrottle.contract import ESTIMATE_COST, Direction
from chadthrottle.helper_errors import UNKNOWN_METHOD, HelperClientError
from chadthrottle.units import UnitSystem, format_rate

# A direction's capacity, as the window's link field and its tooltip say it.
IN_FORCE, NOT_IN_FORCE, NOT_SET = "in force", "not in force now", "not set"
CLEARED = "link capacity cleared, not set"

TYPE_CHECKING = False  # not typing's (see cli/ctl.py)
if TYPE_CHECKING:
    from chadthrottle.blocking_client import BlockingHelperClient
    from chadthrottle.contract import ApplicationInfo, LinkShapingInfo
    from chadthrottle.priority import Priority

# Priority's words in its order: chadthrottle.priority (an enum to build) is
# imported only when the verb runs; tests/cli/test_priority_verbs.py ties them.
PRIORITY_WORDS = "critical, high, normal, low"
OLDER_HELPER = (
    "priorities need a newer helper: the one running is older than this chadthrottle-ctl (API 5); "
    "restart or update it"
)
# The bus's argument names in a refusal, and what a person typed instead.
_CAPACITY_OPTIONS = (("down_bps", "--down"), ("up_bps", "--up"))


def parse_priority_argument(text: str) -> Priority:
    """argparse type for PRIORITY: one of the four words, any case."""
    from chadthrottle.priority import PriorityError, parse_priority

    try:
        return parse_priority(text)
    except PriorityError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_priority_parsers(
    commands: argparse._SubParsersAction, rate_type: object, add_scope: object
) -> None:
    """The two verbs' options, on the CLI's subcommands."""
    priority = commands.add_parser(
        "priority", help="serve an application's traffic before (or after) others' while the link is full",
        epilog="critical, then high, then normal (every application's default; 'normal' removes a priority), "
        "then low. It takes effect only while a link capacity is set ('chadthrottle-ctl capacity'); "
        "a limit of the application still holds inside its priority.",
    )  # fmt: skip
    priority.add_argument(
        "app", metavar="APP", help="an application id as 'list' prints it, or pid:N"
    )
    priority.add_argument(
        "priority", metavar="PRIORITY", type=parse_priority_argument, help=PRIORITY_WORDS
    )
    add_scope(priority)  # type: ignore[operator]
    capacity = commands.add_parser(
        "capacity", help="the rate of the real bottleneck (the modem), which priorities need; "
        "without options: show it",
        epilog="ChadThrottle paces the whole machine's traffic just under this rate, so the queue forms here, "
        "where priorities order it. Shown per direction: the capacity and whether it is in force, not in force "
        "now, or not set. RATE as for 'limit' (bytes/s, or a unit of bits: 50Mbit); 'off' leaves that "
        "direction's capacity not set. What you do not give is kept, but --estimate estimates a direction "
        "without a RATE from scratch. Setting needs an administrator.",
    )  # fmt: skip
    capacity.add_argument(
        "--down", metavar="RATE", type=rate_type, default=False, help="download capacity"
    )
    capacity.add_argument(
        "--up", metavar="RATE", type=rate_type, default=False, help="upload capacity"
    )
    capacity.add_argument("--estimate", action=argparse.BooleanOptionalAction, default=None,
                          help="let the helper estimate the capacity and follow it (a RATE given is "
                          f"where it starts; {ESTIMATE_COST}); --no-estimate: only the rates set")  # fmt: skip
    capacity.add_argument(
        "--off",
        action="store_true",
        help="clear the link capacity (not set): priorities need one to take effect",
    )
    capacity.add_argument("--json", action="store_true", help="show: machine-readable output")


def check_arguments(parser: argparse.ArgumentParser, arguments: argparse.Namespace) -> None:
    """Status 2 (argparse's) for options that do not go together."""
    if arguments.command != "capacity":
        return
    setting = (
        arguments.down is not False or arguments.up is not False or arguments.estimate is not None
    )
    if arguments.off and (setting or arguments.json):
        parser.error("capacity --off takes no --down, --up, --estimate nor --json")
    if arguments.json and setting:
        parser.error("capacity --json only shows: give it without --down, --up or --estimate")


def _in_cli_words(error: HelperClientError) -> HelperClientError:
    """A refusal as a person reads it here: an older helper said so, the
    bus's argument names as the CLI's options."""
    if error.name == UNKNOWN_METHOD:
        return HelperClientError(error.name, OLDER_HELPER)
    return HelperClientError(error.name, _cli_words(error.message))


def run_priority(
    client: BlockingHelperClient, arguments: argparse.Namespace
) -> tuple[str, list[str]]:
    """Make the call; the line to print, and why the priority is not in force (none: it is)."""
    try:
        return _set_priority(client, arguments)
    except HelperClientError as error:
        raise _in_cli_words(error) from None


def _set_priority(
    client: BlockingHelperClient, arguments: argparse.Namespace
) -> tuple[str, list[str]]:
    from chadthrottle.priority import DEFAULT_PRIORITY

    priority: Priority = arguments.priority
    resolved = client.set_priority(arguments.app, priority, scope=arguments.scope)
    if priority is DEFAULT_PRIORITY:
        return f"{for_terminal(resolved)}: priority removed (normal)", []
    line = f"{for_terminal(resolved)}: priority {priority.value}"
    app = next((a for a in client.list_applications() if a.id == resolved), None)
    return line, priority_reasons(
        app, priority
    ) if app else []  # not listed to this caller: nothing to check


def priority_reasons(app: ApplicationInfo, asked: Priority) -> list[str]:
    """Why the priority just set is not what orders the application's traffic."""
    if app.priority_problem:
        return [f"{app.id}: priority {asked.value}: {app.priority_problem}"]
    if app.priority != asked.value:
        return [f"{app.id}: the priority {app.priority} ({owner_label(app.priority_owner)}) applies instead of "
                f"{asked.value} while it exists"]  # fmt: skip
    return []


def run_capacity(client: BlockingHelperClient, arguments: argparse.Namespace) -> tuple[str, str]:
    """Show, set or switch off the link capacity; (what to print, the problem
    when shaping was asked for and is not done)."""
    try:
        return _capacity(client, arguments)
    except HelperClientError as error:
        raise _in_cli_words(error) from None


def _capacity(client: BlockingHelperClient, arguments: argparse.Namespace) -> tuple[str, str]:
    if arguments.off:
        client.set_link_capacity(0, 0, False)
        return f"{CLEARED}: priorities need one to take effect", ""
    if arguments.down is False and arguments.up is False and arguments.estimate is None:
        shaping = client.get_link_shaping()
        if arguments.json:
            import json

            from chadthrottle.cli.output import plain

            return json.dumps(plain(shaping), indent=2, ensure_ascii=True), ""
        return format_link_shaping(shaping), ""
    down, up, estimate = _wanted(client.get_link_shaping(), arguments)
    client.set_link_capacity(down, up, estimate)
    shaping = client.get_link_shaping()
    return format_link_shaping(shaping), shaping.problem if (down or up or estimate) else ""


def _wanted(current: LinkShapingInfo, arguments: argparse.Namespace) -> tuple[int, int, bool]:
    """(down, up, estimate) to set. --estimate starts a direction not given
    from scratch (0: no starting point); otherwise what is not given is kept."""
    estimate = current.estimate if arguments.estimate is None else arguments.estimate
    kept_down, kept_up = (
        (0, 0) if arguments.estimate else (current.down_set_bps, current.up_set_bps)
    )
    down = kept_down if arguments.down is False else arguments.down or 0
    up = kept_up if arguments.up is False else arguments.up or 0
    return down, up, estimate


def _cli_words(message: str) -> str:
    """A refusal as the CLI's options name things, not the bus's arguments."""
    for bus_name, option in _CAPACITY_OPTIONS:
        message = message.replace(bus_name, option)
    return message


def _rate_cell(rate_bps: int) -> str:
    """ "6.25 MB/s (50.0 Mbit/s)": the CLI's bytes, and the bits a modem is sold in."""
    return f"{format_rate(rate_bps)} ({format_rate(rate_bps, UnitSystem.BITS_DECIMAL)})"


def format_link_shaping(shaping: LinkShapingInfo) -> str:
    """Per direction the capacity, where it came from and whether it is in force
    now, in the window's words (priority_view.link_summary: "in force", "not in
    force now", "not set"; it said "shaping on/off" where the window said
    "Link capacity: not in force"); then estimation, the interfaces it paces and
    any problem."""
    lines = []
    for direction in Direction:
        in_force, on = shaping.capacity_bps(direction), shaping.shaping(direction)
        set_bps = shaping.down_set_bps if direction is Direction.DOWN else shaping.up_set_bps
        held = IN_FORCE if on else NOT_IN_FORCE
        if not in_force and set_bps:  # set, none in force (limits paused)
            what = f"{_rate_cell(set_bps)}, set; {NOT_IN_FORCE}"
        elif not in_force:
            what = f"estimating…; {NOT_IN_FORCE}" if shaping.estimate else NOT_SET
        elif shaping.estimate:
            start = f", started from {_rate_cell(set_bps)} set" if set_bps else ""
            what = f"{_rate_cell(in_force)}, estimated{start}; {held}"
        else:
            what = f"{_rate_cell(in_force)}, set; {held}"
        lines.append(f"{direction.value:<4} capacity {what}")
    lines.append(f"estimate: {'on' if shaping.estimate else 'off'}")
    # The window's words ("Paced on network interface: eth0"); "uplinks:" here (walk28).
    paced = ", ".join(for_terminal(name) for name in shaping.interfaces) or "-"
    lines.append(f"paced on network interfaces: {paced}")
    if shaping.problem:
        lines.append(f"problem: {for_terminal(shaping.problem)}")
    return "\n".join(lines)
