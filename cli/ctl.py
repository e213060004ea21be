"""chadthrottle-ctl: list applications and set or clear their limits.

A stable command-line contract that scripts rely on: the subcommands, the
--json output and the exit codes below do not change lightly. Errors are one
line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import sys
from collections.abc import Callable, Sequence

from chadthrottle.cli.deferred_imports import defer

defer("inspect", "copy")  # before the contract imports dataclasses: see deferred_imports
# ruff: noqa: E402 (the imports below come after defer on purpose)

from chadthrottle.arguments import seconds_type
from chadthrottle.cli.gates import GATE_VERBS, add_gate_parsers, run_gate
from chadthrottle.cli.gates import check_arguments as check_gate_arguments
from chadthrottle.cli.output import (  # re-exported: tests and scripts name them from here
    PAUSED_NOTE,
    applications_report,
    format_applications,
    format_backends,
    format_connections,
    format_interfaces,
    format_processes,
    format_rules,
    limit_problems,
    owner_label,
    problem_words,
    to_json,
)
from chadthrottle.cli.priorities import add_priority_parsers, run_capacity, run_priority
from chadthrottle.cli.priorities import check_arguments as check_priority_arguments
from chadthrottle.cli.schedule import add_schedule_parser, run_schedule
from chadthrottle.cli.schedule import check_arguments as check_schedule_arguments
from chadthrottle.cli.terminal import for_terminal
from chadthrottle.cli.watch import MAX_INTERVAL_S, MIN_INTERVAL_S, HelperGone, watch
from chadthrottle.contract import (
    ADMIN_OWNER,
    LIMIT_REACH,
    MAX_BURST_BYTES,
    NOT_ENFORCED,
    Direction,
    ErrorName,
    RuleScope,
    is_count_unknown,
    limit_problem_words,
)
from chadthrottle.helper_errors import (
    ACTIVATION_TIMED_OUT,
    BUILD_CACHE_COMMAND,
    HelperClientError,
)
from chadthrottle.units import (
    RATE_HELP,
    UnitError,
    UnitSystem,
    format_limit,
    format_rate,
    parse_rate,
)

TYPE_CHECKING = (
    False  # not typing's: importing typing costs a CLI call ~2 ms (mypy reads this name alike)
)
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from chadthrottle.blocking_client import BlockingHelperClient
    from chadthrottle.contract import RuleInfo, ScheduleInfo

__all__ = [
    "PAUSED_NOTE", "applications_report", "build_parser", "format_applications", "format_backends",
    "format_connections", "format_interfaces", "format_processes", "format_rules", "limit_problems", "main", "owner_label",
]  # fmt: skip

# usage --by: UsageResolution's values but minute (not imported here: only the
# usage verb needs chadthrottle.usage_contract; tests/cli/test_usage.py checks).
USAGE_BY = ("hour", "day", "month")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2  # also what argparse uses; and an argument the helper refused
EXIT_NOT_AUTHORIZED = 3
EXIT_NO_SUCH_APPLICATION = 4
EXIT_HELPER_NOT_RUNNING = 5
EXIT_NOT_ENFORCED = (
    6  # the limit (priority, capacity) is stored, but the helper says it is not in force (and why)
    # or a limit is enforced but not met
)

EXIT_CODES_HELP = (
    "exit status: 0 ok, 1 other failure, 2 usage or invalid argument, 3 not authorized, "
    "4 no such application, 5 helper not running (or no system bus; the message says whether it "
    "stopped, its limits off, or stopped unexpectedly, its last limits still in force; with --json "
    "stdout has last_stop and limits_in_force), "
    "6 the limit (or priority, or capacity) was stored but is not enforced now, or a limit is enforced "
    "but not met (the reason is printed)"
)


class NotEnforced(Exception):
    """A limit, priority or capacity was stored, and the helper reports it is not in force."""


class NotMet(NotEnforced):
    """The limits just set are enforced, but measured above (not in force either)."""


_EXIT_BY_ERROR: dict[ErrorName, int] = {
    ErrorName.NOT_AUTHORIZED: EXIT_NOT_AUTHORIZED,
    ErrorName.INVALID_ARGUMENT: EXIT_USAGE,
    ErrorName.NO_SUCH_APPLICATION: EXIT_NO_SUCH_APPLICATION,
}

_BYTES_PATTERN = r"^\s*(\d+)\s*(|b|k|kb|kib|m|mb|mib)\s*$"  # compiled on first use (re's cache)
_BYTES_MULTIPLIERS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2,
                      "mb": 1000**2, "mib": 1024**2}  # fmt: skip


def parse_rate_argument(text: str) -> int | None:
    """argparse type for RATE: bytes/s, or None for unlimited. A bare number
    or prefix is bytes (as parse_rate without units reads it); a unit of bits
    is bits: a link capacity is sold as "50Mbit"."""
    try:
        return parse_rate(text, UnitSystem.BYTES_DECIMAL)
    except UnitError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parse_burst_argument(text: str) -> int:
    """argparse type for --burst: bytes, with an optional K/M/KiB/MiB suffix."""
    match = re.match(_BYTES_PATTERN, text.lower())
    if not match:
        raise argparse.ArgumentTypeError(f"not a size in bytes: {text!r} (try 64K or 65536)")
    digits, unit = match.groups()
    # past 18 digits it is above anyway, and int() refuses more than 4,300
    value = int(digits) * _BYTES_MULTIPLIERS[unit] if len(digits) <= 18 else MAX_BURST_BYTES + 1
    if value > MAX_BURST_BYTES:
        raise argparse.ArgumentTypeError(f"burst {text!r} is above {MAX_BURST_BYTES} bytes")
    return value


@functools.cache
def _terminal_columns() -> int:
    """What shutil.get_terminal_size() gives for the width: $COLUMNS, else
    the terminal's, else 80."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns if sys.__stdout__ else 0
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's own formatter, told the width, so that parsing (which makes
    one per argument) does not import shutil: 1-2 ms of every call."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:  # fmt: skip
        super().__init__(
            prog, indent_increment, max_help_position, width or _terminal_columns() - 2
        )


def _remember_translations() -> None:
    """argparse translates each of its messages anew, and gettext searches
    the locale directories every time: 33 searches, 2-3 ms, to build the
    parser. The answers cannot change within a call, so remember them."""
    if not hasattr(argparse._, "cache_info"):  # type: ignore[attr-defined]
        argparse._ = functools.cache(argparse._)  # type: ignore[attr-defined]


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser (and its subcommands' parsers) with _HelpFormatter."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


class _Unused:
    """What a verb that is not on the command line gets instead of its parser:
    every call on it (add_argument, set_defaults, ...) is ignored."""

    def __getattr__(self, _name: str) -> Callable[..., _Unused]:
        return self._ignore

    def _ignore(self, *_args: object, **_kwargs: object) -> _Unused:
        return self


class _OneVerb(argparse._SubParsersAction):  # type: ignore[type-arg]
    """The subcommands, of which only `only` gets a parser (all when None): the
    parsers of 17 verbs took 2 ms of every call's 25-30 (issue 19)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.only: str | None = None

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        if self.only is not None and name != self.only:
            return _Unused()
        return super().add_parser(name, **kwargs)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; with `only`, the verb of that name alone (the one a call
    names: parsing it is the same), or the whole when there is no such verb."""
    _remember_translations()
    parser = _Parser(
        prog="chadthrottle-ctl",
        description="See which applications use the network and limit their rates.",
        epilog=f"{RATE_HELP} Rates are bytes/s on the wire at L3 (IP header included). "
        f"{EXIT_CODES_HELP}.",
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", action=_OneVerb
    )
    if isinstance(commands, _OneVerb):
        commands.only = only
    listing = commands.add_parser("list", help="applications with their rates and limits")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    limit = commands.add_parser(
        "limit",
        help="limit an application's download and/or upload rate",
        epilog=f"{RATE_HELP} {LIMIT_REACH}",
    )
    limit.add_argument("app", metavar="APP", help="an application id as 'list' prints it, or pid:N")
    limit.add_argument(
        "--down",
        metavar="RATE",
        type=parse_rate_argument,
        default=False,
        help="download limit in bytes/s ('unlimited' removes it)",
    )
    limit.add_argument(
        "--up",
        metavar="RATE",
        type=parse_rate_argument,
        default=False,
        help="upload limit in bytes/s ('unlimited' removes it)",
    )
    limit.add_argument(
        "--burst",
        metavar="BYTES",
        type=parse_burst_argument,
        default=0,
        help="burst in bytes, e.g. 64K (default: the helper's, scaled to the rate)",
    )
    clear = commands.add_parser(
        "clear",
        help="remove both rate limits of an application (a block, quota or schedule stays: "
        "it says which, and how to lift it)",
    )
    clear.add_argument("app", metavar="APP", help="an application id as 'list' prints it, or pid:N")
    for command in (limit, clear):
        _add_scope_options(command)
    rules = commands.add_parser("rules", help="the stored rules you may see, and whose they are")
    rules.add_argument("--json", action="store_true", help="machine-readable output")
    connections = commands.add_parser("connections", help="the open connections of an application")
    connections.add_argument(
        "app", metavar="APP", help="an application id as 'list' prints it, or pid:N"
    )
    connections.add_argument("--json", action="store_true", help="machine-readable output")
    processes = commands.add_parser(
        "processes", help="the running processes of an application, with their own rates"
    )
    processes.add_argument(
        "app", metavar="APP", help="an application id as 'list' prints it, or pid:N"
    )
    processes.add_argument("--json", action="store_true", help="machine-readable output")
    interfaces = commands.add_parser(
        "interfaces", help="traffic per network interface, and the machine's total"
    )
    interfaces.add_argument("--json", action="store_true", help="machine-readable output")
    commands.add_parser(
        "pause", help="stop enforcing every limit (they are kept; needs an administrator)"
    )
    commands.add_parser("resume", help="enforce the paused limits again (needs an administrator)")
    backends = commands.add_parser(
        "backends", help="enforcement backends and why one is unavailable"
    )
    backends.add_argument("--json", action="store_true", help="machine-readable output")
    watching = commands.add_parser(
        "watch", help="what 'list' shows, every second over one connection, until stopped",
        epilog="With --json, one JSON object a line: time (unix seconds), paused, and applications as "
        "'list --json' prints them. Ends with status 5 and 'helper went away' if the helper stops answering; "
        "a reader that closes the pipe ends it quietly (status 0).",
    )  # fmt: skip
    watching.add_argument("--json", action="store_true", help="one JSON object per line")
    watching.add_argument(
        "--interval",
        metavar="SECONDS",
        type=parse_interval_argument,
        default=1.0,
        help="seconds between lines (default 1; 0.1 to 3600)",
    )
    watching.add_argument(
        "--count",
        metavar="N",
        type=parse_count_argument,
        default=None,
        help="stop after N lines (default: until interrupted)",
    )
    usage = commands.add_parser(  # the verb's code is in cli/usage.py, imported only when it runs
        "usage", help="bytes each application moved: today, or since WHEN, in total or by hour, day or month",
        epilog="WHEN: today (the default), 24h, 7d, 4w, 2026-12-01 or @UNIX-SECONDS; with --by day the default "
        "is 30d, with --by month a year. Days begin at local midnight. Loopback is not counted in the table.",
    )  # fmt: skip
    usage.add_argument(
        "app",
        metavar="APP",
        nargs="?",
        default="",
        help="one application id (default: all you may see)",
    )
    usage.add_argument("--since", metavar="WHEN", default=None, help="from when (default: today)")
    usage.add_argument(
        "--by", choices=USAGE_BY, default=None, help="one line per period and application"
    )
    usage.add_argument("--json", action="store_true", help="machine-readable output")
    add_schedule_parser(commands, parse_rate_argument, _add_scope_options)
    add_gate_parsers(commands, parse_rate_argument, _add_scope_options)
    add_priority_parsers(commands, parse_rate_argument, _add_scope_options)
    if only is not None and not commands.choices:  # not a verb: argparse lists them all
        return build_parser()
    return parser


# argparse type for watch --interval: seconds, within the watch bounds (nan and inf refused)
parse_interval_argument = seconds_type(MIN_INTERVAL_S, MAX_INTERVAL_S)


def parse_count_argument(text: str) -> int:
    """argparse type for watch --count: a whole number of lines, at least 1."""
    # ASCII digits (isdigit() takes "²"), and few enough for int() (4,300 at most)
    if not re.fullmatch(r"\s*[0-9]{1,18}\s*", text) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a count of lines (1 or more): {text!r}")
    return int(text)


def _add_scope_options(command: argparse.ArgumentParser) -> None:
    """--own / --all-users: whose processes the rule is for (default: every
    user's for root, your own for anyone else)."""
    scope = command.add_mutually_exclusive_group()
    scope.add_argument(
        "--own",
        dest="scope",
        action="store_const",
        const=RuleScope.OWN,
        help="your own rule: it applies to your processes only (the default unless root)",
    )
    scope.add_argument(
        "--all-users",
        dest="scope",
        action="store_const",
        const=RuleScope.ALL,
        help="an administrator rule for every user's processes; it outranks users' rules "
        "(needs an administrator; the default for root)",
    )
    command.set_defaults(scope=RuleScope.DEFAULT)


def _run(arguments: argparse.Namespace) -> None:
    from chadthrottle.blocking_client import (
        BlockingHelperClient,
    )  # only verbs that call the helper need it

    with BlockingHelperClient() as client:
        if arguments.command == "list":
            apps = client.list_applications()
            if arguments.json:  # the array stays as scripts know it; "pause"/"resume" say the state
                print(to_json(apps))
            else:
                print(applications_report(apps, client.get_limits_paused()))
        elif arguments.command == "watch":
            watch(
                client, as_json=arguments.json, interval_s=arguments.interval, count=arguments.count
            )
        elif arguments.command == "rules":
            rules = client.list_rules()
            if arguments.json:
                print(to_json(rules))
            else:  # whether each priority is in force: ListApplications says
                print(format_rules(rules, client.list_applications()))
        elif arguments.command in ("pause", "resume"):
            client.set_limits_paused(arguments.command == "pause")
            print(
                PAUSED_NOTE
                if arguments.command == "pause"
                else "limits resumed: they are enforced again"
            )
        elif arguments.command == "connections":
            connections = client.list_connections(arguments.app)
            print(to_json(connections) if arguments.json else format_connections(connections))
        elif arguments.command == "processes":
            processes = client.list_processes(arguments.app)
            print(to_json(processes) if arguments.json else format_processes(processes))
        elif arguments.command == "interfaces":
            interfaces = client.list_interfaces()
            print(to_json(interfaces) if arguments.json else format_interfaces(interfaces))
        elif arguments.command == "backends":
            backends = client.list_backends()
            print(to_json(backends) if arguments.json else format_backends(backends))
        elif arguments.command == "clear":
            from chadthrottle.cli.clear import clear_report

            resolved = client.clear_limit(arguments.app, scope=arguments.scope)
            rules, schedules = _rules_now(client)
            print(clear_report(resolved, rules, schedules, os.getuid(), arguments.scope))
        elif arguments.command == "limit":
            _limit(client, arguments)
        elif arguments.command == "usage":
            from chadthrottle.cli.usage import usage_report

            print(usage_report(client, arguments))
        elif arguments.command == "schedule":
            print(run_schedule(client, arguments))
        elif arguments.command in GATE_VERBS:
            print(run_gate(client, arguments))
        elif arguments.command == "priority":
            line, reasons = run_priority(client, arguments)
            print(line)
            if reasons:
                raise NotEnforced("; ".join(reasons))
        elif arguments.command == "capacity":
            text, problem = run_capacity(client, arguments)
            print(text)
            if problem:
                raise NotEnforced(problem)


def _rules_now(client: BlockingHelperClient) -> tuple[list[RuleInfo], list[ScheduleInfo]]:
    """ListRules and ListSchedules: what stays after a ClearLimit is said from them."""
    try:
        return client.list_rules(), client.list_schedules()
    except HelperClientError:  # a helper older than schedules (API 4)
        return client.list_rules(), []


def _limit(client: BlockingHelperClient, arguments: argparse.Namespace) -> None:
    set_directions: list[tuple[str, Direction]] = []
    cleared: list[tuple[str, Direction]] = []
    for direction, rate_bps in ((Direction.DOWN, arguments.down), (Direction.UP, arguments.up)):
        if rate_bps is False:
            continue
        if rate_bps is None:
            resolved = client.clear_limit(arguments.app, direction, scope=arguments.scope)
            print(f"{for_terminal(resolved)}: {direction.value} limit removed")
            cleared.append((resolved, direction))
        else:
            resolved = client.set_limit(
                arguments.app, direction, rate_bps, arguments.burst, scope=arguments.scope
            )
            print(f"{for_terminal(resolved)}: {direction.value} limited to {format_rate(rate_bps)}")
            set_directions.append((resolved, direction))
    if cleared:  # a block, a quota, a schedule of that direction stays: said, as `clear` does
        from chadthrottle.cli.clear import what_stays

        rules, schedules = _rules_now(client)
        for line in what_stays(cleared[0][0], rules, schedules, os.getuid(), arguments.scope,
                               {direction.value for _, direction in cleared}):  # fmt: skip
            print(line)
    _check_enforced(client, set_directions)


def _check_enforced(client: BlockingHelperClient, limited: list[tuple[str, Direction]]) -> None:
    """Raise NotEnforced when the helper says a limit just set does not hold,
    NotMet when each is enforced but measured above it: a script must not
    believe a limit that the kernel does not apply, nor one not met."""
    if not limited:
        return
    apps = {app.id: app for app in client.list_applications()}
    reasons: list[str] = []
    not_met: list[str] = []  # enforced, measured above: said apart from not enforced
    for app_id, direction in limited:
        app = apps.get(app_id)
        if app is None:
            continue  # not listed to this caller (another user runs it too): nothing to check
        if app.limit_reach(direction):  # how it holds, where not on one shaped path
            print(
                f"{for_terminal(app_id)}: {direction.value} limit: {for_terminal(app.limit_reach(direction))}"
            )
        if is_count_unknown(app.limit_problem(direction)):  # held, its quota as last set
            words, reason = problem_words(app.limit_problem(direction))
            print(
                f"{for_terminal(app_id)}: {direction.value} quota {words}: {for_terminal(reason)}"
            )
        elif app.limit_problem(direction):
            words, reason = limit_problem_words(app.limit_problem(direction))
            said = f"{for_terminal(app_id)}: {direction.value} limit: {for_terminal(reason)}"
            (reasons if words == NOT_ENFORCED else not_met).append(said)
        elif app.limit_owner(direction) == ADMIN_OWNER and os.getuid() != 0:
            reasons.append(f"{for_terminal(app_id)}: an administrator's {direction.value} limit of "
                           f"{format_limit(app.limit_bps(direction))} applies instead of yours while it exists")  # fmt: skip
    if reasons:  # "not enforced" heads the message; those not met say so
        raise NotEnforced("; ".join([*reasons, *(f"not met: {said}" for said in not_met)]))
    if not_met:
        raise NotMet("; ".join(not_met))


def _exit_code(error: HelperClientError) -> int:
    if error.helper_missing:
        return EXIT_HELPER_NOT_RUNNING
    return _EXIT_BY_ERROR.get(error.error, EXIT_FAILED) if error.error else EXIT_FAILED


def _describe(error: HelperClientError) -> str:
    if error.helper_missing:
        gone = helper_gone_words()
        if gone:  # how it ended decides what holds: its limits off, or left in force
            return f"helper not running: {gone}"
        if error.name == "org.freedesktop.DBus.Error.NoServer":
            return f"helper not running: {error.message}"
        return (
            "helper not running (start chadthrottle-helper as root, or install the D-Bus service)"
        )
    if error.name == ACTIVATION_TIMED_OUT:
        return (
            f"{error.message}: the helper's first start on a new kernel compiles its "
            f"programs; try again shortly, or run {BUILD_CACHE_COMMAND} first"
        )
    if error.error is ErrorName.NOT_AUTHORIZED:
        return f"not authorized: {error.message}"
    if error.error is ErrorName.NO_SUCH_APPLICATION:
        return f"no such application: {error.message}"
    return error.message or error.name


def helper_gone_words() -> str:
    """How the helper that is not on the bus ended, from its run record
    (chadthrottle.helper_run_state): "it stopped — its limits are off", "it
    stopped unexpectedly — its last limits stay in force until it starts
    again", or "" where the record does not say (none, or not to be trusted)."""
    from chadthrottle.helper_run_state import (
        STOPPED_CLEAN,
        STOPPED_KILLED,
        STOPPED_KILLED_PAUSED,
        LastStop,
        read_last_stop,
    )

    said = {LastStop.STOPPED: STOPPED_CLEAN, LastStop.KILLED: STOPPED_KILLED,
            LastStop.KILLED_PAUSED: STOPPED_KILLED_PAUSED}.get(read_last_stop(None))  # fmt: skip
    return "it " + said.removeprefix("The helper ").removesuffix(".") if said else ""


def helper_gone_json() -> str:
    """What --json prints on stdout when the helper is not on the bus (exit 5):
    {"helper": "not running", "last_stop": "stopped" | "killed" |
    "killed-paused" | "running" | "unknown", "limits_in_force": false | true |
    null}: a killed helper's limits stay in the kernel, a stopped one's are
    off, and so are those of one killed while they were paused; else not known."""
    import json

    from chadthrottle.helper_run_state import LastStop, read_last_stop

    found = read_last_stop(None)
    in_force = {LastStop.STOPPED: False, LastStop.KILLED: True, LastStop.KILLED_PAUSED: False}.get(
        found
    )
    return json.dumps(
        {"helper": "not running", "last_stop": found.value, "limits_in_force": in_force}
    )


def _fail(code: int, text: str) -> NoReturn:
    print(f"chadthrottle-ctl: {for_terminal(text)}", file=sys.stderr)
    raise SystemExit(code)


def _quiet_stdout() -> None:
    """The reader closed the pipe: send what is left to /dev/null, so the
    interpreter's final flush neither fails nor complains."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    parser = build_parser(words[0] if words and not words[0].startswith("-") else None)
    arguments = parser.parse_args(argv)
    if arguments.command == "limit" and arguments.down is False and arguments.up is False:
        parser.error("limit: give --down RATE and/or --up RATE")
    if arguments.command == "usage":
        from chadthrottle.cli.usage import check_arguments

        check_arguments(parser, arguments)  # --since, read once; status 2 if it cannot be
    if arguments.command == "schedule":
        check_schedule_arguments(parser, arguments)
    check_gate_arguments(parser, arguments)
    check_priority_arguments(parser, arguments)
    try:
        _run(arguments)
        sys.stdout.flush()  # here, so that a closed pipe is seen below and not at exit
    except HelperClientError as error:
        from chadthrottle.cli.error_words import (
            in_cli_words,
        )  # the helper's argument names as this verb's options

        described = in_cli_words(arguments.command, _describe(error))
        if (
            error.helper_missing
            and getattr(arguments, "json", False)
            and arguments.command != "watch"
        ):
            print(helper_gone_json())  # stdout: a script reads what holds (exit 5 still)
        _fail(_exit_code(error), described.splitlines()[0] if described else error.name)
    except NotMet as error:  # the same status: a script must not believe it is held
        _fail(EXIT_NOT_ENFORCED, f"stored and enforced, but not met now: {error}")
    except NotEnforced as error:
        _fail(EXIT_NOT_ENFORCED, f"stored, but not enforced now: {error}")
    except HelperGone as error:
        gone = helper_gone_words()
        _fail(EXIT_HELPER_NOT_RUNNING, f"helper went away: {error}" + (f"; {gone}" if gone else ""))
    except KeyboardInterrupt:
        _fail(130, "interrupted")
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_OK
    except Exception as error:  # a bug: still one line, never a traceback
        _fail(EXIT_FAILED, f"failed: {type(error).__name__}: {error}")
    return EXIT_OK


def run() -> NoReturn:
    """The installed command: main(), its output flushed, then out without the
    interpreter's clean-up of every module it loaded (about 2 ms of CPU, and
    nothing here needs it: no atexit work, and the kernel closes the bus socket).
    Tests call main(), which returns."""
    try:
        status = main()
    except SystemExit as leaving:  # argparse (usage, --help) and _fail
        if leaving.code is not None and not isinstance(leaving.code, int):
            raise
        status = leaving.code or 0
    except BrokenPipeError:  # --help | head -n 1: the reader left while argparse wrote
        _quiet_stdout()
        status = EXIT_OK
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    run()
