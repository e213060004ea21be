"""A poll for new socket owners ends at once when woken: the helper's stop
joins the thread that polls (RunningEngine._watch_owners), which otherwise
sat out the rest of its OWNER_POLL_MS (0.5 s) in every stop."""

from __future__ import annotations

import ctypes
import os
import threading
import time
from pathlib import Path

from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.ringbuf import RingBuffer

from tests.support.requirements import require_root

BPF_MAP_CREATE, BPF_MAP_TYPE_RINGBUF, SYS_BPF = 0, 27, 321  # x86_64
RING_BYTES = 4096
# What tells a woken poll from one that sat out its timeout: it ended in a
# small part of that timeout. Not a speed bound (a loaded machine may take a
# while to run the woken thread): the 20 s against 5 s gap is the whole test.
LONG_POLL_MS = 20_000
WOKEN_WITHIN_S = 5.0


def _private_ringbuf() -> int:
    """A ring buffer map no program writes to: a poll on it ends only by
    its timeout or a wake."""
    attr = (ctypes.c_uint32 * 30)()
    attr[0], attr[3] = BPF_MAP_TYPE_RINGBUF, RING_BYTES  # map_type, max_entries
    libc = ctypes.CDLL(None, use_errno=True)
    fd: int = libc.syscall(SYS_BPF, BPF_MAP_CREATE, ctypes.byref(attr), ctypes.sizeof(attr))
    if fd < 0:
        raise OSError(ctypes.get_errno(), "BPF_MAP_CREATE (ringbuf)")
    return fd


def _ended_after(poll: threading.Thread, wake: object) -> float:
    poll.start()
    time.sleep(0.2)  # the poll is waiting
    woken_at = time.monotonic()
    wake()  # type: ignore[operator]
    poll.join(LONG_POLL_MS / 1000 + 5)
    return time.monotonic() - woken_at


def test_a_wake_ends_a_poll_at_once_and_one_before_it_ends_the_next() -> None:
    require_root()
    fd = _private_ringbuf()
    records: list[bytes] = []
    ring = RingBuffer(fd, RING_BYTES, records.append)
    try:
        took = _ended_after(threading.Thread(target=ring.poll, args=(LONG_POLL_MS,)), ring.wake)
        assert took < WOKEN_WITHIN_S, f"the poll went on {took:.2f} s after the wake"
        ring.wake()  # before the poll, as when close() comes between the loop's check and its poll
        began = time.monotonic()
        assert ring.poll(LONG_POLL_MS) == 0 and time.monotonic() - began < WOKEN_WITHIN_S
        began = time.monotonic()
        assert ring.poll(300) == 0 and time.monotonic() - began >= 0.25, (
            "a wake counted twice: the next poll did not wait"
        )
        assert records == []
    finally:
        ring.close()
        os.close(fd)


def test_a_datapath_owner_poll_in_another_thread_ends_once_woken(kernel_ready: Path) -> None:
    """As RunningEngine's owner thread polls until stopped: a stop that wakes
    it is done within WOKEN_WITHIN_S however long the poll's timeout."""
    datapath = Datapath(cache_dir=kernel_ready)
    datapath.open()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            datapath.poll_new_owners(LONG_POLL_MS)

    try:
        datapath.watch_new_owners(lambda tgid, cgroup, start: None)

        def stopped() -> None:
            stop.set()
            datapath.wake_new_owners()

        took = _ended_after(threading.Thread(target=watch, daemon=True), stopped)
        assert took < WOKEN_WITHIN_S, f"the owner thread went on {took:.2f} s after the stop"
    finally:
        stop.set()
        datapath.close()
