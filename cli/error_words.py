"""The helper's refusals in chadthrottle-ctl's own words.

The helper checks every argument and names what is wrong by its bus name
("start must be a time HH:MM ...", "to remove one, clear it", "as
ListSchedules names it"); the user typed --from, quota --off, 'schedule
list'. Each verb's patterns are anchored on the helper's wording
(helper/engine/schedules.py, quotas.py, helper/adapter/validation.py); a
message no pattern knows passes unchanged, so a reworded refusal stays
readable, only in the helper's words (tests/cli/test_error_words.py feeds the
helper's own checks through this and fails on such drift).
"""

from __future__ import annotations

import re

_Words = tuple[tuple[re.Pattern[str], str], ...]


def _words(*pairs: tuple[str, str]) -> _Words:
    return tuple((re.compile(pattern), replacement) for pattern, replacement in pairs)


_APP = _words(
    (r"pass an id as ListApplications shows it", "pass an id as 'chadthrottle-ctl list' shows it"),
)
_BY_VERB: dict[str, _Words] = {
    "schedule": _words(
        (r"^(?:start|from) must be a time", "--from must be a time"),
        (r"^(?:end|to) must be a time", "--to must be a time"),
        (r"^from (\d\d:\d\d) does not exist", r"--from \1 does not exist"),
        (r"^to (\d\d:\d\d) does not exist", r"--to \1 does not exist"),
        (r"^from and to are the same time", "--from and --to are the same time"),
        (r"^days must name at least one day", "--days must name at least one day"),
        (r"^unknown day ", "--days: unknown day "),
        (
            r"^a schedule either limits or blocks (down|up), not both",
            r"a schedule either limits or blocks \1, not both (--\1/--limit or --block \1)",
        ),
        (r"named as ListSchedules names it", "named as 'chadthrottle-ctl schedule list' shows it"),
        (r"; remove it first$", "; remove it first (chadthrottle-ctl schedule remove APP NAME)"),
        (r"; remove one first$", "; remove one first (chadthrottle-ctl schedule remove APP NAME)"),
    ),
    "quota": _words(
        (
            r"^a quota must be (\d+)\.\.(\d+) bytes, not (\S+) \(to remove one, clear it\)",
            r"SIZE must be \1..\2 bytes, not \3 (to remove a quota: chadthrottle-ctl quota APP --off)",
        ),
        (r"^the rate after the quota must be 0 \(block\) or", "--then must be block or a RATE of"),
        (
            r"^the reset time must be a minute of the day \(0\.\.1439\)",
            "--reset must be HH:MM (00:00 to 23:59)",
        ),
        (r"^unknown quota period", "--per: unknown period"),
    ),
}


def in_cli_words(verb: str, message: str) -> str:
    """message with the bus's argument names put as `verb`'s options."""
    for pattern, replacement in _BY_VERB.get(verb, ()) + _APP:
        message = pattern.sub(replacement, message)
    return message
