"""``a{sv}`` dictionaries from the bus -> ApplicationInfo, RuleInfo, ... records.

The decoding half of chadthrottle.dbus_codec, without dbus-fast: the CLI's
blocking client decodes replies with it and never imports dbus-fast. A value
of the dictionary is any variant, dbus-fast's or chadthrottle.dbus_wire's: an
object with a string ``signature`` and a ``value``. Decoding tolerates keys it
does not know (a newer helper may send more) but refuses a missing or mistyped
key with a CodecError naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import MISSING as _MISSING
from dataclasses import fields as _fields
from dataclasses import is_dataclass

from chadthrottle.contract import (
    APPLICATION_FIELDS,
    BACKEND_FIELDS,
    CONNECTION_FIELDS,
    INTERFACE_FIELDS,
    LINK_SHAPING_FIELDS,
    OPTIONAL_APPLICATION_FIELDS,
    OPTIONAL_CONNECTION_FIELDS,
    OPTIONAL_PROCESS_FIELDS,
    OPTIONAL_RULE_FIELDS,
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

TYPE_CHECKING = (
    False  # not typing's: importing typing costs a CLI call ~2 ms (mypy reads this name alike)
)
if TYPE_CHECKING:
    from typing import Any, TypeVar

    from chadthrottle.usage_contract import UsageRow

    Record = TypeVar(
        "Record",
        ApplicationInfo,
        BackendInfo,
        ConnectionInfo,
        InterfaceInfo,
        LinkShapingInfo,
        ProcessTraffic,
        RuleInfo,
        ScheduleInfo,
        UsageRow,
    )

_UINT_BITS = {"y": 8, "q": 16, "u": 32, "t": 64}
_INT_BITS = {"n": 16, "i": 32, "x": 64}


class CodecError(ValueError):
    """A dictionary from the bus does not have the shape the contract promises."""


def _unsigned(bits: int) -> Callable[[Any], bool]:
    end = 1 << bits
    return lambda value: type(value) is int and 0 <= value < end


def _signed(bits: int) -> Callable[[Any], bool]:
    low, end = -(1 << (bits - 1)), 1 << (bits - 1)
    return lambda value: type(value) is int and low <= value < end


# One checker per simple signature, built once: the GUI decodes every field of
# every application each second, and this table keeps that to a call per field.
_CHECKS: dict[str, Callable[[Any], bool]] = {
    **{signature: _unsigned(bits) for signature, bits in _UINT_BITS.items()},
    **{signature: _signed(bits) for signature, bits in _INT_BITS.items()},
    "d": lambda value: type(value) in (float, int),
    "b": lambda value: type(value) is bool,
    **{signature: (lambda value: type(value) is str) for signature in ("s", "o", "g")},
}


def _checker(signature: str) -> Callable[[Any], bool]:
    check = _CHECKS.get(signature)
    if check is not None:
        return check
    if signature.startswith("a") and len(signature) == 2 and signature[1] in _CHECKS:
        item = _CHECKS[signature[1]]
        check = _CHECKS[signature] = lambda value: (
            isinstance(value, (list, tuple)) and all(map(item, value))
        )
        return check
    raise CodecError(f"the contract uses an unsupported field type {signature!r}")


def check_value(signature: str, value: Any) -> bool:
    """Whether value is a valid Python value for the simple D-Bus signature."""
    return _checker(signature)(value)


_ABSENT = object()
_BUILDERS: dict[type, Callable[[dict[str, Any]], Any]] = {}  # per record class: _builder
_PLAIN, _TUPLE, _FLOAT = 0, 1, 2  # what a checked value becomes: itself, a tuple, a float

# Per fields mapping: (key, signature, check, kind) for each field, worked out
# once. The GUI decodes every field of every application each second.
_PLANS: dict[
    int, tuple[Mapping[str, str], tuple[tuple[str, str, Callable[[Any], bool], int], ...]]
] = {}


def _plan(fields: Mapping[str, str]) -> tuple[tuple[str, str, Callable[[Any], bool], int], ...]:
    known = _PLANS.get(id(fields))
    if known is not None and known[0] is fields:
        return known[1]
    plan = tuple((key, signature, _checker(signature), _TUPLE if signature[0] == "a" else _FLOAT if signature == "d" else _PLAIN)
                 for key, signature in fields.items())  # fmt: skip
    if len(_PLANS) > 64:  # the contract has a handful; any other caller cannot grow it for ever
        _PLANS.clear()
    _PLANS[id(fields)] = (fields, plan)  # the mapping is kept, so its id is not reused
    return plan


def _builder(cls: type[Record]) -> Callable[[dict[str, Any]], Record]:
    """How to make cls from checked values. A frozen dataclass's __init__ sets
    each field through object.__setattr__, about a third of decoding an
    application; one with plain defaults and no __post_init__ is filled in
    directly, its absent fields given their defaults, to the same object."""
    builder = _BUILDERS.get(cls)
    if builder is not None:
        return builder
    defaults: dict[str, Any] = {}
    plain = is_dataclass(cls) and not hasattr(cls, "__post_init__") and "__slots__" not in vars(cls)
    for spec in _fields(cls) if plain else ():
        if spec.default_factory is not _MISSING or not spec.init:
            plain = False
        elif spec.default is not _MISSING:
            defaults[spec.name] = spec.default
    if not plain:
        builder = _BUILDERS[cls] = lambda values: cls(**values)
        return builder
    new = object.__new__

    def build(values: dict[str, Any]) -> Record:
        made = new(cls)
        made.__dict__.update(defaults)
        made.__dict__.update(values)
        return made

    _BUILDERS[cls] = build
    return build


def decode_record(
    cls: type[Record],
    data: Mapping[str, Any],
    fields: Mapping[str, str],
    optional: frozenset[str] = frozenset(),
) -> Record:
    """Build cls from an ``a{sv}`` dictionary, checking every contract field.
    A key in optional (added after older helpers shipped) may be absent: the
    dataclass's default stands in; present, it is checked like the others."""
    if not isinstance(data, Mapping):
        raise CodecError(f"expected a dictionary, got {type(data).__name__}")
    values: dict[str, Any] = {}
    get = data.get
    for key, signature, check, kind in _plan(fields):
        variant = get(key, _ABSENT)
        if variant is _ABSENT:
            if key in optional:
                continue
            raise CodecError(f"{cls.__name__}: missing field {key!r}")
        try:
            found, value = variant.signature, variant.value
        except AttributeError:
            found, value = getattr(variant, "signature", None), _ABSENT
        if found != signature or value is _ABSENT:
            if not isinstance(found, str) or value is _ABSENT:
                raise CodecError(f"{cls.__name__}: field {key!r} is not a variant")
            raise CodecError(
                f"{cls.__name__}: field {key!r} has type {found!r}, expected {signature!r}"
            )
        if not check(value):
            raise CodecError(f"{cls.__name__}: field {key!r} has an invalid value")
        if kind:
            value = tuple(value) if kind == _TUPLE else float(value)
        values[key] = value
    return _builder(cls)(values)


def decode_application(data: Mapping[str, Any]) -> ApplicationInfo:
    return decode_record(ApplicationInfo, data, APPLICATION_FIELDS, OPTIONAL_APPLICATION_FIELDS)


def decode_backend(data: Mapping[str, Any]) -> BackendInfo:
    return decode_record(BackendInfo, data, BACKEND_FIELDS)


def decode_connection(data: Mapping[str, Any]) -> ConnectionInfo:
    return decode_record(ConnectionInfo, data, CONNECTION_FIELDS, OPTIONAL_CONNECTION_FIELDS)


def decode_process(data: Mapping[str, Any]) -> ProcessTraffic:
    return decode_record(ProcessTraffic, data, PROCESS_FIELDS, OPTIONAL_PROCESS_FIELDS)


def decode_interface(data: Mapping[str, Any]) -> InterfaceInfo:
    return decode_record(InterfaceInfo, data, INTERFACE_FIELDS)


def decode_rule(data: Mapping[str, Any]) -> RuleInfo:
    return decode_record(RuleInfo, data, RULE_FIELDS, OPTIONAL_RULE_FIELDS)


def decode_link_shaping(data: Mapping[str, Any]) -> LinkShapingInfo:
    return decode_record(LinkShapingInfo, data, LINK_SHAPING_FIELDS)


def decode_schedule(data: Mapping[str, Any]) -> ScheduleInfo:
    return decode_record(ScheduleInfo, data, SCHEDULE_FIELDS)


def decode_usage(data: Mapping[str, Any]) -> UsageRow:
    from chadthrottle.usage_contract import (
        USAGE_FIELDS,
        UsageRow,
    )  # only GetUsage's callers need it

    return decode_record(UsageRow, data, USAGE_FIELDS)
