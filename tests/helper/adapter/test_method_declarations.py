"""contract.METHODS declares each method once; the helper checks and dispatches
by it and the clients build calls by it. These are the rules that keep a
declaration whole (pure logic; the adapter tests call every method on a bus)."""

from __future__ import annotations

import pytest
from chadthrottle.contract import METHODS, Action, Arg, ArgForm, LimitAuthorization, MethodSpec
from chadthrottle.helper.adapter.service import _HANDLERS
from chadthrottle.helper.adapter.validation import CALL_CHECKS, VALIDATORS, validate_call
from chadthrottle.helper.errors import HelperError, InvalidArgument


@pytest.mark.parametrize("name", sorted(METHODS))
def test_a_declaration_is_whole(name: str) -> None:
    spec = METHODS[name]
    assert spec.name == name
    assert spec.in_signature == "".join(arg.signature for arg in spec.in_args)
    assert spec.out_signature == "".join(arg.signature for arg in spec.out_args)
    assert all(arg.form in VALIDATORS for arg in spec.in_args), "an input without a known form"
    assert all(arg.form == "" for arg in spec.out_args), "an output has no form"
    assert spec.call_check in CALL_CHECKS
    assert isinstance(spec.action, (Action, LimitAuthorization))
    assert spec.doc.strip()
    assert name in _HANDLERS


def test_every_form_is_checked_by_something() -> None:
    forms = {value for key, value in vars(ArgForm).items() if not key.startswith("_")}
    assert forms == VALIDATORS.keys()
    assert forms == {arg.form for spec in METHODS.values() for arg in spec.in_args}


def test_the_body_is_in_declared_order_and_names_are_checked() -> None:
    spec = METHODS["SetLimit"]
    body = spec.body(
        scope="own", burst_bytes=0, rate_bps=5000, direction="down", app_id="exe:/usr/bin/curl"
    )
    assert body == ["exe:/usr/bin/curl", "down", 5000, 0, "own"]
    with pytest.raises(TypeError):
        spec.body(app_id="exe:/usr/bin/curl", direction="down")
    with pytest.raises(TypeError):
        spec.body(
            app_id="exe:/usr/bin/curl",
            direction="down",
            rate_bps=5000,
            burst_bytes=0,
            scope="",
            extra=1,
        )


def test_a_call_is_checked_by_the_declared_forms() -> None:
    spec = METHODS["ClearLimit"]
    assert validate_call(spec, ["exe:/usr/bin/curl", "both", ""], now=0.0)[0] == "exe:/usr/bin/curl"
    with pytest.raises(InvalidArgument, match="direction"):
        validate_call(spec, ["exe:/usr/bin/curl", "sideways", ""], now=0.0)


def test_usage_until_zero_is_now_and_the_range_is_checked_after_each_time() -> None:
    spec = METHODS["GetUsage"]
    assert validate_call(spec, ["", 10, 0, "hour"], now=100.5)[1:3] == (10, 101)
    with pytest.raises(InvalidArgument, match="since_unix must be unix seconds"):
        validate_call(spec, ["", -1, 0, "hour"], now=100.5)
    with pytest.raises(InvalidArgument, match="must be before"):
        validate_call(spec, ["", 200, 0, "hour"], now=100.5)


def test_a_method_declared_without_its_arguments_is_refused_not_let_through() -> None:
    bare = MethodSpec("SetLimit", "sstts", "s", LimitAuthorization.BY_SCOPE)
    with pytest.raises(HelperError, match="declares 0 arguments"):
        validate_call(bare, ["exe:/usr/bin/curl", "down", 5000, 0, ""], now=0.0)


def test_an_argument_knows_its_form() -> None:
    assert Arg("x", "s", ArgForm.APP_ID).form == ArgForm.APP_ID
    assert Arg("x", "s").form == ""
