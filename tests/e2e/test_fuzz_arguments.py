"""Random and malformed calls to every method of the real helper: each one gets
a named error (contract.ErrorName) and the kernel does not change.

Raw dbus-fast messages, so signatures can be wrong too. Bounded to a few
hundred calls; a tc dump of the helper's namespace after each one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from chadthrottle.contract import (
    MAX_APP_ID_LENGTH,
    METHODS,
    ErrorName,
)
from dbus_fast import Variant
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.conftest import Stack
from tests.support.helper_calls import call_helper
from tests.support.raw_callers import RawCallers, raw_callers

NAMED_ERRORS = frozenset(name.value for name in ErrorName)
PID_MAX_LIMIT = 2**22  # no Linux pid is above this

_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=80
)
_by_type: dict[str, st.SearchStrategy[Any]] = {
    "s": _text,
    "t": st.integers(0, 2**64 - 1),
    "u": st.integers(0, 2**32 - 1),
    "i": st.integers(-(2**31), 2**31 - 1),
    "d": st.floats(allow_nan=True, allow_infinity=True),
    "b": st.booleans(),
    "o": st.just("/io/github/chadthrottle/Helper1"),
    "as": st.lists(_text, max_size=3),
    "ay": st.binary(max_size=16),
    "a{sv}": st.dictionaries(_text, _text.map(lambda text: Variant("s", text)), max_size=2),
    "v": st.one_of(
        _text.map(lambda t: Variant("s", t)),
        st.integers(0, 2**64 - 1).map(lambda n: Variant("t", n)),
    ),
    "(sstt)": st.tuples(_text, _text, st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1)).map(
        list
    ),
}
# Signatures as lists of complete types; the contract's own are excluded per method.
_SIGNATURES: list[tuple[str, ...]] = [
    (), ("s",), ("s", "s"), ("s", "s", "t"), ("s", "s", "t", "t"), ("s", "s", "t", "t", "t"),
    ("s", "s", "u", "u"), ("s", "s", "t", "u"), ("i", "i"), ("as",), ("a{sv}",), ("v",), ("(sstt)",),
    ("s", "d"), ("s", "t", "t"), ("b",), ("ay",), ("o",), ("s", "s", "d", "d"), ("s", "v"),
]  # fmt: skip


@st.composite
def wrong_signature_calls(draw: st.DrawFn) -> tuple[str, str, list[Any]]:
    method = draw(st.sampled_from(sorted(METHODS)))
    types = draw(
        st.sampled_from([s for s in _SIGNATURES if "".join(s) != METHODS[method].in_signature])
    )
    return method, "".join(types), [draw(_by_type[code]) for code in types]


_missing_app_ids = st.one_of(
    st.from_regex(r"\A(exe|script):/nonexistent/[a-z0-9]{1,12}\Z"),
    st.from_regex(r"\A(app|flatpak|snap):org\.chadthrottle\.Fuzz[A-Za-z0-9]{1,12}\Z"),
    st.integers(PID_MAX_LIMIT + 1, 2**31 - 1).map(lambda pid: f"pid:{pid}"),
)
_bad_app_ids = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "curl",
            "exe:",
            "exe: ",
            "pid:",
            "pid:0",
            "pid:-1",
            "pid:01",
            "pid:1e3",
            "pid:99999999999",
            "cgroup:/sys/fs/cgroup",
            "EXE:/usr/bin/curl",
            "exe:/usr/bin/cu\x07rl",
            "app:a\nb",
            "exe:/x\x7f",
            "../../etc/passwd",
            "/usr/bin/curl",
            ":/x",
            "exe:/usr/bin/\u202ecurl",
            "x" * (MAX_APP_ID_LENGTH + 1),
        ]
    ),
    _text,
)
_directions = st.one_of(
    st.sampled_from(["down", "up", "both", "", "DOWN", "down ", "sideways", "d"]), _text
)
_rates = st.one_of(st.integers(0, 999), st.integers(10**11 + 1, 2**64 - 1), st.integers(0, 2**64 - 1),
                   st.sampled_from([1_000, 125_000, 2**63, 2**64 - 1]))  # fmt: skip
_bursts = st.one_of(
    st.integers(0, 2**64 - 1), st.sampled_from([0, 1, 1_499, 1_500, 10**9, 10**9 + 1])
)
_scopes = st.one_of(
    st.sampled_from(["", "own", "all", "OWN", "All", "everyone", " own", "own "]), _text
)


_unix_times = st.one_of(
    st.integers(-(2**63), 2**63 - 1), st.sampled_from([-1, 0, 1, 2**40 - 1, 2**40, 2**63 - 1])
)
_bad_unix_times = st.one_of(st.integers(-(2**63), -1), st.integers(2**40, 2**63 - 1))
_resolutions = st.one_of(st.sampled_from(["minute", "hour", "day", "month"]), _text)
_bad_resolutions = st.one_of(
    st.sampled_from(["", "week", "Day", "day ", "year", "second"]), _text
).filter(lambda text: text not in ("minute", "hour", "day", "month"))
# GetUsage of an id nobody ran is an empty answer, not an error: its other
# arguments are always wrong somewhere (a time out of range, since not before
# until, or no resolution).
_usage_arguments = st.one_of(
    st.tuples(_bad_unix_times, _unix_times, _resolutions),
    st.tuples(_unix_times, _bad_unix_times, _resolutions),
    st.tuples(st.integers(1, 2**40 - 1), st.integers(1, 2**40 - 1), _resolutions).filter(
        lambda t: t[0] >= t[1]
    ),
    st.tuples(_unix_times, _unix_times, _bad_resolutions),
).map(list)

_days = st.one_of(
    st.sampled_from(["mon-fri", "", "fry", "mon--fri", "mon,", "daily", "MON", "sat,sun "]), _text
)
_clock_times = st.one_of(
    st.sampled_from(["09:00", "17:00", "24:00", "9:00", "12:60", "", " 09:00", "09:00:00"]), _text
)
_schedule_blocks = st.one_of(st.sampled_from(["", "down", "up", "both", "none", "Down"]), _text)
_schedule_names = st.one_of(
    st.sampled_from(["", "mon-fri 09:00-17:00", "mon-fri", "x 1-2", "mon 09:00"]), _text
)

_quota_bytes = st.one_of(
    st.integers(0, 2**64 - 1), st.sampled_from([0, 999, 1_000, 5_000_000, 2**50, 2**50 + 1])
)
_periods = st.one_of(
    st.sampled_from(["day", "week", "month", "fortnight", "", "Day", "day "]), _text
)
_reset_minutes = st.one_of(st.integers(0, 2**32 - 1), st.sampled_from([0, 1439, 1440]))

# Per method that takes arguments: its arguments after the application id.
_priorities = st.one_of(
    st.sampled_from(["critical", "high", "normal", "low", "", "Critical", "urgent", "low "]), _text
)
_capacities = st.one_of(
    st.integers(0, 2**64 - 1), st.sampled_from([0, 999, 1_000, 10**11, 10**11 + 1])
)
_bad_capacities = st.one_of(st.integers(1, 999), st.integers(10**11 + 1, 2**64 - 1))
# Methods without an application id: their whole body, always wrong somewhere.
_WHOLE_ARGUMENTS: dict[str, st.SearchStrategy[list[Any]]] = {
    "SetLinkCapacity": st.one_of(
        st.tuples(_bad_capacities, _capacities, st.booleans()),
        st.tuples(_capacities, _bad_capacities, st.booleans()),
    ).map(list),
}

_REST_OF_ARGUMENTS: dict[str, st.SearchStrategy[list[Any]]] = {
    "SetLimit": st.tuples(_directions, _rates, _bursts, _scopes).map(list),
    "ClearLimit": st.tuples(_directions, _scopes).map(list),
    "SetSchedule": st.tuples(
        _days, _clock_times, _clock_times, _rates, _rates, _schedule_blocks, _scopes
    ).map(list),
    "ClearSchedules": st.tuples(_schedule_names, _scopes).map(list),
    "SetBlocked": st.tuples(_directions, st.booleans(), _scopes).map(list),
    "SetQuota": st.tuples(_directions, _quota_bytes, _periods, _reset_minutes, _rates, _scopes).map(
        list
    ),
    "ClearQuota": st.tuples(_directions, _scopes).map(list),
    "SetPriority": st.tuples(_priorities, _scopes).map(list),
    "ListConnections": st.just([]),
    "ListProcesses": st.just([]),
    "GetUsage": _usage_arguments,
}


@st.composite
def malformed_value_calls(draw: st.DrawFn) -> tuple[str, str, list[Any]]:
    """The right signature with values that are wrong, or name no application."""
    method = draw(st.sampled_from(sorted(_REST_OF_ARGUMENTS) + sorted(_WHOLE_ARGUMENTS)))
    if method in _WHOLE_ARGUMENTS:
        return method, METHODS[method].in_signature, draw(_WHOLE_ARGUMENTS[method])
    app_id = draw(st.one_of(_missing_app_ids, _bad_app_ids))
    return method, METHODS[method].in_signature, [app_id, *draw(_REST_OF_ARGUMENTS[method])]


@pytest.fixture(scope="module")
def caller(stack: Stack) -> Iterator[RawCallers]:
    """Every call fails, and the helper paces a user whose calls keep failing:
    the calls go out as root or, when root would be paced, as other users
    granted every action (tests/support/raw_callers.py)."""
    with raw_callers(stack.bus_address) as callers:
        yield callers


@pytest.fixture(scope="module")
def untouched(stack: Stack) -> str:
    return stack.idle_tc_state()


def _assert_named_error_and_no_change(stack: Stack, caller: RawCallers, untouched: str,
                                      call: tuple[str, str, list[Any]]) -> None:  # fmt: skip
    member, signature, body = call
    stored = _stored(stack) if member in STORING else None
    reply = caller.call(member, signature, body)
    assert reply.error_name is not None, f"{member}({signature}) {body!r} succeeded: {reply.body}"
    assert reply.error_name in NAMED_ERRORS, f"{member}({signature}) {body!r} -> {reply.error_name}"
    # A user granted every action is refused nothing root would not be
    # (nothing here names an existing process of another user's).
    assert reply.uid == 0 or reply.error_name != ErrorName.NOT_AUTHORIZED.value, (
        f"uid {reply.uid}: {member}({signature}) {body!r} -> {reply.error_name} {reply.body}"
    )
    assert "Traceback" not in reply.body
    assert stack.tc_state() == untouched, f"{member}({signature}) {body!r} changed the kernel"
    if (
        stored is not None
    ):  # a priority or a capacity changes nothing in the kernel without the other
        assert _stored(stack) == stored, (
            f"{member}({signature}) {body!r} changed the rules or the link"
        )


# What a refused call may have stored without touching the kernel (no capacity, no tree).
STORING = frozenset({"SetPriority", "SetLinkCapacity"})


def _stored(stack: Stack) -> tuple[object, object]:
    return call_helper(stack.bus_address, lambda c: c.list_rules()), call_helper(
        stack.bus_address, lambda c: c.get_link_shaping())  # fmt: skip


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(call=wrong_signature_calls())
def test_a_wrong_signature_is_a_named_error(stack: Stack, caller: RawCallers, untouched: str,
                                            call: tuple[str, str, list[Any]]) -> None:  # fmt: skip
    _assert_named_error_and_no_change(stack, caller, untouched, call)


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(call=malformed_value_calls())
def test_malformed_values_are_a_named_error(stack: Stack, caller: RawCallers, untouched: str,
                                            call: tuple[str, str, list[Any]]) -> None:  # fmt: skip
    _assert_named_error_and_no_change(stack, caller, untouched, call)


def test_every_method_with_arguments_gets_malformed_values() -> None:
    """A new method with arguments must be added to _REST_OF_ARGUMENTS; every
    such method takes an application id first, but those of _WHOLE_ARGUMENTS. A lone boolean
    (SetLimitsPaused) has no malformed value: the bus guarantees its type, and
    wrong signatures are covered above."""
    assert set(_REST_OF_ARGUMENTS) | set(_WHOLE_ARGUMENTS) == {
        name for name, spec in METHODS.items() if spec.in_signature and spec.in_signature != "b"
    }
    assert all(METHODS[name].in_signature.startswith("s") for name in _REST_OF_ARGUMENTS)
