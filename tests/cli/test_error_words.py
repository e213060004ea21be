"""The helper's refusals reach a chadthrottle-ctl user in the CLI's words
(--from, not the bus argument "start"). The messages come from the helper's
own checks, called as the helper calls them (the contract's argument names),
so a reworded refusal fails here instead of reaching users half-translated."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from chadthrottle.cli import ctl
from chadthrottle.cli.error_words import in_cli_words
from chadthrottle.contract import METHODS, Direction, ErrorName
from chadthrottle.helper.adapter.validation import CALL_CHECKS, VALIDATORS, validate_usage_app_id
from chadthrottle.helper.engine import quotas, schedules
from chadthrottle.helper.errors import InvalidArgument
from chadthrottle.helper_errors import HelperClientError


def _refusal(check: Callable[[], Any]) -> str:
    with pytest.raises(InvalidArgument) as refused:
        check()
    return str(refused.value)


def _argument(method: str, name: str, value: object) -> Callable[[], Any]:
    """The helper's check of one bus argument, as its adapter makes it."""
    arg = next(a for a in METHODS[method].in_args if a.name == name)
    return lambda: VALIDATORS[arg.form](value, arg.name)


def _schedule_call(*args: object) -> Callable[[], Any]:
    return lambda: CALL_CHECKS[METHODS["SetSchedule"].call_check](args, 0.0)


def _skipped_hour() -> Callable[[], Any]:
    plan = schedules.Schedule(frozenset({6}), 2 * 60 + 30, 4 * 60)
    return lambda: schedules.check_exists_locally(
        plan, ZoneInfo("Europe/Berlin"), date(2027, 3, 22)
    )


CASES = [  # verb, the helper's check, what the CLI says, what it must not say
    (
        "schedule",
        _argument("SetSchedule", "start", "25:00"),
        "--from must be a time HH:MM",
        "start",
    ),
    ("schedule", _argument("SetSchedule", "end", "9"), "--to must be a time HH:MM", "end"),
    ("schedule", _argument("SetSchedule", "days", "mon-fry"), "--days: unknown day 'fry'", None),
    ("schedule", _argument("SetSchedule", "days", " "), "--days must name at least one day", None),
    (
        "schedule",
        _schedule_call("app:x", "mon", 540, 540, 0, 1000, (), ""),
        "--from and --to are the same time",
        None,
    ),
    (
        "schedule",
        _schedule_call("app:x", "mon", 540, 600, 5000, 0, (Direction.DOWN,), ""),
        "a schedule either limits or blocks down, not both (--down/--limit or --block down)",
        None,
    ),
    ("schedule", _skipped_hour(), "--from 02:30 does not exist on 2027-03-28", None),
    (
        "schedule",
        _argument("ClearSchedules", "name", "sometimes"),
        "named as 'chadthrottle-ctl schedule list' shows it",
        "ListSchedules",
    ),
    (
        "quota",
        _argument("SetQuota", "quota_bytes", 0),
        f"SIZE must be {quotas.MIN_QUOTA_BYTES}..",
        "clear it",
    ),
    (
        "quota",
        _argument("SetQuota", "then_rate_bps", 5),
        "--then must be block or a RATE of",
        "after the quota",
    ),
    (
        "quota",
        _argument("SetQuota", "reset_minute", 1440),
        "--reset must be HH:MM (00:00 to 23:59)",
        "1439",
    ),
    (
        "usage",
        lambda: validate_usage_app_id("pid:42"),
        "as 'chadthrottle-ctl list' shows it",
        "ListApplications",
    ),
]


@pytest.mark.parametrize(("verb", "check", "says", "not_said"), CASES)
def test_the_helpers_refusal_names_the_clis_options(verb: str, check: Callable[[], Any], says: str,
                                                      not_said: str | None) -> None:  # fmt: skip
    message = _refusal(check)
    words = in_cli_words(verb, message)
    assert says in words, (message, words)
    if not_said:
        assert not_said not in words, words


def test_a_message_no_pattern_knows_and_another_verbs_pass_unchanged() -> None:
    overlap = (
        "mon 09:00-10:00 overlaps the schedule mon 08:00-09:30 of this application; remove it first"
    )
    assert in_cli_words("schedule", overlap).endswith(
        "remove it first (chadthrottle-ctl schedule remove APP NAME)"
    )
    assert in_cli_words("limit", "start must be a time HH:MM") == "start must be a time HH:MM"
    assert in_cli_words("quota", "something new") == "something new"


def test_ctl_prints_the_translated_refusal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through main(), with the helper's real message for a bad --from."""
    message = _refusal(_argument("SetSchedule", "start", "25:00"))

    class Refusing:
        def __enter__(self) -> Refusing:
            return self

        def __exit__(self, *_exc: object) -> None:
            return None

        def set_schedule(self, *_args: object, **_kwargs: object) -> str:
            raise HelperClientError(ErrorName.INVALID_ARGUMENT.value, message)

    monkeypatch.setattr("chadthrottle.blocking_client.BlockingHelperClient", Refusing)
    with pytest.raises(SystemExit) as ended:
        ctl.main(
            ["schedule", "app:x", "--up", "1M", "--days", "mon", "--from", "25:00", "--to", "09:00"]
        )
    assert ended.value.code == 2
    err = capsys.readouterr().err
    assert (
        "--from must be a time HH:MM between 00:00 and 23:59, not '25:00'" in err
        and "start" not in err
    ), err


def test_a_timed_out_activation_says_the_first_start_compiles_and_what_to_run() -> None:
    said = ctl._describe(
        HelperClientError(
            "org.freedesktop.DBus.Error.TimedOut",
            "Failed to activate service 'io.github.chadthrottle.Helper1': timed out "
            "(service_start_timeout=25000ms)",
        )
    )
    assert said.startswith("Failed to activate service")
    assert "first start" in said and "sudo chadthrottle-helper build-cache" in said
