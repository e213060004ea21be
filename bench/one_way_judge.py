"""The upload's one-way reading of the modem's upload queue, live, for the product estimator
(issue 16: owd28's prototype step 2, its judging in capacity_estimate.py since owd29).

At each look (capacity_follow --one-way-judge: a tick, or a glance while the estimator wants
one) the least since the last look and how many ACKs were read, as an UploadQueueReading
(helper/kernel/one_way_reading.py), from either
- KernelUpload: the helper's own reader (helper/kernel/one_way.py: the datapath's tc programs
  on the bench's link tree, started on its upload IFB), what the helper gives the estimator; or
- LiveUpload: bench/one_way.py's reading of a live tcpdump of the host veth (a far end's ACK
  TSval less when the segment it acknowledges left our shaper, over each connection's least of
  the last 10 s), owd28's prototype's (needs tcpdump).
"""

from __future__ import annotations

import struct
import subprocess
import threading
import time
from typing import Any

from chadthrottle.helper.kernel.one_way import OneWayMaps, UploadQueueReader
from chadthrottle.helper.kernel.one_way_reading import UploadQueueReading
from chadthrottle.helper.kernel.tc_ownership import UPLOAD_IFB_ALIAS

from bench.one_way import SNAP_BYTES, Readings, frame_packet
from tests.support.netns import nsenter_argv


class KernelUpload:
    """The helper's reader (UploadQueueReader) on the bench's datapath, started on the link
    tree's upload IFB (found by its alias through `ipr`, in the host namespace) at the first
    take() that finds it; take() gives what the helper's look gives (None: no IFB yet)."""

    def __init__(self, maps: OneWayMaps, ipr: Any) -> None:
        self._reader, self._ipr = UploadQueueReader(maps), ipr

    def take(self) -> UploadQueueReading | None:
        if self._reader.reading_from is None:
            found = [link["index"] for link in self._ipr.get_links()
                     if link.get_attr("IFLA_IFALIAS") == UPLOAD_IFB_ALIAS]  # fmt: skip
            if len(found) != 1:
                return None
            self._reader.start(found[0])
        return self._reader.look()

    def close(self) -> None:
        self._reader.stop()


class LiveUpload:
    """tcpdump of `device` in `netns` to a pipe, read into one_way.Readings in a thread;
    take() gives the least upload reading since the last take, and its ACKs."""

    def __init__(self, netns: str, device: str, host_addr: str) -> None:
        # only what the upload reading reads: our data out, pure ACKs in (not the download's)
        payload = "(ip[2:2] - ((ip[0] & 0xf) << 2) - ((tcp[12] & 0xf0) >> 2))"
        wanted = f"tcp and ((src host {host_addr} and {payload} > 0) or (dst host {host_addr} and {payload} == 0))"
        argv = ["tcpdump", "-i", device, "-s", str(SNAP_BYTES), "-B", "16384", "-U", "-n",
                "--time-stamp-precision=nano", "--immediate-mode", "-w", "-", wanted]  # fmt: skip
        self._process = subprocess.Popen(nsenter_argv(netns, argv), stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL)  # fmt: skip
        self._host = bytes(int(part) for part in host_addr.split("."))
        self._readings = Readings(
            10.0, False, 0.0
        )  # each connection's least of the last 10 s, as the helper's
        self._lock = threading.Lock()
        self._least: dict[str, float | None] = {"up": None, "down": None}
        self.counted = 0  # upload readings since the last take()
        self._counting = 0
        self._offset_ns = time.time_ns() - time.monotonic_ns()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def take(self) -> UploadQueueReading:
        with self._lock:
            least, self._least = self._least, {"up": None, "down": None}
            self.counted, self._counting = self._counting, 0
        return UploadQueueReading(least["up"], self.counted)

    def close(self) -> None:
        self._process.terminate()  # SIGTERM: tcpdump closes its capture and exits
        self._process.wait()
        self._thread.join()

    def _run(self) -> None:
        stream = self._process.stdout
        assert stream is not None
        if len(stream.read(24)) < 24:
            return
        while len(header := stream.read(16)) == 16:
            seconds, nanos, kept, _ = struct.unpack("<IIII", header)
            frame = stream.read(kept)
            packet = frame_packet(
                frame, self._host, (seconds * 10**9 + nanos - self._offset_ns) / 1e9
            )
            if packet is None or (reading := self._readings.take(packet)) is None:
                continue
            with self._lock:
                self._counting += reading.direction == "up"
                old = self._least[reading.direction]
                self._least[reading.direction] = (
                    reading.above_ms if old is None else min(old, reading.above_ms)
                )
