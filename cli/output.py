"""What chadthrottle-ctl prints: tables for people, JSON for scripts.

Every name in a table comes from the helper, and so from other users and the
kernel: each cell goes through for_terminal. JSON keeps ensure_ascii, so
control characters and all non-ASCII come out as \\uNNNN.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

from chadthrottle.cli.terminal import for_terminal
from chadthrottle.contract import (
    ADMIN_OWNER,
    ApplicationInfo,
    BackendInfo,
    ConnectionInfo,
    Direction,
    InterfaceInfo,
    LinkShapingInfo,
    ProcessTraffic,
    RuleInfo,
    ScheduleInfo,
    is_count_unknown,
    is_held_before,
    limit_problem_words,
)
from chadthrottle.units import format_limit, format_rate, format_size

TYPE_CHECKING = (
    False  # not typing's: importing typing costs a CLI call ~2 ms (mypy reads this name alike)
)
if TYPE_CHECKING:
    from typing import Any

PAUSED_NOTE = "limits are paused: none is enforced (resume with: chadthrottle-ctl resume)"

Record = (
    ApplicationInfo
    | BackendInfo
    | ConnectionInfo
    | InterfaceInfo
    | ProcessTraffic
    | RuleInfo
    | ScheduleInfo
    | LinkShapingInfo
)


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
    """The rate, or "blocked" (never a rate), the schedule that sets it now
    (an unblock or a limit set meanwhile applies outside it), and what is left
    of a quota."""
    rate_bps = app.limit_bps(direction)
    budget, left, period = app.quota(direction)
    quota = (
        f", quota {format_size(left)} of {format_size(budget)} left this {period}" if budget else ""
    )
    if budget and not left:  # spent: blocked or at its then-rate until the next period
        quota = f", quota of {format_size(budget)} used up this {period}"
    elif budget and is_count_unknown(app.limit_problem(direction)):  # as last read: stale
        quota = f", quota of {format_size(budget)} this {period}, left not known"
    schedule = app.down_schedule if direction is Direction.DOWN else app.up_schedule
    if schedule:
        quota = f", schedule {schedule}{quota}"
    problem = app.limit_problem(direction)
    words = problem_words(problem)[0] if problem and not is_count_unknown(problem) else ""
    mark = f" {words.upper()}" if words else ""  # NOT MET, NOT ENFORCED, CHANGE REFUSED
    if app.blocked(direction):
        return f"blocked ({owner_label(app.limit_owner(direction))}{quota}){mark}"
    if not rate_bps and not budget:
        return format_limit(0)
    shown = format_limit(rate_bps) if rate_bps else "no rate"
    return f"{shown} ({owner_label(app.limit_owner(direction))}{quota}){mark}"


# A block or spent quota the kernel keeps for seconds after refusing a change
# (contract.HELD_BEFORE): it holds for now; "NOT ENFORCED" read as if it did not
# (the window's word, limit_truth.CHANGE_REFUSED). A quota whose count could not
# be read is held as last set (contract.COUNT_UNKNOWN, in force): said, not marked.
CHANGE_REFUSED, COUNT_NOT_KNOWN = "change refused", "held, count not known"


def problem_words(problem: str) -> tuple[str, str]:
    """(what the problem says of the limit, the reason) for a non-empty problem:
    limit_problem_words' NOT_MET or NOT_ENFORCED, else where the kernel holds it."""
    if is_held_before(problem):
        return CHANGE_REFUSED, problem
    if is_count_unknown(problem):
        return COUNT_NOT_KNOWN, problem
    return limit_problem_words(problem)


def limit_problems(apps: list[ApplicationInfo]) -> list[str]:
    """One line per limit that is not enforced, or enforced but not met, with
    the helper's reason: "...: down limit not met: measured 9.10 MB/s, ...";
    and where the kernel holds one with a problem (problem_words)."""
    lines = []
    for app in apps:
        for direction in Direction:
            problem = app.limit_problem(direction)
            unknown = is_count_unknown(problem)
            what = "quota" if unknown else "block" if app.blocked(direction) else "limit"
            if (app.limit_bps(direction) or app.blocked(direction) or unknown) and problem:
                words, reason = problem_words(problem)
                lines.append(f"{app.id}: {direction.value} {what} {words}: {reason}")
    return lines


def limit_reaches(apps: list[ApplicationInfo]) -> list[str]:
    """One line per limit over several namespaces or a namespace tc cannot
    shape: how it holds there (divided by demand, or the sum held by the policer)."""
    return [f"{app.id}: {direction.value} limit: {app.limit_reach(direction)}"
            for app in apps for direction in Direction
            if app.limit_bps(direction) and app.limit_reach(direction)]  # fmt: skip


def _priority_cell(app: ApplicationInfo) -> str:
    """Blank for normal (every application's default); else the priority,
    whose it is and the round-trip time its TCP sockets see now."""
    if app.priority == "normal":
        return ""
    rtt = f", rtt {format_rtt(app.rtt_us)}" if app.rtt_us else ""
    mark = " NOT ENFORCED" if app.priority_problem else ""
    return f"{app.priority} ({owner_label(app.priority_owner)}{rtt}){mark}"


def format_rtt(rtt_us: int) -> str:
    """Microseconds as people read a ping: "0.14 ms", "23.5 ms", "180 ms"."""
    ms = rtt_us / 1000
    return f"{ms:.2f} ms" if ms < 10 else f"{ms:.1f} ms" if ms < 100 else f"{ms:.0f} ms"


def priority_problems(apps: list[ApplicationInfo]) -> list[str]:
    """One line per priority that is not in force, with the helper's reason."""
    return [f"{app.id}: priority {app.priority} not in force: {app.priority_problem}"
            for app in apps if app.priority != "normal" and app.priority_problem]  # fmt: skip


def _table(rows: list[list[str]]) -> str:
    rows = [[for_terminal(cell) for cell in row] for row in rows]  # names come from other users
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


# A direction whose rules just changed has no rate until the helper's next
# tick (API 7: ApplicationInfo.measuring): said so, not "0 B/s".
MEASURING = "measuring"


def _rate_cell(record: ApplicationInfo | ProcessTraffic, direction: Direction) -> str:
    if record.measuring(direction):
        return MEASURING
    return format_rate(record.down_bps if direction is Direction.DOWN else record.up_bps)


def format_applications(apps: list[ApplicationInfo]) -> str:
    rows = [["ID", "NAME", "PIDS", "DOWN", "UP", "DOWN LIMIT", "UP LIMIT", "PRIORITY"]]
    for app in sorted(apps, key=lambda a: (-(a.down_bps + a.up_bps), a.name, a.id)):
        pids = ",".join(str(pid) for pid in app.pids[:4]) + ("..." if len(app.pids) > 4 else "")
        rows.append([
            app.id, app.name, pids or "-", _rate_cell(app, Direction.DOWN), _rate_cell(app, Direction.UP),
            _limit_cell(app, Direction.DOWN), _limit_cell(app, Direction.UP), _priority_cell(app),
        ])  # fmt: skip
    return _table(rows)


def applications_report(apps: list[ApplicationInfo], paused: bool) -> str:
    """The table `list` prints, then the pause note or the limits not
    enforced and how limits over several namespaces hold, then the
    priorities not in force."""
    notes = (
        [PAUSED_NOTE]
        if paused
        else [for_terminal(line) for line in [*limit_problems(apps), *limit_reaches(apps)]]
    )
    notes += [for_terminal(line) for line in priority_problems(apps)]
    return "\n".join([format_applications(apps), *notes])


# ListRules says only that a rule is not in force; `list` says why (its *_limit_problem)
RULE_NOT_IN_FORCE = (
    "no (outranked by an admin rule, limits paused, or its block or quota not taken by the kernel)"
)


def helper_time(unix_s: int, offset_s: int) -> str:
    """An instant on the helper's clock, its offset said: the helper counts a
    quota's period in its own zone, which need not be the caller's (TZ)."""
    zone = timezone(timedelta(seconds=offset_s))
    at = datetime.fromtimestamp(unix_s, zone)
    sign, minutes = "+" if offset_s >= 0 else "-", abs(offset_s) // 60
    return f"{at:%Y-%m-%d %H:%M} UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def quota_period_words(rule: RuleInfo) -> str:
    """When the rule's quota period began and ends, as the helper says
    (ListRules, API 8); "" where it does not (an older helper, no quota)."""
    if not rule.quota_period_start:
        return ""
    start = helper_time(rule.quota_period_start, rule.quota_start_offset_s)
    end = helper_time(rule.quota_period_end, rule.quota_end_offset_s)
    return f"{start} to {end}"


def format_rules(rules: list[RuleInfo], apps: Sequence[ApplicationInfo] = ()) -> str:
    """The rules table. ListRules' in_force speaks for a rule's limit, block and
    quota, never its priority: a priority-only rule read "IN FORCE yes" beside
    list's "NOT ENFORCED" (walk26). With apps (ListApplications), a priority
    not in force for the application says so, and why, in that column."""
    priority_problem = {app.id: app.priority_problem for app in apps if app.priority_problem}
    rows = [["ID", "DIRECTION", "LIMIT", "BLOCKED", "QUOTA", "PRIORITY", "WHOSE", "IN FORCE"]]
    for rule in rules:
        quota = "-"
        if rule.quota_bytes:
            then = format_limit(rule.quota_then_bps) if rule.quota_then_bps else "block"
            quota = (f"{format_size(rule.quota_bytes)}/{rule.quota_period} from "
                     f"{rule.quota_reset_minute // 60:02d}:{rule.quota_reset_minute % 60:02d}, then {then}, "
                     f"{format_size(rule.quota_left_bytes)} left")  # fmt: skip
            if rule.quota_period_end:  # API 8: when it is whole again, on the helper's clock
                quota += f" until {helper_time(rule.quota_period_end, rule.quota_end_offset_s)}"
        in_force = "yes" if rule.in_force else RULE_NOT_IN_FORCE
        problem = priority_problem.get(rule.app_id, "") if rule.priority != "normal" else ""
        if problem and not (rule.rate_bps or rule.blocked or rule.quota_bytes):
            in_force = f"no (priority: {problem})"  # the rule is its priority alone
        elif problem:
            in_force += f"; priority not in force: {problem}"
        # A used-up quota that then blocks reads "quota", as `list` says blocked
        # (it read "no", walk28); one that then limits is not blocked.
        spent = rule.quota_bytes and not rule.quota_left_bytes and not rule.quota_then_bps
        blocked = "yes" if rule.blocked else "quota" if spent else "no"
        rows.append([rule.app_id, rule.direction, format_limit(rule.rate_bps) if rule.rate_bps else "-",
                     blocked, quota, "-" if rule.priority == "normal" else rule.priority,
                     owner_label(rule.owner), in_force])  # fmt: skip
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
    rows = [["PROTO", "LOCAL", "REMOTE", "STATE", "PID", "RECEIVED", "SENT"]]
    for connection in sorted(connections, key=lambda c: (c.protocol, c.state, c.local)):
        # -1: the kernel counts no bytes for this socket (UDP), or an older helper
        counted = [f"{n} B" if n >= 0 else "-" for n in (connection.rx_bytes, connection.tx_bytes)]
        rows.append(
            [
                connection.protocol,
                connection.local,
                connection.remote,
                connection.state,
                str(connection.pid),
                *counted,
            ]
        )
    return _table(rows)


def format_processes(processes: list[ProcessTraffic]) -> str:
    """One line a process: its own rates and bytes, from the counters the
    application's come from (its rates add up to the application's)."""
    rows = [["PID", "NAME", "DOWN", "UP", "RECEIVED", "SENT"]]
    for process in processes:
        rows.append(
            [
                str(process.pid),
                process.name,
                _rate_cell(process, Direction.DOWN),
                _rate_cell(process, Direction.UP),
                f"{process.rx_bytes} B",
                f"{process.tx_bytes} B",
            ]
        )
    return _table(rows)


def format_interfaces(interfaces: list[InterfaceInfo]) -> str:
    rows = [["INTERFACE", "DOWN", "UP", "RECEIVED", "SENT"]]
    for interface in interfaces:
        name = interface.name or f"#{interface.ifindex}"
        if interface.netns:
            name = f"{name} ({interface.netns})"
        rows.append(
            [
                name,
                format_rate(interface.down_bps),
                format_rate(interface.up_bps),
                f"{interface.rx_bytes} B",
                f"{interface.tx_bytes} B",
            ]
        )
    network = [i for i in interfaces if not i.loopback]
    rows.append(
        [
            "total (no loopback)",
            format_rate(sum(i.down_bps for i in network)),
            format_rate(sum(i.up_bps for i in network)),
            f"{sum(i.rx_bytes for i in network)} B",
            f"{sum(i.tx_bytes for i in network)} B",
        ]
    )
    return _table(rows)


def plain(record: Record) -> dict[str, Any]:
    """A record as JSON-ready values: its fields in order, tuples as lists.
    (What dataclasses.asdict gives for these flat records, at a seventh of
    its cost: asdict deep-copies every value.)"""
    from dataclasses import fields

    values = ((field.name, getattr(record, field.name)) for field in fields(record))
    return {name: list(value) if isinstance(value, tuple) else value for name, value in values}


def to_json(records: Sequence[Record]) -> str:
    """json.dumps(..., indent=2, ensure_ascii=True) of the records: control
    characters and all non-ASCII as \\uNNNN (cli/json_text.py, without json)."""
    from chadthrottle.cli.json_text import dumps_rows  # only JSON needs it

    return dumps_rows([plain(record) for record in records])
