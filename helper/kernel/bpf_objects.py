"""Create BPF maps, BTF and programs with bpf(2), and read back what bcc made.

bcc builds the programs (program_build.py, in a short-lived child process);
the helper loads what it built with these calls, so it never maps LLVM.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass

from chadthrottle.helper.kernel.bpf_syscalls import BPF_OBJ_GET_INFO_BY_FD, attr_buffer, command

BPF_MAP_CREATE = 0
BPF_PROG_LOAD = 5
BPF_BTF_LOAD = 18
BPF_BTF_GET_FD_BY_ID = 19
OBJ_NAME_LEN = 16
VERIFIER_LOG_SIZE = 1 << 20


@dataclass(frozen=True)
class MapSpec:
    """What BPF_MAP_CREATE needs to make a map like one bcc made."""

    name: str
    map_type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    btf_key_type_id: int
    btf_value_type_id: int


def _set_name(attr: ctypes.Array[ctypes.c_char], offset: int, name: str) -> None:
    encoded = name.encode()[: OBJ_NAME_LEN - 1]
    ctypes.memmove(ctypes.addressof(attr) + offset, encoded, len(encoded))


def _obj_info(fd: int, size: int) -> ctypes.Array[ctypes.c_char]:
    info = ctypes.create_string_buffer(size)
    attr = attr_buffer()
    ctypes.c_uint32.from_buffer(attr, 0).value = fd
    ctypes.c_uint32.from_buffer(attr, 4).value = size
    ctypes.c_uint64.from_buffer(attr, 8).value = ctypes.addressof(info)
    command(BPF_OBJ_GET_INFO_BY_FD, attr)
    return info


def map_spec(map_fd: int, name: str) -> tuple[MapSpec, int]:
    """The spec of a loaded map (struct bpf_map_info) and its BTF object's id."""
    info = _obj_info(map_fd, 96)

    def u32(offset: int) -> int:
        return ctypes.c_uint32.from_buffer(info, offset).value

    spec = MapSpec(name=name, map_type=u32(0), key_size=u32(8), value_size=u32(12), max_entries=u32(16),
                   flags=u32(20), btf_key_type_id=u32(68), btf_value_type_id=u32(72))  # fmt: skip
    return spec, u32(64)


def btf_blob(btf_id: int) -> bytes:
    """The raw BTF (types and strings) of a loaded BTF object, as loaded."""
    attr = attr_buffer()
    ctypes.c_uint32.from_buffer(attr, 0).value = btf_id
    btf_fd = command(BPF_BTF_GET_FD_BY_ID, attr)
    try:
        size = ctypes.c_uint32.from_buffer(_obj_info(btf_fd, 32), 8).value
        blob = ctypes.create_string_buffer(size)
        info = ctypes.create_string_buffer(32)
        ctypes.c_uint64.from_buffer(info, 0).value = ctypes.addressof(blob)
        ctypes.c_uint32.from_buffer(info, 8).value = size
        attr = attr_buffer()
        ctypes.c_uint32.from_buffer(attr, 0).value = btf_fd
        ctypes.c_uint32.from_buffer(attr, 4).value = len(info)
        ctypes.c_uint64.from_buffer(attr, 8).value = ctypes.addressof(info)
        command(BPF_OBJ_GET_INFO_BY_FD, attr)
        return blob.raw[:size]
    finally:
        os.close(btf_fd)


def load_btf(blob: bytes) -> int:
    """Load BTF into the kernel; returns its fd (the caller closes it)."""
    data = ctypes.create_string_buffer(blob, len(blob))
    attr = attr_buffer()
    ctypes.c_uint64.from_buffer(attr, 0).value = ctypes.addressof(data)
    ctypes.c_uint32.from_buffer(attr, 16).value = len(blob)
    return command(BPF_BTF_LOAD, attr)


def create_map(spec: MapSpec, btf_fd: int) -> int:
    """Create a map; returns its fd (the caller closes it)."""
    attr = attr_buffer()
    for offset, value in ((0, spec.map_type), (4, spec.key_size), (8, spec.value_size), (12, spec.max_entries),
                          (16, spec.flags)):  # fmt: skip
        ctypes.c_uint32.from_buffer(attr, offset).value = value
    _set_name(attr, 28, spec.name)
    if spec.btf_value_type_id:
        ctypes.c_uint32.from_buffer(attr, 48).value = btf_fd
        ctypes.c_uint32.from_buffer(attr, 52).value = spec.btf_key_type_id
        ctypes.c_uint32.from_buffer(attr, 56).value = spec.btf_value_type_id
    return command(BPF_MAP_CREATE, attr)


class ProgramRejected(OSError):
    """The verifier refused a program; the message ends with its log."""


def load_program(name: str, prog_type: int, expected_attach_type: int, instructions: bytes,
                 license_name: str = "GPL") -> int:  # fmt: skip
    """Load a program (its map references already point at this process's map
    fds); returns its fd. A refusal is retried once with the verifier's log."""
    insns = ctypes.create_string_buffer(instructions, len(instructions))
    license_text = ctypes.create_string_buffer(license_name.encode())
    log_buffer = ctypes.create_string_buffer(VERIFIER_LOG_SIZE)
    for with_log in (False, True):
        attr = attr_buffer()
        ctypes.c_uint32.from_buffer(attr, 0).value = prog_type
        ctypes.c_uint32.from_buffer(attr, 4).value = len(instructions) // 8
        ctypes.c_uint64.from_buffer(attr, 8).value = ctypes.addressof(insns)
        ctypes.c_uint64.from_buffer(attr, 16).value = ctypes.addressof(license_text)
        if with_log:
            ctypes.c_uint32.from_buffer(attr, 24).value = 1
            ctypes.c_uint32.from_buffer(attr, 28).value = len(log_buffer)
            ctypes.c_uint64.from_buffer(attr, 32).value = ctypes.addressof(log_buffer)
        _set_name(attr, 48, name)
        ctypes.c_uint32.from_buffer(attr, 68).value = expected_attach_type
        try:
            return command(BPF_PROG_LOAD, attr)
        except OSError as error:
            if with_log:
                log_tail = log_buffer.value.decode(errors="replace")[-2000:]
                raise ProgramRejected(
                    error.errno, f"{name}: {error.strerror}\n{log_tail}"
                ) from None
    raise AssertionError("unreachable")
