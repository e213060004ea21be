"""tests/support/netns.Receiver.quiet_for judges a window by when the sink
counted its bytes, not by when this process's reader thread got the reports.

On a busy machine the reports reach the reader thread late (up to 0.63 s at
load 7-13: Receiver's docstring). Here a sink stands in whose reports come
late on purpose: it holds them back, then writes them at once, each with the
time it counted its bytes, as a late reader thread would get them. Judged by
the reader's times (tests/e2e/test_block_and_quota.py's _quiet until
2026-12-05), bytes counted before a quiet window read as traffic in it ("a
packet passed the block"), and bytes counted in a busy window, not yet read,
as none (a block that stopped nothing would pass)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.support.netns import Receiver
from tests.support.waiting import eventually

# argv: grow_until_s held_until_s end_s. Counts 1000 bytes every 20 ms until
# grow_until_s, reports every 20 ms, and writes its reports out only from
# held_until_s on (the first, at 0, at once): times from its start.
LATE_SINK = """
import json, sys, time
grow_until, held_until, end = (float(a) for a in sys.argv[1:])
start, count, held = time.monotonic(), 0, []
def report(count, out):
    now = time.monotonic()
    held.append(json.dumps({"t": now - start, "m": now, "bytes": count}) + "\\n")
    if out or now - start >= held_until:
        sys.stdout.write("".join(held))
        sys.stdout.flush()
        held.clear()
report(count, True)
while (now := time.monotonic() - start) < end:
    time.sleep(0.02)
    if now < grow_until:
        count += 1000
    report(count, False)
"""


def _late_sink(grow_until_s: float, held_until_s: float) -> tuple[Receiver, float]:
    """A receiver on a sink whose reports come late, and the sink's start."""
    sink = subprocess.Popen([sys.executable, "-c", LATE_SINK, str(grow_until_s), str(held_until_s), "6"],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    receiver = Receiver(sink)
    assert eventually(lambda: bool(receiver.sink_samples), 10), "the sink did not start"
    return receiver, receiver.sink_samples[0][0]


def _stop(receiver: Receiver) -> None:
    receiver.process.kill()
    receiver.process.wait(10)
    receiver.join(5)
    assert receiver.process.stdout is not None
    receiver.process.stdout.close()


@pytest.mark.parametrize(
    ("grow_until_s", "held_until_s", "window_at_s", "quiet"),
    [
        # counted until 0.4 s, read from 0.65 s: the window from 0.5 s saw nothing counted
        (0.4, 0.65, 0.5, True),
        # counted until 5 s, none read before 1.2 s: the window from 0.3 s saw bytes counted
        (5.0, 1.2, 0.3, False),
    ],
    ids=["bytes_counted_before_the_window", "bytes_counted_in_the_window_read_after"],
)
def test_a_window_is_judged_by_when_the_sink_counted(
    grow_until_s: float, held_until_s: float, window_at_s: float, quiet: bool
) -> None:
    receiver, started = _late_sink(grow_until_s, held_until_s)
    try:
        time.sleep(max(0.0, started + window_at_s - time.monotonic()))
        assert receiver.quiet_for(0.3) is quiet
        assert receiver.total_bytes() > 0  # the held reports came, the window's end with them
    finally:
        _stop(receiver)
