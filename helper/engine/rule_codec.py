"""The rules file's format: a rule table to bytes and back, and rules moved
to the ids identity rules give now.

A rule is stored by application identity (never by pid), with its owner: the
administrator ("all": every user's processes) or one uid (that user's
processes only). Decoding is strict: every field is checked against the
contract's bounds and the adapter's application id rules. A rule that fails a
check is left out (BadRule, logged by the caller) and the others are kept; a
document that is not a rules file at all is CorruptStateFile. A version-1 file
(no owners) is read as administrator rules, a version-2 file (no schedules) as
it is, and both are written back in this format (3: a rule may carry
"schedules"; 4: a direction may carry "priority", the file "link"; 2 and 3 are
read as they are). A direction of a rule holds a rate ("rate_bps" and
"burst_bytes", both 0 for none) and, only when set, "blocked": true, a "quota"
(budget_bytes, period, reset_minute, then_rate_bps) and a "priority" other
than normal. "link" (only when set) is SetLinkCapacity's: {"down_bps",
"up_bps", "estimate"}. The file itself (where, who may write it, atomic
writes) is rule_store.py's.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from chadthrottle.contract import (
    ADMIN_OWNER,
    MAX_BURST_BYTES,
    MAX_RATE_BPS,
    MAX_RULES_PER_USER,
    MIN_BURST_BYTES,
    MIN_RATE_BPS,
    PID_APP_PREFIX,
    Direction,
)
from chadthrottle.helper.adapter.validation import validate_app_id
from chadthrottle.helper.engine.limits import LINK_OFF, MAX_SLOTS, Limit, LimitTable, LinkSetting
from chadthrottle.helper.engine.quotas import Quota
from chadthrottle.helper.engine.schedules import (
    Schedule,
    check_fits,
    format_days,
    format_minute,
    make_schedule,
)
from chadthrottle.helper.errors import InvalidArgument
from chadthrottle.priority import Priority

log = logging.getLogger("chadthrottle.engine.rule_store")

FORMAT_VERSION = 4
# Version 3 is version 4 without priorities and link: read as it is.
NO_PRIORITIES_VERSION = 3
# Version 2 is version 3 without schedules: read as it is.
NO_SCHEDULES_VERSION = 2
# Version 1 stored one rule per application, with no owner: each becomes an
# administrator rule (it applied to everyone's processes).
LEGACY_VERSION = 1
_LIMIT_FIELDS = frozenset({"rate_bps", "burst_bytes"})
_GATE_FIELDS = frozenset({"blocked", "quota", "priority"})  # optional: a block, a quota, a priority
_LINK_KEY = "link"
_LINK_FIELDS = frozenset({"down_bps", "up_bps", "estimate"})
_QUOTA_FIELDS = frozenset({"budget_bytes", "period", "reset_minute", "then_rate_bps"})
_QUOTA_USE_FIELDS = frozenset(
    {"period_start", "used_bytes"}
)  # what the current period used, when stored


def _decode_use(where: str, value: Any) -> tuple[float, int] | None:
    """A quota's stored use; one that does not make sense is dropped (the
    period then counts from zero), not the rule."""
    if not isinstance(value, dict) or not set(value) >= _QUOTA_USE_FIELDS:
        return None
    start, used = value["period_start"], value["used_bytes"]
    if (
        type(start) not in (int, float)
        or not 0 <= start < 2**40
        or not _is_int(used)
        or not 0 <= used < 2**62
    ):
        log.error("%s: dropped the stored use of its quota (%r, %r)", where, start, used)
        return None
    return float(start), int(used)


_DIRECTIONS = {direction.value: direction for direction in Direction}
_RULE_KEYS = frozenset({"app_id", "owner"})
_SCHEDULES_KEY = "schedules"
_SCHEDULE_KEYS = frozenset({"days", "from", "to"})
_ADMIN_OWNER_TEXT = "all"  # how the file names an administrator rule's owner
_MAX_UID = 2**32 - 2  # (uid_t)-1 is no uid


class CorruptStateFile(Exception):
    """The file on disk is not a rules file this helper wrote (internal to loading)."""


class BadRule(Exception):
    """One rule in an otherwise good file is unusable: it alone is dropped."""


def _is_int(value: Any) -> bool:
    return type(value) is int


def encode_rules(table: LimitTable) -> bytes:
    """The file's bytes for a table: sorted, so equal tables give equal files."""
    rules = []
    plain = dict(table.plain_items())
    for app_id, owner in sorted(table.stored_keys()):
        rule: dict[str, Any] = {
            "app_id": app_id,
            "owner": _ADMIN_OWNER_TEXT if owner == ADMIN_OWNER else owner,
        }
        rule.update(_encode_limits(plain.get((app_id, owner), {})))
        for direction in Direction:
            use = table.quota_use.get(((app_id, owner), direction))
            if use is not None and "quota" in rule.get(direction.value, {}):
                rule[direction.value]["quota"].update(
                    {"period_start": use[0], "used_bytes": use[1]}
                )
        schedules = table.schedules_of((app_id, owner))
        if schedules:
            rule[_SCHEDULES_KEY] = [
                {
                    "days": format_days(s.days),
                    "from": format_minute(s.start),
                    "to": format_minute(s.end),
                    **_encode_limits(s.limits),
                }
                for s in schedules
            ]
        rules.append(rule)
    # Version 3 while no priority and no link is stored: a helper from before them still reads it.
    uses_priorities = not table.link.is_off or any(_has_priority(rule) for rule in rules)
    document: dict[str, Any] = {
        "version": FORMAT_VERSION if uses_priorities else NO_PRIORITIES_VERSION,
        "rules": rules,
    }
    if table.paused:  # written only when set
        document["paused"] = True
    if not table.link.is_off:
        link = table.link
        document[_LINK_KEY] = {
            "down_bps": link.down_bps,
            "up_bps": link.up_bps,
            "estimate": link.estimate,
        }
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()


def _encode_limits(limits: dict[Direction, Limit]) -> dict[str, Any]:
    return {d.value: _encode_limit(limit) for d, limit in limits.items()}


def _encode_limit(limit: Limit) -> dict[str, Any]:
    """rate_bps 0 (and burst 0) when the direction holds only a block or a quota."""
    encoded: dict[str, Any] = {"rate_bps": limit.rate_bps, "burst_bytes": limit.burst_bytes}
    if limit.blocked:  # written only when set
        encoded["blocked"] = True
    if limit.priority is not Priority.NORMAL:
        encoded["priority"] = limit.priority.value
    if limit.quota is not None:
        quota = limit.quota
        encoded["quota"] = {"budget_bytes": quota.budget_bytes, "period": quota.period.value,
                            "reset_minute": quota.reset_minute, "then_rate_bps": quota.then_rate_bps}  # fmt: skip
    return encoded


def _decode_schedules(app_id: str, value: Any) -> list[Schedule]:
    """A rule's "schedules": each checked as SetSchedule checks it (no overlap
    within the rule); one bad schedule drops the rule, as a bad limit does."""
    if not isinstance(value, list) or not value:
        raise BadRule(f"application {app_id!r}: 'schedules' is not a non-empty list")
    found: list[Schedule] = []
    for entry in value:
        if not isinstance(entry, dict) or not set(entry) >= _SCHEDULE_KEYS:
            raise BadRule(f"application {app_id!r}: a schedule needs {sorted(_SCHEDULE_KEYS)}")
        limits = {k: v for k, v in entry.items() if k not in _SCHEDULE_KEYS}
        try:
            schedule = make_schedule(
                entry["days"], entry["from"], entry["to"], _decode_limits(app_id, limits)
            )
            if any(limit.quota is not None for limit in schedule.limits.values()):
                raise InvalidArgument("a schedule holds a rate or a block, not a quota")
            check_fits(schedule, found)
        except InvalidArgument as error:
            raise BadRule(
                f"application {app_id!r}: schedule {entry.get('days')!r}: {error}"
            ) from None
        found.append(schedule)
    return found


def _decode_limit(where: str, value: Any) -> Limit:
    if (
        not isinstance(value, dict)
        or not _LIMIT_FIELDS <= set(value) <= _LIMIT_FIELDS | _GATE_FIELDS
    ):
        raise BadRule(
            f"{where}: expected {sorted(_LIMIT_FIELDS)} and at most {sorted(_GATE_FIELDS)}"
        )
    blocked = value.get("blocked", False)
    if blocked is not True and blocked is not False:
        raise BadRule(f"{where}: blocked {blocked!r} is not true or false")
    quota = _decode_quota(where, value["quota"]) if "quota" in value else None
    priority = _decode_priority(where, value.get("priority", Priority.NORMAL.value))
    rate_bps, burst_bytes = value["rate_bps"], value["burst_bytes"]
    if (
        (blocked or quota or priority is not Priority.NORMAL)
        and rate_bps == 0
        and burst_bytes == 0
        and _is_int(rate_bps)
        and _is_int(burst_bytes)
    ):
        return Limit(
            0, 0, blocked, quota, priority
        )  # a block, a quota or a priority with no rate beneath
    if not _is_int(rate_bps) or not MIN_RATE_BPS <= rate_bps <= MAX_RATE_BPS:
        raise BadRule(f"{where}: rate_bps {rate_bps!r} is not in {MIN_RATE_BPS}..{MAX_RATE_BPS}")
    if not _is_int(burst_bytes) or not MIN_BURST_BYTES <= burst_bytes <= MAX_BURST_BYTES:
        raise BadRule(
            f"{where}: burst_bytes {burst_bytes!r} is not in {MIN_BURST_BYTES}..{MAX_BURST_BYTES}"
        )
    return Limit(rate_bps, burst_bytes, blocked, quota, priority)


def _decode_priority(where: str, value: Any) -> Priority:
    if type(value) is str:
        for member in Priority:
            if member.value == value:
                return member
    raise BadRule(
        f"{where}: priority {value!r} is not one of {', '.join(p.value for p in Priority)}"
    )


def _decode_link(value: Any) -> LinkSetting:
    """SetLinkCapacity's setting; a bad one is dropped (link shaping off), not the file."""
    if not isinstance(value, dict) or set(value) != _LINK_FIELDS:
        log.error("left out the stored link capacity: expected exactly %s", sorted(_LINK_FIELDS))
        return LINK_OFF
    down, up, estimate = value["down_bps"], value["up_bps"], value["estimate"]
    for rate in (down, up):
        if not _is_int(rate) or not (rate == 0 or MIN_RATE_BPS <= rate <= MAX_RATE_BPS):
            log.error(
                "left out the stored link capacity: %r is not 0 or %d..%d",
                rate,
                MIN_RATE_BPS,
                MAX_RATE_BPS,
            )
            return LINK_OFF
    if type(estimate) is not bool:
        log.error("left out the stored link capacity: estimate %r is not true or false", estimate)
        return LINK_OFF
    return LinkSetting(down, up, estimate)


def _decode_quota(where: str, value: Any) -> Quota:
    if (
        not isinstance(value, dict)
        or not _QUOTA_FIELDS <= set(value) <= _QUOTA_FIELDS | _QUOTA_USE_FIELDS
    ):
        raise BadRule(
            f"{where}: a quota needs exactly {sorted(_QUOTA_FIELDS)}, and may have {sorted(_QUOTA_USE_FIELDS)}"
        )
    try:
        return Quota.checked(
            value["budget_bytes"], value["period"], value["reset_minute"], value["then_rate_bps"]
        )
    except InvalidArgument as error:
        raise BadRule(f"{where}: {error}") from None


def _decode_app_id(app_id: Any) -> str:
    try:
        validate_app_id(app_id)
    except InvalidArgument as error:
        raise BadRule(f"application {app_id!r}: {error}") from None
    if app_id.startswith(PID_APP_PREFIX):
        raise BadRule(f"application {app_id!r}: a pid is not a stable identity")
    return str(app_id)


def _decode_owner(app_id: str, owner: Any) -> int:
    if owner == _ADMIN_OWNER_TEXT:
        return ADMIN_OWNER
    if not _is_int(owner) or not 0 <= owner <= _MAX_UID:
        raise BadRule(
            f"application {app_id!r}: owner {owner!r} is neither {_ADMIN_OWNER_TEXT!r} nor a uid"
        )
    return int(owner)


def _decode_limits(app_id: str, limits: Any) -> dict[Direction, Limit]:
    if not isinstance(limits, dict) or not limits or not set(limits) <= set(_DIRECTIONS):
        raise BadRule(f"application {app_id!r}: expected limits for 'down' and/or 'up'")
    return {
        _DIRECTIONS[name]: _decode_limit(f"{app_id} {name}", value)
        for name, value in limits.items()
    }


def _legacy_rules(document: dict[str, Any]) -> list[tuple[Any, Any, Any]]:
    """(app id, owner, limits) of a version-1 file: every rule the administrator's."""
    if set(document) - {"version", "applications", "paused"} or "applications" not in document:
        raise CorruptStateFile(
            "expected the keys 'version' and 'applications', and at most 'paused'"
        )
    applications = document["applications"]
    if not isinstance(applications, dict):
        raise CorruptStateFile("'applications' is not an object")
    return [(app_id, _ADMIN_OWNER_TEXT, limits) for app_id, limits in applications.items()]


def _has_priority(limits: Any) -> bool:
    """Whether a rule's entry names a priority (in a direction, or a schedule's)."""
    if not isinstance(limits, dict):
        return False
    entries = [
        *limits.values(),
        *(limits.get(_SCHEDULES_KEY) or [] if isinstance(limits.get(_SCHEDULES_KEY), list) else []),
    ]
    return any(isinstance(entry, dict) and "priority" in entry for entry in entries)


def _current_rules(document: dict[str, Any]) -> list[tuple[Any, Any, Any]]:
    if set(document) - {"version", "rules", "paused", _LINK_KEY} or "rules" not in document:
        raise CorruptStateFile(
            "expected the keys 'version' and 'rules', and at most 'paused' and 'link'"
        )
    rules = document["rules"]
    if not isinstance(rules, list):
        raise CorruptStateFile("'rules' is not a list")
    found: list[tuple[Any, Any, Any]] = []
    for rule in rules:
        if not isinstance(rule, dict) or not set(rule) >= _RULE_KEYS:
            found.append((None, None, None))  # reported as a bad rule below
            continue
        found.append(
            (rule["app_id"], rule["owner"], {k: v for k, v in rule.items() if k not in _RULE_KEYS})
        )
    return found


def decode_rules(data: bytes, skipped: list[str] | None = None) -> LimitTable:
    """Parse and check a rules file (this format or version 1). A file that is
    not a rules file raises CorruptStateFile; a rule that is unusable is left
    out, its reason appended to skipped: one bad rule never costs the others."""
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise CorruptStateFile(f"not JSON: {error}") from None
    if not isinstance(document, dict) or "version" not in document:
        raise CorruptStateFile("expected an object with a 'version'")
    version = document["version"]
    if _is_int(version) and version == LEGACY_VERSION:
        found = _legacy_rules(document)
    elif _is_int(version) and version in (
        NO_SCHEDULES_VERSION,
        NO_PRIORITIES_VERSION,
        FORMAT_VERSION,
    ):
        found = _current_rules(document)
        if version == NO_SCHEDULES_VERSION and any(
            isinstance(limits, dict) and _SCHEDULES_KEY in limits for _, _, limits in found
        ):
            raise CorruptStateFile(f"a version-{NO_SCHEDULES_VERSION} file with schedules")
        if version < FORMAT_VERSION and (
            _LINK_KEY in document or any(_has_priority(limits) for _, _, limits in found)
        ):
            raise CorruptStateFile(f"a version-{version} file with priorities or a link")
    else:
        raise CorruptStateFile(
            f"unknown format version {version!r} (this helper reads {LEGACY_VERSION} to {FORMAT_VERSION})"
        )
    if len(found) > MAX_SLOTS:
        raise CorruptStateFile(f"more than {MAX_SLOTS} rules")
    paused = document.get("paused", False)
    if type(paused) is not bool:
        raise CorruptStateFile(f"'paused' is {paused!r}, not true or false")
    table = LimitTable()
    table.set_paused(paused)
    if _LINK_KEY in document:
        table.link = _decode_link(document[_LINK_KEY])
    for app_id, owner_value, limits in found:
        try:
            if app_id is None:
                raise BadRule("a rule is not an object with 'app_id' and 'owner'")
            app = _decode_app_id(app_id)
            owner = _decode_owner(app, owner_value)
            if table.is_stored((app, owner)):
                raise BadRule(f"application {app!r}: a second rule for the same owner")
            if owner != ADMIN_OWNER and table.count_of_owner(owner) >= MAX_RULES_PER_USER:
                raise BadRule(
                    f"application {app!r}: uid {owner} has {MAX_RULES_PER_USER} rules already"
                )
            limits = dict(limits) if isinstance(limits, dict) else limits
            schedules = (
                _decode_schedules(app, limits.pop(_SCHEDULES_KEY))
                if isinstance(limits, dict) and _SCHEDULES_KEY in limits
                else []
            )
            plain = _decode_limits(app, limits) if limits or not schedules else {}
            for direction, limit in plain.items():
                table.set((app, owner), direction, limit)
                use = _decode_use(f"{app} {direction.value}", limits[direction.value].get("quota"))
                if limit.quota is not None and use is not None:
                    table.quota_use[((app, owner), direction)] = use
            for schedule in schedules:
                table.add_schedule((app, owner), schedule)
        except BadRule as error:
            if skipped is not None:
                skipped.append(str(error))
    return table


def rename_rules(table: LimitTable, rename: Callable[[str, int], str | None]) -> list[str]:
    """Move each rule to the id rename(app_id, owner) gives it (identity rules
    changed: identity/renames.py), in place; what was done, for the log. A
    new id that fails the adapter's checks is not taken; where the owner has
    a rule on the new id already, that one is kept and the old one dropped."""
    done = []
    plain = dict(table.plain_items())
    for app_id, owner in sorted(table.stored_keys()):
        limits, schedules = plain.get((app_id, owner), {}), table.schedules_of((app_id, owner))
        new = rename(app_id, owner)
        if not new or new == app_id:
            continue
        who = "the administrator" if owner == ADMIN_OWNER else f"uid {owner}"
        try:
            _decode_app_id(new)
        except BadRule as error:
            done.append(f"kept {who}'s rule for {app_id}: its new id is refused ({error})")
            continue
        used = {
            d: use
            for d in Direction
            if (use := table.quota_use.get(((app_id, owner), d))) is not None
        }
        table.drop((app_id, owner))
        if (new, owner) in table:
            done.append(
                f"dropped {who}'s rule for {app_id}: it is {new} now, which has a rule of theirs already"
            )
            continue
        for direction, limit in limits.items():
            table.set((new, owner), direction, limit)
        table.quota_use.update(
            {((new, owner), d): use for d, use in used.items()}
        )  # the period goes on
        for schedule in schedules:
            table.add_schedule((new, owner), schedule)
        done.append(f"{who}'s rule for {app_id} is now for {new} (identity rules changed)")
    return done
