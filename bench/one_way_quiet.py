"""Where a quiet look's 5-8 ms comes from (issue 16, k8-30): the upload's one-way reading
with the modem's upload queue empty, traced per ACK.

tests/helper/kernel/test_one_way_upload.py's quiet phase, run `--runs` times: the modem in
miniature (bench/bottleneck.py: 5 Mbit/s up, 400 ms of buffer), our link tree's upload
shaper under it, one bulk upload (tests/support/bulk_upload.py), the helper's reader
(UploadQueueReader) looked at every 0.1 s, and for each look what it took per connection
(the least raw reading and its ACKs) and the floor. Two captures beside it: our host's
veth (a data packet as it leaves our shaper, an ACK as it arrives) and the far end's device
(a data segment as it arrives there, its ACK as it leaves, with the far end's TSval).
For every ACK the far end sent for a segment end, the way splits into

    path = its arrival at the far end - its departure from our veth (the modem's queue,
           and the veths' and softirqs' on this machine)
    hold = its ACK's departure from the far end - the segment's arrival (delayed ACK,
           a receiver that read late)

each over its own least in the run, beside the modem's queue sampled every 3 ms. A look
that reads 5 ms or more (3 ACKs or more) with the modem empty is told by which one rose.

    python bench/one_way_quiet.py [--runs 10] [--quiet-s 2.5] [--keep DIR] [--busy N]

--busy N runs N busy loops beside (a machine loaded as by other tests).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chadthrottle.contract import Direction
from chadthrottle.helper.kernel.bcc_env import DEFAULT_CACHE_DIR
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.one_way import UploadQueueReader
from chadthrottle.helper.kernel.priority_classes import LinkShaping
from pyroute2 import IPRoute

from bench.bottleneck import modem
from bench.one_way import capture, packets
from tests.helper.kernel.test_one_way_upload import (
    BUFFER_MS,
    DOWN_BPS,
    LOOK_S,
    SEEN_MS,
    UP_BPS,
    ModemQueue,
    _upload_ifb,
)
from tests.support.bulk_upload import bulk_upload
from tests.support.netns import entered_netns, netns_pair, tc_shaper_in

SETTLE_S = 1.5


@dataclass
class Look:
    at: float  # s since the run began
    queue_ms: float | None
    readings: int
    taken: dict[str, tuple[int, int]]  # conn -> (least raw ns, ACKs), as the reader took them


class TracingReader(UploadQueueReader):
    """The helper's reader, keeping what each look took per connection."""

    def __init__(self, datapath: Datapath) -> None:
        super().__init__(datapath)
        self.taken: dict[tuple[int, int, int, int], tuple[int, int]] = {}

    def _take(self) -> dict[tuple[int, int, int, int], tuple[int, int]]:
        self.taken = super()._take()
        return self.taken


def _far_device(netns: str) -> str:
    with entered_netns(netns):
        ipr = IPRoute()
    try:
        names = [link.get_attr("IFLA_IFNAME") for link in ipr.get_links()]
    finally:
        ipr.close()
    (device,) = [name for name in names if name != "lo"]
    return str(device)


def one_run(datapath: Datapath, quiet_s: float, keep: Path, number: int) -> dict[str, object]:
    with (
        netns_pair() as pair,
        modem(pair, DOWN_BPS, UP_BPS, BUFFER_MS) as internet,
        tc_shaper_in(pair.host_ns, datapath) as shaper,
    ):
        shaper.set_link(Direction.DOWN, LinkShaping(capacity_bps=DOWN_BPS))
        shaper.set_link(Direction.UP, LinkShaping(capacity_bps=UP_BPS))
        shaper.reconcile({})
        reader = TracingReader(datapath)
        reader.start(_upload_ifb(shaper))
        near, far = keep / f"run{number}-near.pcap", keep / f"run{number}-far.pcap"
        looks: list[Look] = []
        try:
            with (
                capture(pair.host_ns, pair.host_if, near) as near_clock,
                capture(internet.netns, _far_device(internet.netns), far) as far_clock,
                ModemQueue(internet) as queue,
                bulk_upload(pair.host_ns, internet.netns, internet.addr),
            ):
                began = time.monotonic()
                due, end = began, began + SETTLE_S + quiet_s
                while due < end:
                    due += LOOK_S
                    time.sleep(max(0.0, due - time.monotonic()))
                    reading = reader.look()
                    assert reading is not None
                    looks.append(Look(time.monotonic() - began, reading.queue_ms, reading.readings,
                                      {str(conn): taken for conn, taken in reader.taken.items()}))  # fmt: skip
                modem_ms = [(at - began, ms) for at, ms in zip(queue.times, queue.ms, strict=False)]
        finally:
            reader.stop()
        return {"looks": [asdict(look) for look in looks], "modem": modem_ms, "host_addr": pair.host_addr,
                "near": str(near), "far": str(far), "near_offset_ns": near_clock["real_minus_mono_ns"],
                "far_offset_ns": far_clock["real_minus_mono_ns"], "began": began}  # fmt: skip


@dataclass
class Acked:
    at: float  # the ACK's departure from the far end (s since the run began)
    path_ms: float
    hold_ms: float
    stamp_ms: float  # TSval (ms) less the segment's departure from our veth: the reading's raw


def acks(run: dict) -> list[Acked]:
    """Each far ACK of a data segment's end, split into path and hold (module doc)."""
    began = float(run["began"])
    near = list(packets(Path(run["near"]), run["host_addr"], int(run["near_offset_ns"]), began))
    far = list(packets(Path(run["far"]), run["host_addr"], int(run["far_offset_ns"]), began))
    left: dict[tuple[tuple[int, int], int], float] = {}  # (conn, byte) -> departure of its packet
    starts: dict[tuple[int, int], list[tuple[int, int, float]]] = {}
    for packet in near:
        if packet.out and packet.length:
            starts.setdefault(packet.conn, []).append(
                (packet.seq, packet.seq + packet.length, packet.at)
            )
    arrived: dict[tuple[tuple[int, int], int], float] = {}
    for packet in far:
        if packet.out and packet.length:
            arrived.setdefault((packet.conn, packet.seq + packet.length), packet.at)
    found = []
    answered: set[tuple[tuple[int, int], int]] = set()
    for packet in far:
        if packet.out or packet.length:
            continue
        end = (packet.conn, packet.ack)
        if end not in arrived or end in answered:  # a duplicate ACK (a window update): not read
            continue
        answered.add(end)
        departure = _departure(starts.get(packet.conn, []), packet.ack, left, end)
        if departure is None:
            continue
        found.append(Acked(packet.at, (arrived[end] - departure) * 1000, (packet.at - arrived[end]) * 1000,
                           packet.tsval - departure * 1000))  # fmt: skip
    return found


def _departure(
    sent: list[tuple[int, int, float]], ack: int, memo: dict, key: tuple
) -> float | None:
    if key in memo:
        return float(memo[key])
    for start, end, at in sent:  # the first packet holding the byte before `ack`
        if start < ack <= end:
            memo[key] = at
            return at
    return None


def _relative(values: list[float]) -> list[float]:
    least = min(values)
    return [value - least for value in values]


def analyse(run: dict) -> list[str]:
    found = acks(run)
    if not found:
        return ["no ACK matched"]
    path, hold, stamp = (
        _relative([getattr(a, name) for a in found]) for name in ("path_ms", "hold_ms", "stamp_ms")
    )
    modem = run["modem"]
    lines = []
    for look in run["looks"]:
        if look["queue_ms"] is None or look["readings"] < 3 or look["at"] < SETTLE_S:
            continue
        window = [
            i for i, a in enumerate(found) if look["at"] - LOOK_S - 0.02 <= a.at <= look["at"]
        ]
        held = [ms for at, ms in modem if look["at"] - LOOK_S - 0.05 <= at <= look["at"]]
        if not window:
            continue
        least = min(window, key=lambda i: stamp[i])
        tag = "HIGH" if look["queue_ms"] >= SEEN_MS else "    "
        lines.append(f"{tag} at {look['at']:6.2f} s read {look['queue_ms']:5.2f} ms/{look['readings']:2d}  "
                     f"modem max {max(held, default=0):5.1f} ms  least ACK: stamp {stamp[least]:5.1f} "
                     f"path {path[least]:5.1f} hold {hold[least]:5.1f}  (look's ACKs: path "
                     f"{min(path[i] for i in window):.1f}-{max(path[i] for i in window):.1f}, hold "
                     f"{min(hold[i] for i in window):.1f}-{max(hold[i] for i in window):.1f})")  # fmt: skip
    lines.append(f"ACKs matched {len(found)}; path median {statistics.median(path):.2f} ms, hold median "
                 f"{statistics.median(hold):.2f} ms")  # fmt: skip
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--quiet-s", type=float, default=2.5)
    parser.add_argument("--keep", type=Path, help="keep the captures and records here")
    parser.add_argument(
        "--busy", type=int, default=0, help="this many busy loops beside (a loaded machine)"
    )
    arguments = parser.parse_args()
    keep = arguments.keep or Path(tempfile.mkdtemp(prefix="one-way-quiet-"))
    keep.mkdir(parents=True, exist_ok=True)
    keep.chmod(0o777)  # tcpdump writes as its own user
    datapath = Datapath(cache_dir=DEFAULT_CACHE_DIR)
    datapath.open()
    busy = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(arguments.busy)
    ]
    try:
        for number in range(arguments.runs):
            run = one_run(datapath, arguments.quiet_s, keep, number)
            (keep / f"run{number}.json").write_text(json.dumps(run))
            lines = analyse(run)
            high = sum(line.startswith("HIGH") for line in lines)
            print(
                f"run {number}: {high} looks of 3 ACKs or more at {SEEN_MS} ms or more", flush=True
            )
            for line in lines:
                if line.startswith("HIGH") or line.startswith("ACKs"):
                    print("  " + line, flush=True)
    finally:
        for loop in busy:
            loop.terminate()
            loop.wait()
        datapath.close()
    print(f"records and captures in {keep}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
