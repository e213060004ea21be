"""The few bpf(2) commands bcc does not wrap: query, find and detach programs
attached to a cgroup, so leftovers of a killed helper can be found and removed,
and open a map by id (a killed helper's socket tags, held_caps.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct
from dataclasses import dataclass
from enum import IntEnum

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_SYS_BPF = 321  # x86_64
_SYS_PIDFD_GETFD = 438

BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_MAP_GET_FD_BY_ID = 14
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_PROG_QUERY = 16
BPF_ENABLE_STATS = 32
BPF_STATS_RUN_TIME = 0
BPF_F_ALLOW_MULTI = 2
TCX_INGRESS, TCX_EGRESS = (
    46,
    47,
)  # enum bpf_attach_type, Linux 6.6 (tcx: BPF on a device's tc hooks)
_PROG_NAME_OFFSET = 64  # offsetof(struct bpf_prog_info, name)
_PROG_RUN_TIME_OFFSET = 192  # offsetof(struct bpf_prog_info, run_time_ns); run_cnt follows


class CgroupAttachType(IntEnum):
    INET_INGRESS = 0
    INET_EGRESS = 1
    INET_SOCK_CREATE = 2
    SOCK_OPS = 3


def _bpf(cmd: int, attr: ctypes.Array[ctypes.c_char]) -> int:
    result: int = _libc.syscall(_SYS_BPF, cmd, attr, len(attr))
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
    return result


def _attr(size: int = 128) -> ctypes.Array[ctypes.c_char]:
    return ctypes.create_string_buffer(size)


command = _bpf  # for the modules that build their own attrs (bpf_maps, bpf_objects)
attr_buffer = _attr


def attach_to_cgroup(prog_fd: int, cgroup_fd: int, attach_type: CgroupAttachType) -> None:
    """Attach with BPF_F_ALLOW_MULTI so programs of others keep running."""
    attr = _attr()
    ctypes.c_uint32.from_buffer(attr, 0).value = cgroup_fd  # target_fd
    ctypes.c_uint32.from_buffer(attr, 4).value = prog_fd  # attach_bpf_fd
    ctypes.c_uint32.from_buffer(attr, 8).value = attach_type
    ctypes.c_uint32.from_buffer(attr, 12).value = BPF_F_ALLOW_MULTI
    _bpf(BPF_PROG_ATTACH, attr)


def detach_from_cgroup(prog_fd: int, cgroup_fd: int, attach_type: CgroupAttachType) -> None:
    attr = _attr()
    ctypes.c_uint32.from_buffer(attr, 0).value = cgroup_fd
    ctypes.c_uint32.from_buffer(attr, 4).value = prog_fd
    ctypes.c_uint32.from_buffer(attr, 8).value = attach_type
    _bpf(BPF_PROG_DETACH, attr)


def query_cgroup(cgroup_fd: int, attach_type: CgroupAttachType, capacity: int = 256) -> list[int]:
    """Ids of the programs attached to a cgroup for one attach type."""
    return _query(cgroup_fd, attach_type, capacity)


def query_device(ifindex: int, attach_type: int, capacity: int = 64) -> list[int]:
    """Ids of the tcx programs (TCX_INGRESS, TCX_EGRESS) attached to a device of
    the calling thread's network namespace."""
    return _query(ifindex, attach_type, capacity)


def _query(target: int, attach_type: int, capacity: int) -> list[int]:
    ids = (ctypes.c_uint32 * capacity)()
    attr = _attr()
    ctypes.c_uint32.from_buffer(attr, 0).value = target  # target_fd, or target_ifindex
    ctypes.c_uint32.from_buffer(attr, 4).value = attach_type
    ctypes.c_uint64.from_buffer(attr, 16).value = ctypes.addressof(ids)
    ctypes.c_uint32.from_buffer(attr, 24).value = capacity
    _bpf(BPF_PROG_QUERY, attr)
    count = ctypes.c_uint32.from_buffer(attr, 24).value
    return list(ids[: min(count, capacity)])


@dataclass(frozen=True)
class ProgramInfo:
    prog_id: int
    name: str


def open_program(prog_id: int) -> int:
    """An fd for a loaded program (the caller closes it)."""
    attr = _attr()
    ctypes.c_uint32.from_buffer(attr, 0).value = prog_id
    return _bpf(BPF_PROG_GET_FD_BY_ID, attr)


def open_map(map_id: int) -> int:
    """An fd for a map (the caller closes it): one a program of another
    process holds, a killed helper's (held_caps.open_dead_tags)."""
    attr = _attr()
    ctypes.c_uint32.from_buffer(attr, 0).value = map_id
    return _bpf(BPF_MAP_GET_FD_BY_ID, attr)


def object_info(fd: int, size: int) -> bytes:
    """The kernel's info struct of a program or map fd (its first size bytes)."""
    info = ctypes.create_string_buffer(size)
    attr = _attr()
    ctypes.c_uint32.from_buffer(attr, 0).value = fd
    ctypes.c_uint32.from_buffer(attr, 4).value = len(info)
    ctypes.c_uint64.from_buffer(attr, 8).value = ctypes.addressof(info)
    _bpf(BPF_OBJ_GET_INFO_BY_FD, attr)
    return info.raw


def map_info(map_fd: int) -> tuple[int, int, int, int, str]:
    """(type, id, key size, value size, name) of a map (struct bpf_map_info)."""
    info = object_info(map_fd, 80)
    kind, map_id, key_size, value_size = struct.unpack_from("=IIII", info, 0)
    name = info[24:40].split(b"\0", 1)[0].decode("ascii", "replace")
    return kind, map_id, key_size, value_size, name


def _program_info(prog_fd: int) -> bytes:
    return object_info(prog_fd, 256)


def program_id(prog_fd: int) -> int:
    return int.from_bytes(_program_info(prog_fd)[4:8], "little")


def program_name(prog_fd: int) -> str:
    raw = _program_info(prog_fd)[_PROG_NAME_OFFSET : _PROG_NAME_OFFSET + 16]
    return raw.split(b"\0", 1)[0].decode("ascii", "replace")


def program_run_stats(prog_fd: int) -> tuple[int, int]:
    """(run_time_ns, run_cnt) the kernel counted for a program while run-time
    statistics were enabled (see enable_run_time_stats)."""
    raw = _program_info(prog_fd)
    return (
        int.from_bytes(raw[_PROG_RUN_TIME_OFFSET : _PROG_RUN_TIME_OFFSET + 8], "little"),
        int.from_bytes(raw[_PROG_RUN_TIME_OFFSET + 8 : _PROG_RUN_TIME_OFFSET + 16], "little"),
    )


def enable_run_time_stats() -> int:
    """Turn on the kernel's per-program run-time statistics until the returned
    fd is closed (or the process dies): unlike the kernel.bpf_stats_enabled
    sysctl, nothing stays switched on after a crash."""
    attr = _attr()
    ctypes.c_uint32.from_buffer(attr, 0).value = BPF_STATS_RUN_TIME
    return _bpf(BPF_ENABLE_STATS, attr)


def pidfd_getfd(pidfd: int, target_fd: int) -> int:
    """Duplicate another process's fd into ours (needs ptrace rights: root)."""
    result: int = _libc.syscall(_SYS_PIDFD_GETFD, pidfd, target_fd, 0)
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
    return result


def attached_programs(cgroup_fd: int) -> list[tuple[CgroupAttachType, int, str]]:
    """(attach type, program id, name) of every program attached to a cgroup."""
    found = []
    for attach_type in CgroupAttachType:
        for prog_id in query_cgroup(cgroup_fd, attach_type):
            try:
                prog_fd = open_program(prog_id)
            except OSError:
                continue  # detached meanwhile
            try:
                found.append((attach_type, prog_id, program_name(prog_fd)))
            finally:
                os.close(prog_fd)
    return found
