"""A stored program set is parsed strictly: map references are relocated both
ways, and anything the loader could not use faithfully is refused by name.
Pure logic, no kernel."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from chadthrottle.helper.kernel.bpf_objects import MapSpec
from chadthrottle.helper.kernel.program_set import PROGRAMS, InvalidProgramSet, ProgramSet, relocate

EXIT = struct.pack("<BBhi", 0x95, 0, 0, 0)


def _load_map(source: int, imm: int) -> bytes:
    """ld_imm64 r1 with a pseudo source: two instruction slots."""
    return struct.pack("<BBhi", 0x18, (source << 4) | 1, 0, imm) + struct.pack("<BBhi", 0, 0, 0, 0)


def _spec(name: str) -> MapSpec:
    return MapSpec(name=name, map_type=1, key_size=4, value_size=4, max_entries=16, flags=0,
                   btf_key_type_id=0, btf_value_type_id=0)  # fmt: skip


def _set(**programs: bytes) -> ProgramSet:
    body = {name: _load_map(1, 0) + EXIT for name in PROGRAMS}
    body.update(programs)
    return ProgramSet(b"btf", (_spec("first"), _spec("second")), body)


def test_map_references_are_relocated_both_ways() -> None:
    program = _load_map(1, 1) + EXIT + _load_map(1, 0) + EXIT
    with_fds = relocate(program, {0: 40, 1: 41})
    assert struct.unpack_from("<i", with_fds, 4)[0] == 41
    assert struct.unpack_from("<i", with_fds, 28)[0] == 40
    assert relocate(with_fds, {40: 0, 41: 1}) == program


def test_a_json_round_trip_keeps_the_set() -> None:
    program_set = _set()
    assert ProgramSet.from_json(program_set.to_json()) == program_set


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d.pop("btf"), "malformed"),
        (lambda d: d.update(btf="not base64!"), "malformed"),
        (lambda d: d["programs"].pop("chadt_sock"), "not"),
        (lambda d: d["programs"].update(chadt_extra=d["programs"]["chadt_sock"]), "not"),
        (lambda d: d["maps"][0].update(max_entries=1 << 32), "malformed"),
        (lambda d: d["maps"][0].update(key_size="4"), "malformed"),
        (lambda d: d["maps"][0].update(name="../x"), "malformed"),
        (lambda d: d["maps"][0].update(extra=1), "malformed"),
        (lambda d: d["maps"].append(dict(d["maps"][0])), "same name"),
        (lambda d: d.update(maps=[]), "between 1 and 64 maps"),
        (lambda d: d.update(programs=[]), "malformed"),
    ],
    ids=[
        "no-btf",
        "bad-base64",
        "missing-program",
        "extra-program",
        "number-too-big",
        "number-as-text",
        "bad-map-name",
        "unknown-field",
        "duplicate-map",
        "no-maps",
        "programs-not-a-mapping",
    ],
)
def test_a_malformed_document_is_refused(change: Any, reason: str) -> None:
    document = _set().to_json()
    change(document)
    with pytest.raises(InvalidProgramSet, match=reason):
        ProgramSet.from_json(document)


@pytest.mark.parametrize(
    ("program", "reason"),
    [
        (_load_map(1, 2) + EXIT, "refers to map 2"),  # only maps 0 and 1 exist
        (_load_map(2, 0) + EXIT, "pseudo source 2"),  # a map value: not relocated by us
        (EXIT[:5], "whole number of instructions"),
        (b"", "whole number of instructions"),
    ],
    ids=["map-out-of-range", "map-value-reference", "torn-instruction", "empty"],
)
def test_a_program_the_loader_could_not_relocate_is_refused(program: bytes, reason: str) -> None:
    with pytest.raises(InvalidProgramSet, match=reason):
        ProgramSet.from_json(_set(chadt_egress=program).to_json())
