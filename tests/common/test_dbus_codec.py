"""The a{sv} codec: round trips, forward compatibility, clear errors."""

from __future__ import annotations

import pytest
from chadthrottle.contract import APPLICATION_FIELDS, BACKEND_FIELDS, ApplicationInfo, BackendInfo
from chadthrottle.dbus_codec import (
    CodecError,
    decode_application,
    decode_backend,
    encode_application,
    encode_backend,
    field_names,
)
from dbus_fast import Message, Variant

APP = ApplicationInfo(
    id="exe:/usr/bin/curl", name="curl", icon="", uids=(1000,), pids=(41, 42),
    down_bps=1234.5, up_bps=0.0, rx_bytes=2**40, tx_bytes=7,
    down_limit_bps=500_000, up_limit_bps=0,
)  # fmt: skip
BACKEND = BackendInfo(name="tc", available=False, reason="no IFB", active_directions=("down",))


def test_field_tables_match_the_dataclasses() -> None:
    assert field_names(ApplicationInfo) == set(APPLICATION_FIELDS)
    assert field_names(BackendInfo) == set(BACKEND_FIELDS)


def test_application_round_trip() -> None:
    assert decode_application(encode_application(APP)) == APP


def test_backend_round_trip() -> None:
    assert decode_backend(encode_backend(BACKEND)) == BACKEND


def test_round_trip_through_a_marshalled_message() -> None:
    """The encoding is valid D-Bus: it survives marshalling as aa{sv}."""
    message = Message(path="/x", member="M", signature="aa{sv}", body=[[encode_application(APP)]])
    data = message._marshall(False)
    import io

    from dbus_fast._private.unmarshaller import Unmarshaller

    unmarshaller = Unmarshaller(io.BytesIO(bytes(data)))
    decoded = unmarshaller.unmarshall()
    assert decoded is not None
    assert decode_application(decoded.body[0][0]) == APP


def test_unknown_keys_are_ignored() -> None:
    data = encode_backend(BACKEND) | {"added_in_v2": Variant("i", -1)}
    assert decode_backend(data) == BACKEND


def test_missing_key_is_named() -> None:
    data = encode_application(APP)
    del data["pids"]
    with pytest.raises(CodecError, match="missing field 'pids'"):
        decode_application(data)


def test_mistyped_key_is_named() -> None:
    data = encode_application(APP) | {"rx_bytes": Variant("s", "lots")}
    with pytest.raises(CodecError, match="'rx_bytes' has type 's', expected 't'"):
        decode_application(data)


def test_non_variant_is_refused() -> None:
    data: dict[str, object] = dict(encode_backend(BACKEND))
    data["name"] = "tc"
    with pytest.raises(CodecError, match="not a variant"):
        decode_backend(data)


def test_encoding_refuses_values_that_do_not_fit() -> None:
    with pytest.raises(CodecError, match="down_limit_bps"):
        encode_application(ApplicationInfo(**{**APP.__dict__, "down_limit_bps": -1}))
    with pytest.raises(CodecError, match="uids"):
        encode_application(ApplicationInfo(**{**APP.__dict__, "uids": (2**32,)}))


def test_integer_rates_decode_as_float() -> None:
    data = encode_application(APP)
    assert isinstance(decode_application(data).down_bps, float)


def test_connection_bytes_round_trip_and_an_older_helpers_reply_without_them() -> None:
    from chadthrottle.contract import CONNECTION_FIELDS, ConnectionInfo
    from chadthrottle.dbus_codec import decode_connection, encode_connection

    assert field_names(ConnectionInfo) == set(CONNECTION_FIELDS)  # type: ignore[arg-type]
    counted = ConnectionInfo(
        "tcp", "10.0.0.5:51234", "192.0.2.7:443", "ESTABLISHED", 42, rx_bytes=2**40, tx_bytes=0
    )
    assert decode_connection(encode_connection(counted)) == counted
    older = encode_connection(counted)
    del older["rx_bytes"], older["tx_bytes"]
    assert (decode_connection(older).rx_bytes, decode_connection(older).tx_bytes) == (-1, -1)
    del older["pid"]
    with pytest.raises(CodecError, match="missing field 'pid'"):
        decode_connection(older)
    with pytest.raises(CodecError, match="'tx_bytes' has type 't', expected 'x'"):
        decode_connection(encode_connection(counted) | {"tx_bytes": Variant("t", 5)})


def test_link_shaping_and_priority_keys_round_trip_and_an_api_4_reply_reads_normal() -> None:
    from chadthrottle.contract import LINK_SHAPING_FIELDS, RULE_FIELDS, LinkShapingInfo, RuleInfo
    from chadthrottle.dbus_codec import (
        decode_link_shaping,
        decode_rule,
        encode_link_shaping,
        encode_rule,
    )

    assert field_names(LinkShapingInfo) == set(LINK_SHAPING_FIELDS)  # type: ignore[arg-type]
    assert field_names(RuleInfo) == set(RULE_FIELDS)  # type: ignore[arg-type]
    shaping = LinkShapingInfo(
        6_250_000, 1_250_000, 6_250_000, 0, True, True, False, ("eth0",), "estimating..."
    )
    assert decode_link_shaping(encode_link_shaping(shaping)) == shaping
    protected = ApplicationInfo(
        **{**APP.__dict__, "priority": "critical", "priority_owner": 1000, "rtt_us": 23_000}
    )
    assert decode_application(encode_application(protected)) == protected
    older = encode_application(protected)
    for key in ("priority", "priority_owner", "priority_problem", "rtt_us"):
        del older[key]
    assert (decode_application(older).priority, decode_application(older).rtt_us) == ("normal", 0)
    rule = encode_rule(RuleInfo("exe:/usr/bin/x", "down", 0, 0, -1, True, priority="low"))
    assert decode_rule(rule).priority == "low"
    del rule["priority"]
    assert decode_rule(rule).priority == "normal"
    with pytest.raises(CodecError, match="'interfaces'"):
        decode_link_shaping(encode_link_shaping(shaping) | {"interfaces": Variant("s", "eth0")})


def test_a_decoded_record_is_the_object_its_constructor_makes() -> None:
    """decode_record fills plain frozen dataclasses without __init__ (record_codec._builder)."""
    import dataclasses

    from chadthrottle.contract import OPTIONAL_APPLICATION_FIELDS
    from chadthrottle.record_codec import decode_record

    older = {
        key: value
        for key, value in encode_application(APP).items()
        if key not in OPTIONAL_APPLICATION_FIELDS
    }
    decoded = decode_application(older)
    assert decoded == APP and hash(decoded) == hash(APP) and repr(decoded) == repr(APP)
    assert vars(decoded) == vars(
        APP
    )  # the absent fields hold their defaults, as __init__ gives them
    with pytest.raises(dataclasses.FrozenInstanceError):
        decoded.name = "other"  # type: ignore[misc]
    assert dataclasses.replace(decoded, name="other").name == "other"

    @dataclasses.dataclass(frozen=True)
    class Checked:  # one that checks itself still goes through its __init__
        rate: float

        def __post_init__(self) -> None:
            if self.rate < 0:
                raise ValueError("negative rate")

    with pytest.raises(ValueError, match="negative rate"):
        decode_record(Checked, {"rate": Variant("d", -1.0)}, {"rate": "d"})
