"""The programs of bpf/datapath.c as bcc built them, in a form that can be
stored and loaded again without bcc: the BTF, each map's spec, and each
program's instructions with its map references written as map indices.

program_build.py makes one (with bcc, in a child process), program_cache.py
stores it per kernel and source, and LoadedPrograms puts it into the kernel
with bpf(2). The same ProgramSet always loads the same programs and maps.
"""

from __future__ import annotations

import base64
import os
import re
import struct
from dataclasses import asdict, dataclass
from typing import Any

from chadthrottle.helper.kernel.bpf_objects import MapSpec, create_map, load_btf, load_program
from chadthrottle.helper.kernel.bpf_syscalls import CgroupAttachType

BPF_PROG_TYPE_SCHED_CLS = 3
BPF_PROG_TYPE_CGROUP_SKB = 8
BPF_PROG_TYPE_CGROUP_SOCK = 9
BPF_PROG_TYPE_SOCK_OPS = 13
# Every program the helper loads: (program type, expected attach type).
PROGRAMS = {
    "chadt_sock": (BPF_PROG_TYPE_CGROUP_SOCK, CgroupAttachType.INET_SOCK_CREATE),
    # The expected attach type lets the egress program return NET_XMIT_CN.
    "chadt_egress": (BPF_PROG_TYPE_CGROUP_SKB, CgroupAttachType.INET_EGRESS),
    "chadt_ingress": (BPF_PROG_TYPE_CGROUP_SKB, CgroupAttachType.INET_INGRESS),
    "chadt_sockops": (BPF_PROG_TYPE_SOCK_OPS, CgroupAttachType.SOCK_OPS),
    "chadt_tc_in": (BPF_PROG_TYPE_SCHED_CLS, 0),
    "chadt_tc_in_l3": (BPF_PROG_TYPE_SCHED_CLS, 0),
    "chadt_tc_out": (BPF_PROG_TYPE_SCHED_CLS, 0),
}
LICENSE = "GPL"
_LD_IMM64 = 0x18  # BPF_LD | BPF_IMM | BPF_DW: two instruction slots
_PSEUDO_MAP_FD = 1  # its src_reg when imm names a map
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_MAX_MAPS = 64
_MAX_INSNS = 1_000_000


class InvalidProgramSet(ValueError):
    """A stored or built program set is not one we can load."""


def _map_references(instructions: bytes) -> list[tuple[int, int]]:
    """(offset of the imm, its value) of each ld_imm64 naming a map; raises on
    any other pseudo source (map values, BTF ids, calls), which we do not relocate."""
    found = []
    index = 0
    while index < len(instructions) // 8:
        code, registers = instructions[8 * index], instructions[8 * index + 1]
        if code == _LD_IMM64:
            source = registers >> 4
            if source == _PSEUDO_MAP_FD:
                found.append(
                    (8 * index + 4, struct.unpack_from("<i", instructions, 8 * index + 4)[0])
                )
            elif source != 0:
                raise InvalidProgramSet(
                    f"ld_imm64 with pseudo source {source} at instruction {index}"
                )
            index += 1
        index += 1
    return found


def relocate(instructions: bytes, replacement: dict[int, int]) -> bytes:
    """The instructions with each map reference's imm replaced (fd to index, or
    index to fd); a reference not in replacement is an error."""
    out = bytearray(instructions)
    for offset, value in _map_references(instructions):
        if value not in replacement:
            raise InvalidProgramSet(f"a program refers to map {value}, which the set does not have")
        struct.pack_into("<i", out, offset, replacement[value])
    return bytes(out)


@dataclass(frozen=True)
class ProgramSet:
    btf: bytes
    maps: tuple[MapSpec, ...]
    programs: dict[str, bytes]  # name -> instructions, map references as indices into maps

    def to_json(self) -> dict[str, Any]:
        return {
            "btf": base64.b64encode(self.btf).decode(),
            "maps": [asdict(spec) for spec in self.maps],
            "programs": {
                name: base64.b64encode(insns).decode()
                for name, insns in sorted(self.programs.items())
            },
        }

    @classmethod
    def from_json(cls, data: Any) -> ProgramSet:
        """Parse and check a stored set: every field typed and in range, every
        program we load present, every map reference in range."""
        try:
            btf = base64.b64decode(data["btf"], validate=True)
            maps = tuple(_map_spec(entry) for entry in data["maps"])
            programs = {
                str(name): base64.b64decode(text, validate=True)
                for name, text in data["programs"].items()
            }
        except (KeyError, TypeError, AttributeError, ValueError) as error:
            raise InvalidProgramSet(f"malformed program set: {error!r}") from None
        program_set = cls(btf, maps, programs)
        program_set.check()
        return program_set

    def check(self) -> None:
        if not self.btf or not 0 < len(self.maps) <= _MAX_MAPS:
            raise InvalidProgramSet("a program set needs BTF and between 1 and 64 maps")
        if len({spec.name for spec in self.maps}) != len(self.maps):
            raise InvalidProgramSet("two maps have the same name")
        if set(self.programs) != set(PROGRAMS):
            raise InvalidProgramSet(
                f"the set has programs {sorted(self.programs)}, not {sorted(PROGRAMS)}"
            )
        indices = {index: index for index in range(len(self.maps))}
        for name, insns in self.programs.items():
            if not insns or len(insns) % 8 or len(insns) // 8 > _MAX_INSNS:
                raise InvalidProgramSet(f"{name}: not a whole number of instructions")
            relocate(insns, indices)

    def map_index(self, name: str) -> int:
        for index, spec in enumerate(self.maps):
            if spec.name == name:
                return index
        raise InvalidProgramSet(f"no map named {name}")


def _map_spec(entry: Any) -> MapSpec:
    if not isinstance(entry, dict) or set(entry) != set(MapSpec.__dataclass_fields__):
        raise ValueError(f"map entry {entry!r}")
    name = entry["name"]
    numbers = {key: value for key, value in entry.items() if key != "name"}
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"map name {name!r}")
    if not all(type(value) is int and 0 <= value < 1 << 32 for value in numbers.values()):
        raise ValueError(f"map {name}: numbers out of range")
    return MapSpec(name=name, **numbers)


class LoadedPrograms:
    """A ProgramSet in the kernel: its maps and programs, as fds we own."""

    def __init__(self, program_set: ProgramSet) -> None:
        self.map_fds: dict[str, int] = {}
        self.program_fds: dict[str, int] = {}
        self._btf_fd = -1
        try:
            self._btf_fd = load_btf(program_set.btf)
            for spec in program_set.maps:
                self.map_fds[spec.name] = create_map(spec, self._btf_fd)
            by_index = {
                index: self.map_fds[spec.name] for index, spec in enumerate(program_set.maps)
            }
            for name, insns in program_set.programs.items():
                prog_type, attach_type = PROGRAMS[name]
                self.program_fds[name] = load_program(name, prog_type, int(attach_type), relocate(insns, by_index),
                                                      LICENSE)  # fmt: skip
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close every fd: what nothing else holds (attached, pinned) is freed."""
        for fd in [*self.program_fds.values(), *self.map_fds.values(), self._btf_fd]:
            if fd >= 0:
                os.close(fd)
        self.program_fds, self.map_fds, self._btf_fd = {}, {}, -1
