"""Checks on every argument a caller sends, before anything else happens.

The bus already guarantees the D-Bus types; these checks add the contract's
forms and bounds so that the engine only ever sees well-formed values. Each
failure is an InvalidArgument whose message says what was wrong. contract.METHODS
names each argument's form (contract.ArgForm); validate_call checks a call by it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any

from chadthrottle.contract import (
    APP_ID_KINDS,
    BOTH_DIRECTIONS,
    MAX_APP_ID_LENGTH,
    MAX_BURST_BYTES,
    MAX_RATE_BPS,
    METHODS,
    MIN_BURST_BYTES,
    MIN_RATE_BPS,
    PID_APP_PREFIX,
    ArgForm,
    CallCheck,
    Direction,
    MethodSpec,
    RuleScope,
)
from chadthrottle.helper.engine import quotas, schedules
from chadthrottle.helper.errors import HelperError, InvalidArgument
from chadthrottle.priority import Priority
from chadthrottle.usage_contract import OTHER_APPLICATIONS_ID, UsageResolution

# Linux pids are at most 2**22 (pid_max); accept anything that fits in 31 bits.
_MAX_PID = 2**31 - 1
_PID_RE = re.compile(r"[1-9][0-9]{0,9}", re.ASCII)
_KIND_RE = re.compile(r"[a-z][a-z0-9-]*", re.ASCII)


def _is_int(value: Any) -> bool:
    return type(value) is int  # bool is an int subclass and is not a number here


def validate_app_id(app_id: Any) -> str:
    """An application id "<kind>:<value>" (kind in contract.APP_ID_KINDS) or "pid:<N>"."""
    if type(app_id) is not str:
        raise InvalidArgument("application id must be a string")
    if not app_id:
        raise InvalidArgument("application id is empty")
    if len(app_id) > MAX_APP_ID_LENGTH:
        raise InvalidArgument(f"application id is longer than {MAX_APP_ID_LENGTH} characters")
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in app_id):
        raise InvalidArgument("application id contains control characters")
    if app_id.startswith(PID_APP_PREFIX):
        pid_text = app_id[len(PID_APP_PREFIX) :]
        if not _PID_RE.fullmatch(pid_text) or int(pid_text) > _MAX_PID:
            raise InvalidArgument(f"{app_id!r} is not pid:<positive process id>")
        return app_id
    kind, separator, value = app_id.partition(":")
    if not separator or not _KIND_RE.fullmatch(kind):
        raise InvalidArgument(f"{app_id!r} is not an application id (<kind>:<value> or pid:<N>)")
    if kind not in APP_ID_KINDS:
        known = ", ".join(sorted(APP_ID_KINDS | {PID_APP_PREFIX[:-1]}))
        raise InvalidArgument(f"unknown application id kind {kind!r} (known: {known})")
    if not value.strip():
        raise InvalidArgument(f"application id {app_id!r} has an empty value")
    return app_id


def validate_direction(direction: Any) -> Direction:
    """One of contract.Direction's values ("down", "up")."""
    if type(direction) is str:
        for member in Direction:
            if member.value == direction:
                return member
    names = ", ".join(member.value for member in Direction)
    raise InvalidArgument(f"direction must be one of {names}, not {direction!r}")


def validate_clear_directions(direction: Any) -> tuple[Direction, ...]:
    """A direction, or contract.BOTH_DIRECTIONS for both of them."""
    if direction == BOTH_DIRECTIONS and type(direction) is str:
        return tuple(Direction)
    try:
        return (validate_direction(direction),)
    except InvalidArgument:
        names = ", ".join([member.value for member in Direction] + [BOTH_DIRECTIONS])
        raise InvalidArgument(f"direction must be one of {names}, not {direction!r}") from None


def validate_rate_bps(rate_bps: Any) -> int:
    """A limit in bytes per second within the contract's bounds."""
    if not _is_int(rate_bps):
        raise InvalidArgument("rate must be an integer number of bytes per second")
    if not MIN_RATE_BPS <= rate_bps <= MAX_RATE_BPS:
        raise InvalidArgument(
            f"rate {rate_bps} bytes/s is outside {MIN_RATE_BPS}..{MAX_RATE_BPS} bytes/s"
        )
    return int(rate_bps)


def validate_burst_bytes(burst_bytes: Any) -> int:
    """0 (the default burst for the rate) or a burst within the contract's bounds."""
    if not _is_int(burst_bytes):
        raise InvalidArgument("burst must be an integer number of bytes")
    if burst_bytes != 0 and not MIN_BURST_BYTES <= burst_bytes <= MAX_BURST_BYTES:
        raise InvalidArgument(
            f"burst {burst_bytes} bytes is outside {MIN_BURST_BYTES}..{MAX_BURST_BYTES} "
            "bytes (0 = default)"
        )
    return int(burst_bytes)


def validate_paused(paused: Any) -> bool:
    """A D-Bus boolean: true pauses every limit, false resumes them."""
    if type(paused) is not bool:
        raise InvalidArgument(f"paused must be true or false, not {paused!r}")
    return paused


def validate_blocked(blocked: Any) -> bool:
    """A D-Bus boolean: true blocks, false lifts the block."""
    if type(blocked) is not bool:
        raise InvalidArgument(f"blocked must be true or false, not {blocked!r}")
    return blocked


def validate_scope(scope: Any) -> RuleScope:
    """A contract.RuleScope value: "own", "all", or "" for the caller's default."""
    if type(scope) is str:
        for member in RuleScope:
            if member.value == scope:
                return member
    raise InvalidArgument(f"scope must be 'own', 'all' or '' (the default), not {scope!r}")


# Unix seconds GetUsage accepts: from 1970 to well past any real clock (2^40 s
# is the year 36812), so sums and D-Bus's int64 never overflow.
MAX_UNIX_TIME = 2**40


def validate_usage_app_id(app_id: Any) -> str:
    """ "" for every application, usage_contract.OTHER_APPLICATIONS_ID, or a
    stable application id (usage is kept by application, not by process: no pid:)."""
    if app_id in ("", OTHER_APPLICATIONS_ID) and type(app_id) is str:
        return app_id
    checked = validate_app_id(app_id)
    if checked.startswith(PID_APP_PREFIX):
        raise InvalidArgument(
            "usage is kept by application id, not by process: pass an id as ListApplications shows it"
        )
    return checked


def validate_unix_time(value: Any, name: str) -> int:
    """Unix seconds from 0 up to MAX_UNIX_TIME; name says which argument in the error."""
    if not _is_int(value) or not 0 <= value < MAX_UNIX_TIME:
        raise InvalidArgument(
            f"{name} must be unix seconds between 0 and {MAX_UNIX_TIME}, not {value!r}"
        )
    return int(value)


def validate_usage_range(since: Any, until: Any, now: float) -> tuple[int, int]:
    """[since, until) in unix seconds; until 0 means now (the current minute included)."""
    validate_unix_time(since, "since")
    validate_unix_time(until, "until")
    if until == 0:
        until = int(now) + 1
    if since >= until:
        raise InvalidArgument(f"since ({since}) must be before until ({until})")
    return int(since), int(until)


def validate_usage_resolution(resolution: Any) -> UsageResolution:
    """A contract.UsageResolution value: minute, hour, day or month."""
    if type(resolution) is str:
        for member in UsageResolution:
            if member.value == resolution:
                return member
    names = ", ".join(member.value for member in UsageResolution)
    raise InvalidArgument(f"resolution must be one of {names}, not {resolution!r}")


def validate_schedule_rate(rate_bps: Any) -> int:
    """0 (a schedule that leaves this direction alone) or a rate in the contract's bounds."""
    return 0 if rate_bps == 0 and _is_int(rate_bps) else validate_rate_bps(rate_bps)


def validate_priority(priority: Any) -> Priority:
    """One of Priority's words exactly (critical, high, normal, low)."""
    if type(priority) is str:
        for member in Priority:
            if member.value == priority:
                return member
    names = ", ".join(member.value for member in Priority)
    raise InvalidArgument(f"priority must be one of {names}, not {priority!r}")


def validate_capacity(capacity_bps: Any, name: str) -> int:
    """0 (that direction not shaped) or a rate in the contract's bounds."""
    if capacity_bps == 0 and _is_int(capacity_bps):
        return 0
    if not _is_int(capacity_bps) or not MIN_RATE_BPS <= capacity_bps <= MAX_RATE_BPS:
        raise InvalidArgument(
            f"{name} must be 0 (not shaped) or {MIN_RATE_BPS}..{MAX_RATE_BPS} bytes/s, not {capacity_bps!r}"
        )
    return int(capacity_bps)


def validate_estimate(estimate: Any) -> bool:
    if type(estimate) is not bool:
        raise InvalidArgument(f"estimate must be true or false, not {estimate!r}")
    return estimate


# One check per contract.ArgForm: (value, argument name) -> the value the engine gets.
VALIDATORS: dict[str, Callable[[Any, str], Any]] = {
    ArgForm.APP_ID: lambda value, _name: validate_app_id(value),
    ArgForm.DIRECTION: lambda value, _name: validate_direction(value),
    ArgForm.DIRECTIONS: lambda value, _name: validate_clear_directions(value),
    ArgForm.RATE_BPS: lambda value, _name: validate_rate_bps(value),
    ArgForm.BURST_BYTES: lambda value, _name: validate_burst_bytes(value),
    ArgForm.SCOPE: lambda value, _name: validate_scope(value),
    ArgForm.PAUSED: lambda value, _name: validate_paused(value),
    ArgForm.BLOCKED: lambda value, _name: validate_blocked(value),
    ArgForm.QUOTA_BYTES: lambda value, _name: quotas.check_budget(value),
    ArgForm.QUOTA_PERIOD: lambda value, _name: quotas.check_period(value).value,
    ArgForm.RESET_MINUTE: lambda value, _name: quotas.check_reset_minute(value),
    ArgForm.THEN_RATE_BPS: lambda value, _name: quotas.check_then_rate(value),
    ArgForm.USAGE_APP_ID: lambda value, _name: validate_usage_app_id(value),
    ArgForm.UNIX_TIME: validate_unix_time,
    ArgForm.USAGE_RESOLUTION: lambda value, _name: validate_usage_resolution(value),
    ArgForm.DAYS: lambda value, _name: schedules.parse_days(value),
    ArgForm.CLOCK_TIME: lambda value, name: schedules.parse_minute(value, name),
    ArgForm.SCHEDULE_RATE_BPS: lambda value, _name: validate_schedule_rate(value),
    ArgForm.SCHEDULE_NAME: lambda value, _name: schedules.parse_schedule_name(value),
    ArgForm.PRIORITY: lambda value, _name: validate_priority(value),
    ArgForm.CAPACITY_BPS: validate_capacity,
    ArgForm.ESTIMATE: lambda value, _name: validate_estimate(value),
    ArgForm.SCHEDULE_BLOCK: lambda value, _name: (
        () if value == "" and type(value) is str else validate_clear_directions(value)
    ),
}


def _usage_range(args: tuple[Any, ...], now: float) -> tuple[Any, ...]:
    """GetUsage: (app_id, since, until, resolution) with until 0 made now."""
    app_id, since, until, resolution = args
    return (app_id, *validate_usage_range(since, until, now), resolution)


def _schedule(args: tuple[Any, ...], _now: float) -> tuple[Any, ...]:
    """SetSchedule: (app_id, days, start, end, down, up, blocked, scope): start
    != end, a rate or a block, not both for one direction."""
    _app_id, _days, start, end, down_bps, up_bps, blocked, _scope = args
    if start == end:
        raise InvalidArgument(
            "from and to are the same time: for all day, set a plain limit instead"
        )
    if not down_bps and not up_bps and not blocked:
        raise InvalidArgument("a schedule must limit or block at least one direction")
    for direction, rate in ((Direction.DOWN, down_bps), (Direction.UP, up_bps)):
        if rate and direction in blocked:
            raise InvalidArgument(f"a schedule either limits or blocks {direction.value}, not both")
    return args


# One check per contract.CallCheck, on the whole call once each argument passed.
CALL_CHECKS: dict[str, Callable[[tuple[Any, ...], float], tuple[Any, ...]]] = {
    CallCheck.NONE: lambda args, _now: args,
    CallCheck.USAGE_RANGE: _usage_range,
    CallCheck.SCHEDULE: _schedule,
}


def validate_call(spec: MethodSpec, body: Sequence[Any], now: float) -> tuple[Any, ...]:
    """Every argument of a call to spec, by its declared form, then the whole
    call; the caller has checked the body's D-Bus signature. A method declared
    with no argument list for its signature is refused, not let through."""
    if len(body) != len(spec.in_args):
        raise HelperError(
            f"{spec.name} declares {len(spec.in_args)} arguments, the call has {len(body)}"
        )
    args = tuple(
        VALIDATORS[arg.form](value, arg.name) for arg, value in zip(spec.in_args, body, strict=True)
    )
    return CALL_CHECKS[spec.call_check](args, now)


def _check_declarations() -> None:
    """Every form and call check the contract names has its check here."""
    for spec in METHODS.values():
        unknown = {arg.form for arg in spec.in_args} - VALIDATORS.keys()
        if unknown or spec.call_check not in CALL_CHECKS:
            raise LookupError(f"{spec.name}: no check for {sorted(unknown) or spec.call_check!r}")


_check_declarations()
