"""An upload raise judged by the one-way reading of the modem's upload queue, live: a bench
prototype (issue 16, owd28 step 2), not the product.

bench/one_way.py's upload reading (a far end's ACK TSval less when the segment it acknowledges
left our shaper), read from a live tcpdump of the host veth, each glance's least. The in-process
estimator (capacity_follow --as-helper --one-way-judge) then judges an upload raise by it:

- at a glance (the helper's glances, also while an upload raise is judged): the reading at
  SEEN_MS or more at two glances in a row takes the raise back at once;
- at a tick: the upload's turn is held (TURN_HOLD_S) while the reading is at SEEN_MS, failed
  (TURN_RISE_S) at two readings in a row, and a rise of the round trips while an upload raise
  is judged with the reading quiet is not the upload's: nothing is taken back for it.

Nothing else changes (cadence, steps, the download's rules): the question is what judging the
turn by a one-directional reading does to the follow and the call.
"""

from __future__ import annotations

import struct
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from chadthrottle.contract import Direction
from chadthrottle.helper.engine.capacity_estimate import TURN_HOLD_S, CapacityEstimator

from bench.one_way import SEEN_MS, SNAP_BYTES, Readings, frame_packet
from tests.support.netns import nsenter_argv

SURE_ACKS = 3  # --one-way-steps: a glance's least over this many ACKs is not a delayed one's
DOWN_HOLD_AFTER_S = 1.5  # no download raise this long after an upload's one-way take-back


class LiveUpload:
    """tcpdump of `device` in `netns` to a pipe, read into one_way.Readings in a thread;
    take() gives the least upload (and download) reading since the last take (ms)."""

    def __init__(self, netns: str, device: str, host_addr: str) -> None:
        # only what the upload reading reads: our data out, pure ACKs in (not the download's)
        payload = "(ip[2:2] - ((ip[0] & 0xf) << 2) - ((tcp[12] & 0xf0) >> 2))"
        wanted = f"tcp and ((src host {host_addr} and {payload} > 0) or (dst host {host_addr} and {payload} == 0))"
        argv = ["tcpdump", "-i", device, "-s", str(SNAP_BYTES), "-B", "16384", "-U", "-n",
                "--time-stamp-precision=nano", "--immediate-mode", "-w", "-", wanted]  # fmt: skip
        self._process = subprocess.Popen(nsenter_argv(netns, argv), stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL)  # fmt: skip
        self._host = bytes(int(part) for part in host_addr.split("."))
        self._readings = Readings(0.0, False, 0.0)
        self._lock = threading.Lock()
        self._least: dict[str, float | None] = {"up": None, "down": None}
        self.counted = 0  # upload readings since the last take()
        self._counting = 0
        self._offset_ns = time.time_ns() - time.monotonic_ns()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def take(self) -> dict[str, float | None]:
        with self._lock:
            least, self._least = self._least, {"up": None, "down": None}
            self.counted, self._counting = self._counting, 0
        return least

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


@dataclass
class OneWayEstimator(CapacityEstimator):
    """CapacityEstimator whose upload raises are judged by the one-way upload reading
    (note() before each tick and glance)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self._up_ms: float | None = None
        self._up_high = 0  # readings in a row at SEEN_MS or more
        self._up_many = False  # the last reading took SURE_ACKS ACKs or more
        self.one_glance = False  # --one-way-steps: one glance of SURE_ACKS ACKs at SEEN_MS suffices

    def note(self, up_ms: float | None, acks: int = 0) -> None:
        """This row's least upload reading (None: no ACK read since the last row)."""
        if up_ms is None:
            return  # no ACK since: the count stands
        self._up_ms = up_ms
        self._up_high = self._up_high + 1 if up_ms >= SEEN_MS else 0
        self._up_many = acks >= SURE_ACKS

    def _up_judged(self) -> bool:
        return (
            not self._trying
            and self._probing(Direction.UP)
            and bool(self._state[Direction.UP].recent)
        )

    def judging_down(self) -> bool:
        return super().judging_down() or self._up_judged()  # glance while the upload is judged too

    def glance(self, seconds: float, delay_s: float | None,
               local_wait_s: Mapping[Direction, float] | None = None) -> dict[Direction, int | None]:  # fmt: skip
        enough = self._up_high >= 2 or (self.one_glance and self._up_high == 1 and self._up_many)
        if self._up_judged() and enough and seconds > 0:
            self.decisions = ["glance: the upload's one-way queue"]
            self._glanced_s += seconds
            up = self._state[Direction.UP]
            # the last raise alone is blamed (BLAME_S blames every raise of 4.5 s: the round
            # trips show a 1-3% overshoot 3-4 s late; this reading shows it within the modem's
            # bucket, 1.3-1.6 s at 2%, 0.1 s at 25%), and the download holds while the
            # acknowledgements the modem's upload queue held arrive at once (est25: +35-60 KB)
            up.recent = up.recent[-1:]
            self._take_back(Direction.UP, up, {})
            down = self._state[Direction.DOWN]
            down.hold_s = max(down.hold_s, DOWN_HOLD_AFTER_S)
            self._up_high = 0
            return self.capacities()
        return super().glance(seconds, delay_s, local_wait_s)

    def _turn_above(self, margin_s: float, readings: int) -> bool:
        if not self._probing(Direction.UP):
            return False
        return self._up_high >= (1 if margin_s <= TURN_HOLD_S else 2)

    def _rise(self, active: dict, achieved: dict[Direction, float], delay: float) -> None:
        if self._up_judged() and self._up_high == 0:
            self.decisions.append("rise, not the upload's (one-way): nothing taken back")
            return
        super()._rise(active, achieved, delay)


# --one-way-cadence: what following a doubled upload within 10 s would take, once a failed
# upload raise is seen within a few tenths of a second (est16j: a probe past the old rate within
# ~5 s of any change, and a climb to 1.5 of it in a few raises)
FASTER_TURNS = {
    "UP_TURN_S": 5.0,  # 20: an upload turn this often beside a download at its link
    "UP_TURN_RAISES": 6,  # 2: raises in a row while they pass
    "FORGET_FAILED_S": {Direction.DOWN: 20.0, Direction.UP: 5.0},  # 60 for the upload
    "HOLD_S": {Direction.DOWN: (2.0, 3.0), Direction.UP: (2.0, 4.0)},  # (5, 15) for the upload
    "RAISE_STEPS": {Direction.DOWN: (1.03, 1.06, 1.12), Direction.UP: (1.03, 1.06, 1.12, 1.25)},
    "JUDGE_S": {Direction.DOWN: 0.9, Direction.UP: 1.0},  # 2.0 for the upload
}


def faster_turns() -> None:
    """Patch the estimator module's upload cadence (this process only: a bench prototype)."""
    from chadthrottle.helper.engine import capacity_estimate

    for name, value in FASTER_TURNS.items():
        assert hasattr(capacity_estimate, name), name
        setattr(capacity_estimate, name, value)


# --one-way-steps: the cadence with steps that grow slower and a take-back at one glance of
# three ACKs or more: a step that fails is smaller, and seen a glance sooner
SLOWER_STEPS = {
    "RAISE_STEPS": {
        Direction.DOWN: (1.03, 1.06, 1.12),
        Direction.UP: (1.04, 1.06, 1.09, 1.12, 1.15),
    },
    "UP_TURN_RAISES": 8,
}


def slower_steps() -> None:
    """faster_turns(), then SLOWER_STEPS (this process only)."""
    from chadthrottle.helper.engine import capacity_estimate

    faster_turns()
    for name, value in SLOWER_STEPS.items():
        assert hasattr(capacity_estimate, name), name
        setattr(capacity_estimate, name, value)
