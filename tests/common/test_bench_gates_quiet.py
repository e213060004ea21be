"""bench/gates.py judges a quiet stream (a quota or block holding) by the
sink's own clock and, for TCP, by what had arrived, as the tests do
(tests/common/test_receiver_quiet.py, test_sink_arrived.py). Until
2026-12-06 its _quiet compared the bytes this process's reader thread had
got before and after a sleep: a late batch of reports, counted before the
window, read as traffic in it, and a sink held off the CPU (its socket
filling, unread) as a quiet stream. Here a sink stands in that does either
on purpose, each report with its time and its socket's unread bytes."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from bench.gates import _quiet
from tests.support.netns import Receiver
from tests.support.waiting import eventually

# argv: read_until_s arrive_until_s held_until_s end_s. Every 20 ms the sink
# reads 1000 bytes until read_until_s; 1000 bytes a tick arrive until
# arrive_until_s, held unread ("q") past read_until_s; its reports (with "m",
# the monotonic time it counted) are written out only from held_until_s on
# (the first, at 0, at once). Times from its start.
SINK = """
import json, sys, time
read_until, arrive_until, held_until, end = (float(a) for a in sys.argv[1:])
start, read, arrived, held = time.monotonic(), 0, 0, []
def report(out):
    now = time.monotonic()
    held.append(json.dumps({"t": now - start, "m": now, "bytes": read, "q": arrived - read}) + "\\n")
    if out or now - start >= held_until:
        sys.stdout.write("".join(held))
        sys.stdout.flush()
        held.clear()
report(True)
while (now := time.monotonic() - start) < end:
    time.sleep(0.02)
    arrived += 1000 if now < arrive_until else 0
    read += 1000 if now < read_until else 0
    report(False)
"""


@pytest.mark.parametrize(
    ("read_until_s", "arrive_until_s", "held_until_s", "quiet"),
    [
        # all counted by 0.4 s, its reports got from 0.65 s: the window from 0.5 s is quiet
        (0.4, 0.4, 0.65, True),
        # the sink stops reading at 0.3 s while bytes keep arriving: not quiet
        (0.3, 5.0, 0.0, False),
    ],
    ids=["reports_got_late", "sink_off_the_cpu"],
)
def test_the_bench_judges_a_quiet_stream_by_the_sinks_clock_and_arrivals(
    read_until_s: float, arrive_until_s: float, held_until_s: float, quiet: bool
) -> None:
    argv = [
        sys.executable,
        "-c",
        SINK,
        str(read_until_s),
        str(arrive_until_s),
        str(held_until_s),
        "6",
    ]
    sink = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    receiver = Receiver(sink)
    try:
        assert eventually(lambda: bool(receiver.sink_samples), 10), "the sink did not start"
        started = receiver.sink_samples[0][0]
        time.sleep(max(0.0, started + 0.5 - time.monotonic()))
        assert _quiet(receiver, 0.3) is quiet
    finally:
        sink.kill()
        sink.wait(10)
        receiver.join(5)
        assert sink.stdout is not None
        sink.stdout.close()
