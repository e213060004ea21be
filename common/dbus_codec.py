"""ApplicationInfo/BackendInfo <-> D-Bus ``a{sv}`` dictionaries.

The helper encodes, the GUI and the CLI decode; both use the field tables in
chadthrottle.contract as the single source of key names and D-Bus types, so a
field added there is carried end to end. Decoding tolerates keys it does not
know (a newer helper may send more) but refuses a missing or mistyped key with
a CodecError naming it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from dbus_fast import Variant

from chadthrottle.contract import (
    APPLICATION_FIELDS,
    BACKEND_FIELDS,
    CONNECTION_FIELDS,
    INTERFACE_FIELDS,
    RULE_FIELDS,
    ApplicationInfo,
    BackendInfo,
    ConnectionInfo,
    InterfaceInfo,
    RuleInfo,
)

Record = TypeVar("Record", ApplicationInfo, BackendInfo, ConnectionInfo, InterfaceInfo, RuleInfo)

_UINT_BITS = {"y": 8, "q": 16, "u": 32, "t": 64}
_INT_BITS = {"n": 16, "i": 32, "x": 64}


class CodecError(ValueError):
    """A dictionary from the bus does not have the shape the contract promises."""


def _check_value(signature: str, value: Any) -> bool:
    """Whether value is a valid Python value for the simple D-Bus signature."""
    if signature in _UINT_BITS:
        return type(value) is int and 0 <= value < 2 ** _UINT_BITS[signature]
    if signature in _INT_BITS:
        bits = _INT_BITS[signature]
        return type(value) is int and -(2 ** (bits - 1)) <= value < 2 ** (bits - 1)
    if signature == "d":
        return type(value) in (float, int)
    if signature == "b":
        return type(value) is bool
    if signature in ("s", "o", "g"):
        return type(value) is str
    if signature.startswith("a") and len(signature) == 2:
        return isinstance(value, (list, tuple)) and all(
            _check_value(signature[1], item) for item in value
        )
    raise CodecError(f"the contract uses an unsupported field type {signature!r}")


def _to_wire(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _from_wire(signature: str, value: Any) -> Any:
    if signature.startswith("a"):
        return tuple(value)
    if signature == "d":
        return float(value)
    return value


def encode_record(record: ApplicationInfo | BackendInfo | ConnectionInfo | InterfaceInfo | RuleInfo, fields: Mapping[str, str]) -> dict[str, Variant]:
    """One record as ``a{sv}``; raises CodecError if a value does not fit its type
    (better a clear error in the helper than a malformed message on the bus)."""
    encoded: dict[str, Variant] = {}
    for key, signature in fields.items():
        value = getattr(record, key)
        if not _check_value(signature, value):
            raise CodecError(f"field {key!r} = {value!r} does not fit D-Bus type {signature!r}")
        encoded[key] = Variant(signature, _to_wire(value), False)  # checked above: no second verify
    return encoded


def decode_record(cls: type[Record], data: Mapping[str, Any], fields: Mapping[str, str]) -> Record:
    """Build cls from an ``a{sv}`` dictionary, checking every contract field."""
    if not isinstance(data, Mapping):
        raise CodecError(f"expected a dictionary, got {type(data).__name__}")
    values: dict[str, Any] = {}
    for key, signature in fields.items():
        if key not in data:
            raise CodecError(f"{cls.__name__}: missing field {key!r}")
        variant = data[key]
        if not isinstance(variant, Variant):
            raise CodecError(f"{cls.__name__}: field {key!r} is not a variant")
        if variant.signature != signature:
            raise CodecError(
                f"{cls.__name__}: field {key!r} has type {variant.signature!r}, expected {signature!r}"
            )
        if not _check_value(signature, variant.value):
            raise CodecError(f"{cls.__name__}: field {key!r} has an invalid value")
        values[key] = _from_wire(signature, variant.value)
    return cls(**values)


def encode_application(app: ApplicationInfo) -> dict[str, Variant]:
    return encode_record(app, APPLICATION_FIELDS)


def decode_application(data: Mapping[str, Any]) -> ApplicationInfo:
    return decode_record(ApplicationInfo, data, APPLICATION_FIELDS)


def encode_backend(backend: BackendInfo) -> dict[str, Variant]:
    return encode_record(backend, BACKEND_FIELDS)


def decode_backend(data: Mapping[str, Any]) -> BackendInfo:
    return decode_record(BackendInfo, data, BACKEND_FIELDS)


def field_names(cls: type[ApplicationInfo] | type[BackendInfo]) -> set[str]:
    """The dataclass's field names, for the test that they match the contract table."""
    return {field.name for field in dataclasses.fields(cls)}


def encode_connection(connection: ConnectionInfo) -> dict[str, Variant]:
    return encode_record(connection, CONNECTION_FIELDS)


def decode_connection(data: Mapping[str, Any]) -> ConnectionInfo:
    return decode_record(ConnectionInfo, data, CONNECTION_FIELDS)


def encode_interface(interface: InterfaceInfo) -> dict[str, Variant]:
    return encode_record(interface, INTERFACE_FIELDS)


def decode_interface(data: Mapping[str, Any]) -> InterfaceInfo:
    return decode_record(InterfaceInfo, data, INTERFACE_FIELDS)


def encode_rule(rule: RuleInfo) -> dict[str, Variant]:
    return encode_record(rule, RULE_FIELDS)


def decode_rule(data: Mapping[str, Any]) -> RuleInfo:
    return decode_record(RuleInfo, data, RULE_FIELDS)
