"""ApplicationInfo/BackendInfo/... <-> D-Bus ``a{sv}`` dictionaries.

The helper encodes, the GUI and the CLI decode; both use the field tables in
chadthrottle.contract as the single source of key names and D-Bus types, so a
field added there is carried end to end. Decoding lives in
chadthrottle.record_codec (no dbus-fast, for the CLI) and is re-exported here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from chadthrottle.contract import (
    APPLICATION_FIELDS,
    BACKEND_FIELDS,
    CONNECTION_FIELDS,
    INTERFACE_FIELDS,
    LINK_SHAPING_FIELDS,
    PROCESS_FIELDS,
    RULE_FIELDS,
    SCHEDULE_FIELDS,
    ApplicationInfo,
    BackendInfo,
    ConnectionInfo,
    InterfaceInfo,
    LinkShapingInfo,
    ProcessTraffic,
    RuleInfo,
    ScheduleInfo,
)
from chadthrottle.record_codec import (  # re-exported: the helper, the GUI and tests use them from here
    CodecError,
    check_value,
    decode_application,
    decode_backend,
    decode_connection,
    decode_interface,
    decode_link_shaping,
    decode_process,
    decode_record,
    decode_rule,
    decode_schedule,
    decode_usage,
)
from chadthrottle.usage_contract import USAGE_FIELDS, UsageRow
from dbus_fast import Variant

__all__ = [
    "CodecError", "decode_application", "decode_backend", "decode_connection", "decode_interface",
    "decode_link_shaping", "decode_process", "decode_record", "decode_rule", "decode_schedule", "decode_usage", "encode_application", "encode_backend",
    "encode_connection", "encode_interface", "encode_link_shaping", "encode_process", "encode_record", "encode_rule", "encode_schedule", "encode_usage",
    "field_names",
]  # fmt: skip


def _to_wire(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def encode_record(
    record: ApplicationInfo
    | BackendInfo
    | ConnectionInfo
    | InterfaceInfo
    | LinkShapingInfo
    | ProcessTraffic
    | RuleInfo
    | ScheduleInfo
    | UsageRow,
    fields: Mapping[str, str],
) -> dict[str, Variant]:
    """One record as ``a{sv}``; raises CodecError if a value does not fit its type
    (better a clear error in the helper than a malformed message on the bus)."""
    encoded: dict[str, Variant] = {}
    for key, signature in fields.items():
        value = getattr(record, key)
        if not check_value(signature, value):
            raise CodecError(f"field {key!r} = {value!r} does not fit D-Bus type {signature!r}")
        encoded[key] = Variant(signature, _to_wire(value), False)  # checked above: no second verify
    return encoded


def encode_application(app: ApplicationInfo) -> dict[str, Variant]:
    return encode_record(app, APPLICATION_FIELDS)


def encode_backend(backend: BackendInfo) -> dict[str, Variant]:
    return encode_record(backend, BACKEND_FIELDS)


def field_names(cls: type[ApplicationInfo] | type[BackendInfo]) -> set[str]:
    """The dataclass's field names, for the test that they match the contract table."""
    return {field.name for field in dataclasses.fields(cls)}


def encode_connection(connection: ConnectionInfo) -> dict[str, Variant]:
    return encode_record(connection, CONNECTION_FIELDS)


def encode_process(process: ProcessTraffic) -> dict[str, Variant]:
    return encode_record(process, PROCESS_FIELDS)


def encode_interface(interface: InterfaceInfo) -> dict[str, Variant]:
    return encode_record(interface, INTERFACE_FIELDS)


def encode_rule(rule: RuleInfo) -> dict[str, Variant]:
    return encode_record(rule, RULE_FIELDS)


def encode_link_shaping(shaping: LinkShapingInfo) -> dict[str, Variant]:
    return encode_record(shaping, LINK_SHAPING_FIELDS)


def encode_schedule(schedule: ScheduleInfo) -> dict[str, Variant]:
    return encode_record(schedule, SCHEDULE_FIELDS)


def encode_usage(row: UsageRow) -> dict[str, Variant]:
    return encode_record(row, USAGE_FIELDS)
