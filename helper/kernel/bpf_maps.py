"""Element operations on BPF maps with bpf(2) itself.

The long-lived helper reads and writes its maps without bcc: loading libbcc
alone maps LLVM and clang and costs about 60 MiB resident (docs/helper.md,
"Memory and start-up"). Keys and values are ctypes objects laid out as in
bpf/maps.h (layout.py).
"""

from __future__ import annotations

import ctypes
import errno
import os
from functools import cache
from typing import Any

from chadthrottle.helper.kernel.bpf_syscalls import attr_buffer, command

BPF_MAP_LOOKUP_ELEM = 1
BPF_MAP_UPDATE_ELEM = 2
BPF_MAP_DELETE_ELEM = 3
BPF_MAP_LOOKUP_AND_DELETE_ELEM = 21
BPF_MAP_LOOKUP_BATCH = 24
BPF_F_LOCK = 4  # map update under the value's bpf_spin_lock


def _element_attr(
    map_fd: int, key: Any, value: Any | None, flags: int = 0
) -> ctypes.Array[ctypes.c_char]:
    attr = attr_buffer()
    ctypes.c_uint32.from_buffer(attr, 0).value = map_fd
    ctypes.c_uint64.from_buffer(attr, 8).value = ctypes.addressof(key)
    if value is not None:
        ctypes.c_uint64.from_buffer(attr, 16).value = ctypes.addressof(value)
    ctypes.c_uint64.from_buffer(attr, 24).value = flags
    return attr


def lookup(map_fd: int, key: Any, value: Any) -> bool:
    """Fill value with key's entry; False if there is none."""
    try:
        command(BPF_MAP_LOOKUP_ELEM, _element_attr(map_fd, key, value))
    except FileNotFoundError:
        return False
    return True


def update(map_fd: int, key: Any, value: Any, flags: int = 0) -> None:
    """Create or replace key's entry (raises OSError)."""
    command(BPF_MAP_UPDATE_ELEM, _element_attr(map_fd, key, value, flags))


def delete(map_fd: int, key: Any) -> bool:
    """Remove key's entry; False if there was none."""
    try:
        command(BPF_MAP_DELETE_ELEM, _element_attr(map_fd, key, None))
    except FileNotFoundError:
        return False
    return True


def lookup_and_delete(map_fd: int, key: Any, value: Any) -> bool:
    """Take key's entry out into value at once; False if there was none."""
    try:
        command(BPF_MAP_LOOKUP_AND_DELETE_ELEM, _element_attr(map_fd, key, value))
    except FileNotFoundError:
        return False
    return True


def lookup_batch(map_fd: int, keys: Any, values: Any, key_size: int, value_size: int) -> int:
    """Read a whole hash map into the arrays keys/values with
    BPF_MAP_LOOKUP_BATCH (a few syscalls, not two per key); returns how many
    entries were read."""
    capacity, total = len(keys), 0
    batch = ctypes.c_uint64(0)  # opaque to us: the kernel's position in the map
    while total < capacity:
        attr = attr_buffer()
        if total:
            ctypes.c_uint64.from_buffer(attr, 0).value = ctypes.addressof(batch)  # in_batch
        ctypes.c_uint64.from_buffer(attr, 8).value = ctypes.addressof(batch)  # out_batch
        ctypes.c_uint64.from_buffer(attr, 16).value = ctypes.addressof(keys) + key_size * total
        ctypes.c_uint64.from_buffer(attr, 24).value = ctypes.addressof(values) + value_size * total
        ctypes.c_uint32.from_buffer(attr, 32).value = capacity - total  # count
        ctypes.c_uint32.from_buffer(attr, 36).value = map_fd
        try:
            command(BPF_MAP_LOOKUP_BATCH, attr)
        except OSError as error:
            total += ctypes.c_uint32.from_buffer(attr, 32).value
            if error.errno == errno.ENOENT:
                break  # the whole map was read
            raise
        count = ctypes.c_uint32.from_buffer(attr, 32).value
        total += count
        if count == 0:
            break
    return total


@cache
def possible_cpus() -> int:
    """How many values a per-CPU map holds per key (the kernel's possible CPUs)."""
    with open("/sys/devices/system/cpu/possible") as ranges:
        text = ranges.read().strip()
    count = 0
    for part in text.split(","):
        first, _, last = part.partition("-")
        count += int(last or first) - int(first) + 1
    return count


class TypedMap:
    """One map with its key and value types: small typed get/set/pop."""

    def __init__(self, fd: int, key_type: Any, value_type: Any) -> None:
        self.fd = fd
        self.key_type = key_type
        self.value_type = value_type

    def get(self, key: Any) -> Any | None:
        value = self.value_type()
        return value if lookup(self.fd, self._key(key), value) else None

    def set(self, key: Any, value: Any, flags: int = 0) -> None:
        try:
            update(self.fd, self._key(key), value, flags)
        except OSError as error:
            raise OSError(
                error.errno, f"writing a BPF map entry failed: {os.strerror(error.errno or 0)}"
            ) from None

    def pop(self, key: Any) -> bool:
        return delete(self.fd, self._key(key))

    def _key(self, key: Any) -> Any:
        return key if isinstance(key, self.key_type) else self.key_type(key)
