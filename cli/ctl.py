"""chadthrottle-ctl: list applications and set or clear their limits.

A stable command-line contract that scripts rely on: the subcommands, the
--json output and the exit codes below do not change lightly. Errors are one
line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pwd
import re
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, NoReturn

from chadthrottle.cli.terminal import for_terminal
from chadthrottle.client import HelperClient, HelperClientError
from chadthrottle.contract import (
    ADMIN_OWNER,
    MAX_BURST_BYTES,
    ApplicationInfo,
    BackendInfo,
    ConnectionInfo,
    Direction,
    ErrorName,
    InterfaceInfo,
    RuleInfo,
    RuleScope,
)
from chadthrottle.units import RATE_HELP, UnitError, format_limit, format_rate, parse_rate

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2  # also what argparse uses; and an argument the helper refused
EXIT_NOT_AUTHORIZED = 3
EXIT_NO_SUCH_APPLICATION = 4
EXIT_HELPER_NOT_RUNNING = 5
EXIT_NOT_ENFORCED = 6  # the limit is stored, but the helper says it is not enforced (and why)

EXIT_CODES_HELP = (
    "exit status: 0 ok, 1 other failure, 2 usage or invalid argument, 3 not authorized, "
    "4 no such application, 5 helper not running (or no system bus), "
    "6 the limit was stored but is not enforced now (the reason is printed)"
)


class NotEnforced(Exception):
    """A limit was stored, and the helper reports it is not enforced."""

_EXIT_BY_ERROR: dict[ErrorName, int] = {
    ErrorName.NOT_AUTHORIZED: EXIT_NOT_AUTHORIZED,
    ErrorName.INVALID_ARGUMENT: EXIT_USAGE,
    ErrorName.NO_SUCH_APPLICATION: EXIT_NO_SUCH_APPLICATION,
}

PAUSED_NOTE = "limits are paused: none is enforced (resume with: chadthrottle-ctl resume)"

_BYTES_RE = re.compile(r"^\s*(\d+)\s*(|b|k|kb|kib|m|mb|mib)\s*$")
_BYTES_MULTIPLIERS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2,
                      "mb": 1000**2, "mib": 1024**2}  # fmt: skip


def parse_rate_argument(text: str) -> int | None:
    """argparse type for RATE: bytes/s, or None for unlimited."""
    try:
        return parse_rate(text)
    except UnitError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parse_burst_argument(text: str) -> int:
    """argparse type for --burst: bytes, with an optional K/M/KiB/MiB suffix."""
    match = _BYTES_RE.match(text.lower())
    if not match:
        raise argparse.ArgumentTypeError(f"not a size in bytes: {text!r} (try 64K or 65536)")
    value = int(match.group(1)) * _BYTES_MULTIPLIERS[match.group(2)]
    if value > MAX_BURST_BYTES:
        raise argparse.ArgumentTypeError(f"burst {text!r} is above {MAX_BURST_BYTES} bytes")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chadthrottle-ctl",
        description="See which applications use the network and limit their rates.",
        epilog=f"{RATE_HELP} Rates are bytes/s on the wire at L3 (IP header included). "
        f"{EXIT_CODES_HELP}.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = commands.add_parser("list", help="applications with their rates and limits")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    limit = commands.add_parser(
        "limit", help="limit an application's download and/or upload rate", epilog=RATE_HELP
    )
    limit.add_argument("app", metavar="APP", help="an application id as 'list' prints it, or pid:N")
    limit.add_argument("--down", metavar="RATE", type=parse_rate_argument, default=False,
                       help="download limit in bytes/s ('unlimited' removes it)")
    limit.add_argument("--up", metavar="RATE", type=parse_rate_argument, default=False,
                       help="upload limit in bytes/s ('unlimited' removes it)")
    limit.add_argument("--burst", metavar="BYTES", type=parse_burst_argument, default=0,
                       help="burst in bytes, e.g. 64K (default: the helper's, scaled to the rate)")
    clear = commands.add_parser("clear", help="remove both limits of an application")
    clear.add_argument("app", metavar="APP", help="an application id as 'list' prints it, or pid:N")
    for command in (limit, clear):
        _add_scope_options(command)
    rules = commands.add_parser("rules", help="the stored rules you may see, and whose they are")
    rules.add_argument("--json", action="store_true", help="machine-readable output")
    connections = commands.add_parser("connections", help="the open connections of an application")
    connections.add_argument("app", metavar="APP", help="an application id as 'list' prints it, or pid:N")
    connections.add_argument("--json", action="store_true", help="machine-readable output")
    interfaces = commands.add_parser("interfaces", help="traffic per network interface, and the machine's total")
    interfaces.add_argument("--json", action="store_true", help="machine-readable output")
    commands.add_parser("pause", help="stop enforcing every limit (they are kept; needs an administrator)")
    commands.add_parser("resume", help="enforce the paused limits again (needs an administrator)")
    backends = commands.add_parser("backends", help="enforcement backends and why one is unavailable")
    backends.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def _add_scope_options(command: argparse.ArgumentParser) -> None:
    """--own / --all-users: whose processes the rule is for (default: every
    user's for root, your own for anyone else)."""
    scope = command.add_mutually_exclusive_group()
    scope.add_argument("--own", dest="scope", action="store_const", const=RuleScope.OWN,
                       help="your own rule: it applies to your processes only (the default unless root)")
    scope.add_argument("--all-users", dest="scope", action="store_const", const=RuleScope.ALL,
                       help="an administrator rule for every user's processes; it outranks users' rules "
                            "(needs an administrator; the default for root)")
    command.set_defaults(scope=RuleScope.DEFAULT)


def owner_label(owner: int, my_uid: int | None = None) -> str:
    """Whose rule: "admin", "you", or the user's name."""
    if owner == ADMIN_OWNER:
        return "admin"
    if owner == (os.getuid() if my_uid is None else my_uid):
        return "you"
    try:
        return f"user {pwd.getpwuid(owner).pw_name}"
    except (KeyError, OverflowError):
        return f"uid {owner}"


def _limit_cell(app: ApplicationInfo, direction: Direction) -> str:
    rate_bps = app.limit_bps(direction)
    if not rate_bps:
        return format_limit(0)
    mark = " NOT ENFORCED" if app.limit_problem(direction) else ""
    return f"{format_limit(rate_bps)} ({owner_label(app.limit_owner(direction))}){mark}"


def limit_problems(apps: list[ApplicationInfo]) -> list[str]:
    """One line per limit that is not enforced, with the helper's reason."""
    lines = []
    for app in apps:
        for direction in Direction:
            if app.limit_bps(direction) and app.limit_problem(direction):
                lines.append(f"{app.id}: {direction.value} limit not enforced: {app.limit_problem(direction)}")
    return lines


def _table(rows: list[list[str]]) -> str:
    rows = [[for_terminal(cell) for cell in row] for row in rows]  # names come from other users
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows
    )


def format_applications(apps: list[ApplicationInfo]) -> str:
    rows = [["ID", "NAME", "PIDS", "DOWN", "UP", "DOWN LIMIT", "UP LIMIT"]]
    for app in sorted(apps, key=lambda a: (-(a.down_bps + a.up_bps), a.name, a.id)):
        pids = ",".join(str(pid) for pid in app.pids[:4]) + ("..." if len(app.pids) > 4 else "")
        rows.append([
            app.id, app.name, pids or "-", format_rate(app.down_bps), format_rate(app.up_bps),
            _limit_cell(app, Direction.DOWN), _limit_cell(app, Direction.UP),
        ])  # fmt: skip
    return _table(rows)


def format_rules(rules: list[RuleInfo]) -> str:
    rows = [["ID", "DIRECTION", "LIMIT", "WHOSE", "IN FORCE"]]
    for rule in rules:
        rows.append([rule.app_id, rule.direction, format_limit(rule.rate_bps), owner_label(rule.owner),
                     "yes" if rule.in_force else "no (outranked by an admin rule, or paused)"])  # fmt: skip
    return _table(rows)


def format_backends(backends: list[BackendInfo]) -> str:
    rows = [["BACKEND", "AVAILABLE", "ACTIVE", "REASON"]]
    for backend in backends:
        rows.append([
            backend.name, "yes" if backend.available else "no",
            ",".join(backend.active_directions) or "-", "; ".join(filter(None, [backend.reason, backend.notes])) or "-",
        ])  # fmt: skip
    return _table(rows)


def format_connections(connections: list[ConnectionInfo]) -> str:
    rows = [["PROTO", "LOCAL", "REMOTE", "STATE", "PID"]]
    for connection in sorted(connections, key=lambda c: (c.protocol, c.state, c.local)):
        rows.append([connection.protocol, connection.local, connection.remote, connection.state, str(connection.pid)])
    return _table(rows)


def format_interfaces(interfaces: list[InterfaceInfo]) -> str:
    rows = [["INTERFACE", "DOWN", "UP", "RECEIVED", "SENT"]]
    for interface in interfaces:
        name = interface.name or f"#{interface.ifindex}"
        if interface.netns:
            name = f"{name} ({interface.netns})"
        rows.append([name, format_rate(interface.down_bps), format_rate(interface.up_bps),
                     f"{interface.rx_bytes} B", f"{interface.tx_bytes} B"])
    network = [i for i in interfaces if not i.loopback]
    rows.append(["total (no loopback)", format_rate(sum(i.down_bps for i in network)),
                 format_rate(sum(i.up_bps for i in network)), f"{sum(i.rx_bytes for i in network)} B",
                 f"{sum(i.tx_bytes for i in network)} B"])
    return _table(rows)


Record = ApplicationInfo | BackendInfo | ConnectionInfo | InterfaceInfo | RuleInfo


def _to_json(records: Sequence[Record]) -> str:
    def plain(record: Record) -> dict[str, Any]:
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in asdict(record).items()}  # fmt: skip

    # ensure_ascii (the default): control characters and all non-ASCII as \uNNNN
    return json.dumps([plain(record) for record in records], indent=2, ensure_ascii=True)


async def _run(arguments: argparse.Namespace) -> None:
    async with HelperClient() as client:
        if arguments.command == "list":
            apps = await client.list_applications()
            if arguments.json:  # the array stays as scripts know it; "pause"/"resume" say the state
                print(_to_json(apps))
            else:
                print(format_applications(apps))
                if await client.get_limits_paused():
                    print(PAUSED_NOTE)
                else:
                    for line in limit_problems(apps):
                        print(for_terminal(line))
        elif arguments.command == "rules":
            rules = await client.list_rules()
            print(_to_json(rules) if arguments.json else format_rules(rules))
        elif arguments.command in ("pause", "resume"):
            await client.set_limits_paused(arguments.command == "pause")
            print(PAUSED_NOTE if arguments.command == "pause" else "limits resumed: they are enforced again")
        elif arguments.command == "connections":
            connections = await client.list_connections(arguments.app)
            print(_to_json(connections) if arguments.json else format_connections(connections))
        elif arguments.command == "interfaces":
            interfaces = await client.list_interfaces()
            print(_to_json(interfaces) if arguments.json else format_interfaces(interfaces))
        elif arguments.command == "backends":
            backends = await client.list_backends()
            print(_to_json(backends) if arguments.json else format_backends(backends))
        elif arguments.command == "clear":
            resolved = await client.clear_limit(arguments.app, scope=arguments.scope)
            print(f"{for_terminal(resolved)}: limits removed")
        elif arguments.command == "limit":
            set_directions: list[tuple[str, Direction]] = []
            for direction, rate_bps in ((Direction.DOWN, arguments.down), (Direction.UP, arguments.up)):
                if rate_bps is False:
                    continue
                if rate_bps is None:
                    resolved = await client.clear_limit(arguments.app, direction, scope=arguments.scope)
                    print(f"{for_terminal(resolved)}: {direction.value} limit removed")
                else:
                    resolved = await client.set_limit(arguments.app, direction, rate_bps, arguments.burst,
                                                      scope=arguments.scope)
                    print(f"{for_terminal(resolved)}: {direction.value} limited to {format_rate(rate_bps)}")
                    set_directions.append((resolved, direction))
            await _check_enforced(client, set_directions)


async def _check_enforced(client: HelperClient, limited: list[tuple[str, Direction]]) -> None:
    """Raise NotEnforced when the helper says a limit just set does not hold:
    a script must not believe a limit that the kernel does not apply."""
    if not limited:
        return
    apps = {app.id: app for app in await client.list_applications()}
    reasons = []
    for app_id, direction in limited:
        app = apps.get(app_id)
        if app is None:
            continue  # not listed to this caller (another user runs it too): nothing to check
        if app.limit_problem(direction):
            reasons.append(f"{for_terminal(app_id)}: {direction.value} limit: {for_terminal(app.limit_problem(direction))}")
        elif app.limit_owner(direction) == ADMIN_OWNER and os.getuid() != 0:
            reasons.append(f"{for_terminal(app_id)}: an administrator's {direction.value} limit of "
                           f"{format_limit(app.limit_bps(direction))} applies instead of yours while it exists")  # fmt: skip
    if reasons:
        raise NotEnforced("; ".join(reasons))


def _exit_code(error: HelperClientError) -> int:
    if error.helper_missing:
        return EXIT_HELPER_NOT_RUNNING
    return _EXIT_BY_ERROR.get(error.error, EXIT_FAILED) if error.error else EXIT_FAILED


def _describe(error: HelperClientError) -> str:
    if error.helper_missing:
        if error.name == "org.freedesktop.DBus.Error.NoServer":
            return f"helper not running: {error.message}"
        return "helper not running (start chadthrottle-helper as root, or install the D-Bus service)"
    if error.error is ErrorName.NOT_AUTHORIZED:
        return f"not authorized: {error.message}"
    if error.error is ErrorName.NO_SUCH_APPLICATION:
        return f"no such application: {error.message}"
    return error.message or error.name


def _fail(code: int, text: str) -> NoReturn:
    print(f"chadthrottle-ctl: {for_terminal(text)}", file=sys.stderr)
    raise SystemExit(code)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    if arguments.command == "limit" and arguments.down is False and arguments.up is False:
        parser.error("limit: give --down RATE and/or --up RATE")
    try:
        asyncio.run(_run(arguments))
    except HelperClientError as error:
        _fail(_exit_code(error), _describe(error).splitlines()[0] if _describe(error) else error.name)
    except NotEnforced as error:
        _fail(EXIT_NOT_ENFORCED, f"stored, but not enforced now: {error}")
    except KeyboardInterrupt:
        _fail(130, "interrupted")
    except BrokenPipeError:
        return EXIT_OK
    except Exception as error:  # a bug: still one line, never a traceback
        _fail(EXIT_FAILED, f"failed: {type(error).__name__}: {error}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
