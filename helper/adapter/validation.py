"""Checks on every argument a caller sends, before anything else happens.

The bus already guarantees the D-Bus types; these checks add the contract's
forms and bounds so that the engine only ever sees well-formed values. Each
failure is an InvalidArgument whose message says what was wrong.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from chadthrottle.contract import (
    APP_ID_KINDS,
    BOTH_DIRECTIONS,
    MAX_APP_ID_LENGTH,
    MAX_BURST_BYTES,
    MAX_RATE_BPS,
    MIN_BURST_BYTES,
    MIN_RATE_BPS,
    PID_APP_PREFIX,
    Direction,
    RuleScope,
)
from chadthrottle.helper.errors import InvalidArgument
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
    """"" for every application, usage_contract.OTHER_APPLICATIONS_ID, or a
    stable application id (usage is kept by application, not by process: no pid:)."""
    if app_id in ("", OTHER_APPLICATIONS_ID) and type(app_id) is str:
        return app_id
    app_id = validate_app_id(app_id)
    if app_id.startswith(PID_APP_PREFIX):
        raise InvalidArgument("usage is kept by application id, not by process: pass an id as ListApplications shows it")
    return app_id


def validate_usage_range(since: Any, until: Any, now: float) -> tuple[int, int]:
    """[since, until) in unix seconds; until 0 means now (the current minute included)."""
    for name, value in (("since", since), ("until", until)):
        if not _is_int(value) or not 0 <= value < MAX_UNIX_TIME:
            raise InvalidArgument(f"{name} must be unix seconds between 0 and {MAX_UNIX_TIME}, not {value!r}")
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
