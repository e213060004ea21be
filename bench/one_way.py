"""One-way queue readings per direction from TCP timestamps, at the point past our shaper
(issue 16, owd28: is there a sub-second, one-directional signal of the modem's queues?).

A capture of the host's veth (tcpdump: headers only, the kernel's CLOCK_REALTIME stamps)
sees the download's data as it arrives from the modem, before our download shaper, and the
upload's data as it leaves our upload shaper (the packet taps run after the IFB's redirect on
the way out and before it on the way in). Two readings, each against its own running floor:

- down: a data segment's arrival here less the sender's TSval (ms; the far clock's offset
  cancels against the connection's own floor): grows with every queue between the sender's
  stack and us: the modem's download queue.
- up: a far end's ACK's TSval less when the segment it was sent for (the one holding the last
  byte it acknowledges, sent once) left our shaper: grows with the queues between us and the
  far end's stack: the modem's upload queue. The ACK's own way back (the modem's download
  queue) is not in it: the TSval is stamped before.

Each 0.1 s glance of capacity_follow's --watch record takes the least reading of the glance
over all connections (a delayed ACK's hold and the 1 ms clock only add), beside the modem's
true queues at that glance.

    python -m bench.one_way RECORD.json PCAP [--drift-ppm 100] [--floor-s 0]

RECORD and PCAP come from `bench.capacity_follow --glance-s 0.1 --watch --record RECORD
--capture PCAP`. --drift-ppm scales the far ends' TS clocks (ours is theirs here) to show
what a far clock off 1 kHz does; --floor-s keeps a floor over that many seconds only
(0: the whole run), and with --fit the floor follows the far clock's fitted rate.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import json
import signal
import statistics
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.netns import nsenter_argv

SNAP_BYTES = 128  # Ethernet, IPv4 and TCP with every option
QUIET_MS = 3.0  # a modem queue under this is empty (est25's "quiet")
SEEN_MS = 5.0  # the queue the brief asks to see


@contextlib.contextmanager
def capture(netns: str, device: str, path: Path) -> Iterator[dict[str, int]]:
    """tcpdump on `device` in `netns` for the block; yields the clock's offsets
    (CLOCK_REALTIME less CLOCK_MONOTONIC, ns) so the stamps line up with the bench's."""
    argv = ["tcpdump", "-i", device, "-s", str(SNAP_BYTES), "-B", "16384", "-U", "-n",
            "--time-stamp-precision=nano", "-w", str(path), "tcp"]  # fmt: skip
    process = subprocess.Popen(nsenter_argv(netns, argv), stderr=subprocess.PIPE, text=True)
    clock = {"real_minus_mono_ns": time.time_ns() - time.monotonic_ns()}
    try:
        time.sleep(0.5)  # tcpdump's socket open before the traffic counted
        yield clock
    finally:
        process.send_signal(signal.SIGINT)
        _, errors = process.communicate()
        clock["real_minus_mono_ns_after"] = time.time_ns() - time.monotonic_ns()
        clock["tcpdump"] = " ".join(line for line in errors.splitlines() if "packets" in line)  # type: ignore[assignment]


@dataclass(frozen=True)
class Packet:
    at: float  # s, the bench's clock since the run began
    out: bool  # left the host (the upload's data, the download's ACKs)
    conn: tuple[int, int]  # (our port, their port)
    seq: int
    ack: int
    length: int  # TCP payload
    tsval: int
    tsecr: int


def packets(pcap: Path, host_addr: str, offset_ns: int, began_s: float) -> Iterator[Packet]:
    """The capture's TCP packets with timestamps (IPv4: the bench's modem routes only IPv4)."""
    data = pcap.read_bytes()
    magic = struct.unpack_from("<I", data)[0]
    if magic != 0xA1B23C4D:
        raise ValueError(f"{pcap}: not a nanosecond pcap (magic {magic:#x})")
    host = bytes(int(part) for part in host_addr.split("."))
    at = 24
    while at + 16 <= len(data):
        seconds, nanos, kept, _ = struct.unpack_from("<IIII", data, at)
        frame = data[at + 16 : at + 16 + kept]
        at += 16 + kept
        when = ((seconds * 10**9 + nanos) - offset_ns) / 1e9 - began_s
        packet = frame_packet(frame, host, when)
        if packet is not None:
            yield packet


def frame_packet(frame: bytes, host: bytes, at: float) -> Packet | None:
    """An Ethernet frame's IPv4 TCP segment with timestamps, seen at `at`; None
    for any other frame. host: our address, which tells the way it went."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
        return None
    ihl = (frame[14] & 0x0F) * 4
    total = struct.unpack_from(">H", frame, 16)[0]
    tcp = 14 + ihl
    sport, dport, seq, ack, offset = struct.unpack_from(">HHIIB", frame, tcp)
    doff = (offset >> 4) * 4
    stamp = _timestamps(frame[tcp + 20 : tcp + doff])
    if stamp is None:
        return None
    out = frame[26:30] == host
    return Packet(at, out, (sport, dport) if out else (dport, sport), seq, ack,
                  total - ihl - doff, *stamp)  # fmt: skip


def _timestamps(options: bytes) -> tuple[int, int] | None:
    i = 0
    while i < len(options):
        kind = options[i]
        if kind == 0:
            return None
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(options) or options[i + 1] < 2:
            return None
        if kind == 8 and options[i + 1] == 10:
            value, echo = struct.unpack_from(">II", options, i + 2)
            return value, echo
        i += options[i + 1]
    return None


@dataclass
class Floor:
    """A connection's least reading so far (or over the last window_s), optionally with the
    far clock's rate fitted from its per-second least readings (a far clock not at 1 kHz)."""

    window_s: float = 0.0
    fit: bool = False
    seconds: dict[int, float] = field(default_factory=dict)  # per whole second: its least reading
    least: float | None = None
    slope: float = 0.0  # ms of reading per s of our clock: the far clock's drift

    def above(self, at: float, reading: float) -> float:
        """The reading over the floor as it stood before it (causal), then taken in."""
        if self.window_s or self.fit:
            corrected = reading - self.slope * at
            span = [v - self.slope * s for s, v in self.seconds.items()
                    if not self.window_s or s >= at - self.window_s]  # fmt: skip
            floor = min(span) if span else None
        else:
            corrected, floor = reading, self.least
        second = int(at)
        if second not in self.seconds and self.fit and len(self.seconds) >= 10:
            self.slope = _lower_slope(self.seconds)
        self.seconds[second] = min(reading, self.seconds.get(second, reading))
        self.least = corrected if self.least is None else min(self.least, corrected)
        return 0.0 if floor is None else corrected - floor


def _lower_slope(seconds: dict[int, float]) -> float:
    """The slope of the line under the last 60 s of per-second least readings that touches two
    of them (the lower hull's edge, by the median of pairwise slopes of the lowest fifth per
    ten-second block: queues only add, so the floor's points lie on the clock's line)."""
    recent = sorted(s for s in seconds if s >= max(seconds) - 60)
    blocks: dict[int, tuple[int, float]] = {}
    for s in recent:
        if (block := s // 10) not in blocks or seconds[s] < blocks[block][1]:
            blocks[block] = (s, seconds[s])
    points = sorted(blocks.values())
    slopes = [(b[1] - a[1]) / (b[0] - a[0]) for i, a in enumerate(points) for b in points[i + 1 :]]
    return statistics.median(slopes) if slopes else 0.0


@dataclass(frozen=True)
class Reading:
    at: float  # when it could be known here (the packet's capture)
    direction: str  # "down" or "up"
    above_ms: float  # over its connection's floor
    sent_at: float  # when the segment it reads left its sender (up: our shaper) or, down, arrived


class Readings:
    """Per-packet one-way readings, per direction (see the module's docstring)."""

    def __init__(self, window_s: float, fit: bool, drift_ppm: float, by_echo: bool = False,
                 at_end: bool = False) -> None:  # fmt: skip
        self._floors: dict[tuple[str, tuple[int, int]], Floor] = {}
        self._sent: dict[tuple[int, int], _Sent] = {}
        self._acked: dict[tuple[int, int], int] = {}
        self._window_s, self._fit, self._drift = window_s, fit, drift_ppm / 1e6
        self._by_echo = by_echo  # the departure read by the ACK's echo (our TSval), not its number
        self._at_end = (
            at_end  # only ACKs of a departed segment's last byte (a map keyed by its end)
        )
        self.acks = self.acks_used = self.delayed = 0

    def _floor(self, direction: str, conn: tuple[int, int]) -> Floor:
        return self._floors.setdefault((direction, conn), Floor(self._window_s, self._fit))

    def _far(self, tsval: int, at: float) -> float:
        """The far end's TS clock, as if it ran drift_ppm off ours (ours is theirs here)."""
        return tsval + self._drift * at * 1000

    def take(self, packet: Packet) -> Reading | None:
        if packet.out:
            if packet.length:
                self._sent.setdefault(packet.conn, _Sent(packet.seq)).add(packet)
            return None
        if packet.length:  # the download's data arriving
            reading = packet.at * 1000 - self._far(packet.tsval, packet.at)
            above = self._floor("down", packet.conn).above(packet.at, reading)
            return Reading(packet.at, "down", above, packet.at)
        sent = self._sent.get(packet.conn)
        if sent is None:
            return None  # an ACK of the download's own (we send it no data)
        self.acks += 1
        last = self._acked.get(packet.conn)
        self._acked[packet.conn] = packet.ack
        if last is None or (packet.ack - last) % 2**32 == 0 or (packet.ack - last) % 2**32 > 2**31:
            return None  # a duplicate (or old) ACK echoes an earlier segment's stamp
        departed = sent.first_stamped(packet.tsecr) if self._by_echo \
            else sent.departed(packet.ack, packet.tsecr, self._at_end)  # fmt: skip
        if departed is None:
            return None  # sent twice, after a hole, or not seen
        self.acks_used += 1
        reading = self._far(packet.tsval, packet.at) - departed * 1000
        above = self._floor("up", packet.conn).above(packet.at, reading)
        return Reading(packet.at, "up", above, departed)


class _Sent:
    """A connection's data as it left our shaper: per first sending, its byte range and time."""

    def __init__(self, isn: int) -> None:
        self._isn = isn
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._times: list[float] = []
        self._stamps: list[int] = []  # our TSval on it
        self._again: list[tuple[int, int]] = []
        self._first: dict[int, float] = {}  # our TSval -> when the first segment with it left

    def _rel(self, seq: int) -> int:
        return (seq - self._isn) % 2**32

    def add(self, packet: Packet) -> None:
        start = self._rel(packet.seq)
        end = start + packet.length
        if self._ends and start < self._ends[-1]:
            self._again.append((start, end))
            return
        self._starts.append(start)
        self._ends.append(end)
        self._times.append(packet.at)
        self._stamps.append(packet.tsval)
        self._first.setdefault(packet.tsval, packet.at)

    def first_stamped(self, echoed: int) -> float | None:
        """When the first segment stamped with what the ACK echoes left (what a program
        keyed by the echo alone can know: segments built in one ms share a stamp)."""
        return self._first.get(echoed)

    def departed(self, ack: int, echoed: int, at_end: bool = False) -> float | None:
        """When the segment holding the byte before `ack` left, if it left once and not
        before the segment whose stamp the ACK echoes (else the ACK waited for a hole to
        fill: the far end received it long before, and echoes the retransmission's stamp)."""
        byte = self._rel(ack) - 1
        i = bisect.bisect_right(self._starts, byte) - 1
        if i < 0 or byte >= self._ends[i] or (at_end and byte + 1 != self._ends[i]):
            return None
        if any(start <= byte < end for start, end in self._again[-64:]):
            return None
        if (self._stamps[i] - echoed) % 2**32 > 2**31:
            return None
        return self._times[i]


def glances(record: dict, readings: list[Reading], down_most: bool = False) -> list[dict]:
    """Per glance row of the record: the modem's queues and each direction's least reading
    over the readings known since the row before (None: none then); with down_most, the
    download's most (its readings carry no delayed ACK: a short burst shows)."""
    rows = record["ticks"]
    out, j = [], 0
    readings = sorted(readings, key=lambda r: r.at)
    last_at = None
    for row in rows:
        at = row["at"]
        least: dict[str, float | None] = {"down": None, "up": None}
        count = {"down": 0, "up": 0}
        while j < len(readings) and readings[j].at <= at:
            r = readings[j]
            j += 1
            if last_at is None:
                continue
            count[r.direction] += 1
            old = least[r.direction]
            pick = max if down_most and r.direction == "down" else min
            least[r.direction] = r.above_ms if old is None else pick(old, r.above_ms)
        out.append({"at": at, "modem": row["modem_ms"], "down": least["down"], "up": least["up"],
                    "n": count, "decisions": row.get("decisions", ""), "true": row["true"]})  # fmt: skip
        last_at = at
    return out


def report(rows: list[dict], readings: list[Reading], began_quiet_s: float = 5.0) -> list[str]:
    """Onsets seen, false alarms in quiet pairs, leaks each way."""
    lines = []
    index = {"down": 0, "up": 1}
    for direction in ("up", "down"):
        k = index[direction]
        other = 1 - k
        # onsets: the modem's queue from under QUIET_MS (two glances) to SEEN_MS or more
        onsets, lags = [], []
        below = 0
        for i, row in enumerate(rows):
            q = row["modem"][k]
            if q < QUIET_MS:
                below += 1
                continue
            if q >= SEEN_MS and below >= 2 and row["at"] > began_quiet_s:
                onsets.append(i)
            below = 0 if q >= SEEN_MS else below
        for i in onsets:
            seen = next((rows[m]["at"] - rows[i]["at"] for m in range(max(0, i - 10), min(len(rows), i + 40))
                         if (rows[m][direction] or 0) >= SEEN_MS and rows[m]["at"] >= rows[i]["at"] - 1.0), None)  # fmt: skip
            peak = max(r["modem"][k] for r in rows[i : i + 10])
            lags.append((rows[i]["at"], seen, peak))
        quiet = [i for i in range(1, len(rows)) if rows[i]["at"] > began_quiet_s
                 and all(max(rows[m]["modem"]) < QUIET_MS for m in (i - 1, i))]  # fmt: skip
        alarm_pairs = sum(
            1 for i in quiet if all((rows[m][direction] or 0) >= SEEN_MS for m in (i - 1, i))
        )
        alarm_one = sum(1 for i in quiet if (rows[i][direction] or 0) >= SEEN_MS)
        worst_quiet = max(((rows[i][direction] or 0) for i in quiet), default=0.0)
        # leak: this reading where this direction's modem queue is empty and the other's is full
        leak = [rows[i][direction] for i in range(1, len(rows)) if rows[i]["at"] > began_quiet_s
                and max(rows[m]["modem"][k] for m in (i - 1, i)) < QUIET_MS
                and rows[i]["modem"][other] >= 20 and rows[i][direction] is not None]  # fmt: skip
        # error against the truth where the queue holds something
        errors = [rows[i][direction] - rows[i]["modem"][k] for i in range(len(rows))
                  if rows[i][direction] is not None and rows[i]["modem"][k] >= SEEN_MS]  # fmt: skip
        empty = sum(1 for r in rows if r[direction] is None and r["at"] > began_quiet_s)
        lines.append(f"{direction}: onsets of the modem's {direction} queue (>= {SEEN_MS:.0f} ms after "
                     f"< {QUIET_MS:.0f} ms): {len(onsets)}; seen (reading >= {SEEN_MS:.0f} ms) after: "
                     + ", ".join(f"{at:.1f}s:{'-' if s is None else f'{s:+.1f}'}(peak {p:.0f})" for at, s, p in lags))  # fmt: skip
        lines.append(f"{direction}: quiet glances {len(quiet)}: reading >= {SEEN_MS:.0f} ms at {alarm_one}, two in a row "
                     f"{alarm_pairs}; worst {worst_quiet:.1f} ms; glances with no reading {empty}")  # fmt: skip
        if leak:
            lines.append(f"{direction}: with its modem queue empty and the other's >= 20 ms ({len(leak)} glances): "
                         f"median {statistics.median(leak):.1f}, max {max(leak):.1f} ms")  # fmt: skip
        if errors:
            lines.append(f"{direction}: reading less the modem's queue where it holds >= {SEEN_MS:.0f} ms "
                         f"({len(errors)} glances): median {statistics.median(errors):+.1f}, "
                         f"p10 {_pct(errors, 10):+.1f}, p90 {_pct(errors, 90):+.1f} ms")  # fmt: skip
    return lines


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def analyse(record_path: Path, pcap: Path, window_s: float, fit: bool, drift_ppm: float,
            dump: Path | None = None, by_echo: bool = False, at_end: bool = False,
            down_most: bool = False) -> list[str]:  # fmt: skip
    record = json.loads(record_path.read_text())
    clock = record["capture"]
    readings = Readings(window_s, fit, drift_ppm, by_echo, at_end)
    taken = []
    for packet in packets(
        pcap, record["host_addr"], clock["real_minus_mono_ns"], record["began_mono_s"]
    ):
        if (reading := readings.take(packet)) is not None:
            taken.append(reading)
    rows = glances(record, taken, down_most)
    if dump is not None:
        dump.write_text(json.dumps(rows))
    per_ack = [r for r in taken if r.direction == "up"]
    lines = [f"readings: down {sum(r.direction == 'down' for r in taken)}, up {len(per_ack)} "
             f"(ACKs of the upload {readings.acks}, used {readings.acks_used}); capture: {clock.get('tcpdump')}; "
             f"clock offset moved {(clock['real_minus_mono_ns_after'] - clock['real_minus_mono_ns']) / 1e6:.3f} ms"]  # fmt: skip
    return lines + report(rows, taken) + spread(rows, taken) + turns(rows)


def turns(rows: list[dict]) -> list[str]:
    """Each upload raise the ticks took back: when its queue showed at the modem, when the
    upload reading was SEEN_MS or more at two glances in a row, when the tick took it back,
    and the modem's upload queue at each."""
    lines = []
    for i, row in enumerate(rows):
        if "take back up" not in row["decisions"] or "take back up" in rows[i - 1]["decisions"]:
            continue
        raised = next((rows[m] for m in range(i - 1, max(0, i - 80), -1)
                       if "raise up" in rows[m]["decisions"] and "raise up" not in rows[m - 1]["decisions"]), None)  # fmt: skip
        start = i - 60 if raised is None else rows.index(raised)
        modem = next((r for r in rows[start : i + 1] if r["modem"][1] >= SEEN_MS), None)
        seen = next((rows[m] for m in range(start + 1, i + 1)
                     if all((rows[n]["up"] or 0) >= SEEN_MS for n in (m - 1, m))), None)  # fmt: skip
        base = rows[start]["at"]

        def at(r: dict | None, base: float = base) -> str:
            return "-" if r is None else f"+{r['at'] - base:.1f} s ({r['modem'][1]:.0f} ms)"

        lines.append(f"up take-back at {row['at']:.1f} s, the raise at {base:.1f} s: modem's upload queue >= "
                     f"{SEEN_MS:.0f} ms {at(modem)}; the reading two glances >= {SEEN_MS:.0f} ms {at(seen)}; "
                     f"the tick {at(row)}; the modem's download queue then {row['modem'][0]:.0f} ms")  # fmt: skip
    return lines


def spread(rows: list[dict], readings: list[Reading]) -> list[str]:
    """What one reading alone says against the least of its glance (delayed ACKs, the 1 ms
    clock, a sender's own stack), and how often the last reading alone would alarm with the
    modem's queues empty."""
    lines = []
    edges = [row["at"] for row in rows]
    for direction, k in (("up", 1), ("down", 0)):
        over, last_alarm, quiet = [], 0, 0
        by_glance: dict[int, list[float]] = {}
        for r in readings:
            if (
                r.direction == direction
                and (i := bisect.bisect_left(edges, r.at)) < len(rows)
                and i
            ):
                by_glance.setdefault(i, []).append(r.above_ms)
        for i, values in by_glance.items():
            least = min(values)
            over.extend(v - least for v in values)
            if (
                rows[i]["at"] > 5.0
                and max(rows[i]["modem"]) < QUIET_MS
                and max(rows[i - 1]["modem"]) < QUIET_MS
            ):
                quiet += 1
                last_alarm += values[-1] >= SEEN_MS
        if over:
            lines.append(f"{direction}: one reading less its glance's least ({len(over)}): p50 {_pct(over, 50):.1f}, "
                         f"p90 {_pct(over, 90):.1f}, p99 {_pct(over, 99):.1f}, max {max(over):.1f} ms; "
                         f">= {SEEN_MS:.0f} ms {sum(v >= SEEN_MS for v in over) / len(over):.1%}, >= 40 ms "
                         f"{sum(v >= 40 for v in over) / len(over):.2%}; the glance's last reading alone >= "
                         f"{SEEN_MS:.0f} ms in {last_alarm} of {quiet} quiet glances "
                         f"(modem {(k and 'up') or 'down'} and other empty)")  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.one_way", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("record", type=Path)
    parser.add_argument("pcap", type=Path)
    parser.add_argument("--floor-s", type=float, default=0.0)
    parser.add_argument("--fit", action="store_true")
    parser.add_argument("--drift-ppm", type=float, default=0.0)
    parser.add_argument("--dump", type=Path, help="the glance rows, as JSON")
    parser.add_argument("--by-echo", action="store_true",
                        help="up: the departure of the first segment stamped with the ACK's echo (TSecr)")  # fmt: skip
    parser.add_argument(
        "--down-most", action="store_true", help="down: a glance's most reading, not its least"
    )
    parser.add_argument("--at-end", action="store_true",
                        help="up: only ACKs of a departed segment's last byte (an exact-key map)")  # fmt: skip
    arguments = parser.parse_args(argv)
    for line in analyse(arguments.record, arguments.pcap, arguments.floor_s, arguments.fit,
                        arguments.drift_ppm, arguments.dump, arguments.by_echo, arguments.at_end,
                        arguments.down_most):  # fmt: skip
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
