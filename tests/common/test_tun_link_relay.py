"""tests/support/tun_link.py: the tun link's relay does not wait on its
caller's interpreter. As a thread of the caller (until 2026-12-05) it needed
the interpreter lock between its reads and writes: with a thread of the
caller running Python the link carried 19-23 MiB/s where it carried 61-96
with the relay a process of its own (load 7), and a bench's 50 MiB/s
download over it read short (docs/benchmarks.md, "The two 50 MiB/s cells").
Here the caller holds the lock outright, in one long C call, and the link
must carry on meanwhile."""

from __future__ import annotations

import bisect
import ctypes
import time

from tests.support.netns import Receiver, netns_pair, start_stream
from tests.support.requirements import require_root
from tests.support.tun_link import tun_link
from tests.support.waiting import eventually

MiB = 1024 * 1024
HOLD_S = 1.0
# Judged over the hold's second half: what the sink had buffered before the
# hold is read by then. Without the relay nothing arrives (a relay thread
# moved 0 bytes); a relay of its own moves tens of MiB/s even on a busy machine.
AT_LEAST_BPS = 4 * MiB


def hold_interpreter(seconds: float) -> tuple[float, float]:
    """Hold the interpreter lock for `seconds`, asleep: libc's usleep called
    through ctypes.PyDLL, which keeps the lock across the call (a CDLL call
    lets it go). Was sum() over a long range, which burnt a core the while:
    on two cores beside benches the relay, the sender and the sink had the
    other one to share with everything else. Returns when it began and ended."""
    libc = ctypes.PyDLL(None)
    began = ended = time.monotonic()
    while ended - began < seconds:  # a signal ends a sleep early
        libc.usleep(ctypes.c_uint(int((seconds - (ended - began)) * 1_000_000) + 1))
        ended = time.monotonic()
    return began, ended


def received_between(receiver: Receiver, since: float, until: float) -> int:
    """Bytes the sink counted from since to until, by its own clock (the
    reports at or before each time)."""
    samples = receiver.sink_samples
    times = [t for t, _ in samples]
    at_since = samples[max(bisect.bisect_right(times, since) - 1, 0)][1]
    at_until = samples[max(bisect.bisect_right(times, until) - 1, 0)][1]
    return at_until - at_since


def test_the_relay_carries_on_while_the_caller_holds_its_interpreter() -> None:
    require_root()
    with netns_pair() as pair, tun_link(pair) as tun:
        stream = start_stream(tun, 5870, "up", seconds=30)
        try:
            assert eventually(lambda: stream.receiver.total_bytes() > 0, timeout_s=10)
            began, ended = hold_interpreter(HOLD_S)
            assert eventually(lambda: stream.receiver._latest()[0] > ended, timeout_s=5)
            half = (began + ended) / 2
            moved = received_between(stream.receiver, half, ended) / (ended - half)
        finally:
            stream.stop()
    assert moved > AT_LEAST_BPS, (
        f"{moved / MiB:.2f} MiB/s over the tun link while this process held its interpreter "
        f"({ended - began:.2f} s)"
    )
