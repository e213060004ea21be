"""Read a BPF ring buffer map (BPF_MAP_TYPE_RINGBUF) without bcc or libbpf.

The kernel maps the consumer position (one page, ours to write), then the
producer position (one page) and the data twice in a row, so a record that
wraps around the end reads as one piece. Each record has an 8-byte header:
its length, with a busy bit while the producer is writing it and a discard
bit if it was dropped. The helper reads one small map (new_owners); on x86
the plain loads and stores below are ordered as the protocol needs.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import select
import struct
from collections.abc import Callable

BUSY_BIT = 1 << 31
DISCARD_BIT = 1 << 30
HEADER_BYTES = 8


class RingBuffer:
    """Calls on_record(bytes) for each record the programs submit."""

    def __init__(self, map_fd: int, data_bytes: int, on_record: Callable[[bytes], None]) -> None:
        if data_bytes <= 0 or data_bytes & (data_bytes - 1) or data_bytes % mmap.PAGESIZE:
            raise ValueError(
                f"a ring buffer's size is a power-of-two number of pages, not {data_bytes}"
            )
        self._mask = data_bytes - 1
        self._on_record = on_record
        self._consumer = mmap.mmap(
            map_fd, mmap.PAGESIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE
        )
        self._producer = mmap.mmap(map_fd, mmap.PAGESIZE + 2 * data_bytes, mmap.MAP_SHARED, mmap.PROT_READ,
                                   offset=mmap.PAGESIZE)  # fmt: skip
        self._poller = select.poll()
        self._poller.register(map_fd, select.POLLIN)
        # wake() ends a poll at once: a stopping helper joined its reader
        # thread only once the poll's timeout ran out (up to 0.5 s a stop)
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._poller.register(self._wake_fd, select.POLLIN)

    def poll(self, timeout_ms: int) -> int:
        """Wait up to timeout_ms for records, or until wake(); deliver them;
        returns how many."""
        delivered = self.consume()
        if delivered:
            return delivered
        if any(fd == self._wake_fd for fd, _ in self._poller.poll(timeout_ms)):
            with contextlib.suppress(BlockingIOError):  # another poll took it
                os.eventfd_read(self._wake_fd)
        return self.consume()

    def wake(self) -> None:
        """End the poll waiting now (or the next one) without a record."""
        os.eventfd_write(self._wake_fd, 1)

    def consume(self) -> int:
        """Deliver every complete record; returns how many."""
        (consumer,) = struct.unpack_from("<Q", self._consumer, 0)
        delivered = 0
        while True:
            (producer,) = struct.unpack_from("<Q", self._producer, 0)
            if consumer >= producer:
                break
            start = mmap.PAGESIZE + (consumer & self._mask)
            (length,) = struct.unpack_from("<I", self._producer, start)
            if length & BUSY_BIT:
                break  # being written: the next poll gets it
            size = length & ~(BUSY_BIT | DISCARD_BIT)
            record = bytes(self._producer[start + HEADER_BYTES : start + HEADER_BYTES + size])
            consumer += (size + HEADER_BYTES + 7) & ~7
            struct.pack_into("<Q", self._consumer, 0, consumer)  # the space is the producer's again
            if not length & DISCARD_BIT:
                delivered += 1
                self._on_record(record)
        return delivered

    def close(self) -> None:
        self._consumer.close()
        self._producer.close()
        os.close(self._wake_fd)
