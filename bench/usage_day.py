"""A day's per-application usage history against the wire: a day in miniature.

A real helper (private bus, real polkitd) in the project's host namespace,
its wall clock (--wall-clock-file, which the usage history follows as the
schedules do) stepped through one local day (TZ=UTC) while four applications
(app scopes) move scripted traffic over the veth pair: TCP and UDP, downloads
and uploads, different paced rates, idle hours. Each real --hour-s seconds is
an hour, so every tick lands in another minute and minutes roll up into hours
and the day. Then GetUsage for that day, by day, by hour and by minute, per
application, is compared with

- the veth's own counters in the host namespace (L3: link bytes minus the
  framing the device counts per packet, tests/support/wire_truth.py), which
  carry only these applications' packets (the peer side's programs are in
  another namespace on the far end of the link): the sum over applications
  per direction must be within 0.5% (issue 14);
- what each application's traffic generator moved (receiver's payload): the
  ratio is the headers (TCP ~ +3.6% of data plus acknowledgements the other
  way; UDP +28 bytes per 1,200-byte datagram = +2.3%).

    sudo .venv/bin/python bench/usage_day.py [--hour-s 4]
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.standalone import HelperProcess, PrivateSystemBus
from chadthrottle.usage_contract import UsageResolution, UsageRow

from tests.support import own_names
from tests.support.netns import (
    TRAFFIC_SCRIPT,
    NetnsPair,
    Receiver,
    app_scope,
    netns_pair,
    nsenter_argv,
    spawn,
    wait_for_line,
)
from tests.support.wire_truth import WireCounters, make_countable, quiet, wire_counters

HOUR_S, DAY_S = 3_600, 86_400
# The day in miniature: a local (UTC) day in the past, so that GetUsage's
# "now" (the system's clock) is after it and prune (the helper's clock) keeps it.
DAY_START = int(datetime(2026, 11, 30, tzinfo=UTC).timestamp())
TOLERANCE = 0.005


@dataclass(frozen=True)
class Segment:
    """One application's traffic from hour start to hour end (the day's hours)."""

    app: str
    start_h: float
    end_h: float
    direction: str  # "down": the application receives; "up": it sends
    udp: bool
    rate_bps: int


# Four applications: a browser (evening and morning downloads, a small upload),
# a night backup (uploads), a call (UDP both ways), an updater (a burst, UDP).
SCRIPT = (
    Segment("Browser", 7.0, 9.5, "down", False, 3_000_000),
    Segment("Browser", 8.0, 8.5, "up", False, 400_000),
    Segment("Browser", 19.0, 22.0, "down", False, 1_500_000),
    Segment("Backup", 1.0, 4.0, "up", False, 4_000_000),
    Segment("Call", 10.0, 11.5, "down", True, 250_000),
    Segment("Call", 10.0, 11.5, "up", True, 200_000),
    Segment("Call", 16.0, 17.0, "up", True, 300_000),
    Segment("Updater", 13.0, 13.5, "down", False, 8_000_000),
    Segment("Updater", 14.0, 15.0, "down", True, 1_000_000),
)


@dataclass
class Moved:
    """Payload each application's generators counted, per direction."""

    payload: dict[tuple[str, str], int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, app: str, direction: str, count: int) -> None:
        with self.lock:
            self.payload[(app, direction)] = self.payload.get((app, direction), 0) + count


def _run_segment(
    pair: NetnsPair, scope: Path, segment: Segment, port: int, seconds: float, moved: Moved
) -> None:
    """One paced transfer; the receiver outlives the sender, so everything sent is read."""
    python, script = sys.executable, str(TRAFFIC_SCRIPT)
    proto = ["--udp"] if segment.udp else []
    send = [
        "--port",
        str(port),
        "--seconds",
        f"{seconds:.2f}",
        "--rate",
        str(segment.rate_bps),
        *proto,
    ]
    read = ["--port", str(port), "--seconds", f"{seconds + 3:.2f}", *proto]
    if segment.direction == "up":
        peer = spawn(
            nsenter_argv(pair.peer_ns, [python, script, "serve", "--role", "sink", *read]), None
        )
        wait_for_line(peer, "listening")
        receiver = Receiver(peer)
        app = spawn(nsenter_argv(pair.host_ns, [python, script, "connect", "--host", pair.peer_addr, "--role", "source",
                                                *send]), scope)  # fmt: skip
    else:
        peer = spawn(
            nsenter_argv(pair.peer_ns, [python, script, "serve", "--role", "source", *send]), None
        )
        wait_for_line(peer, "listening")
        app = spawn(nsenter_argv(pair.host_ns, [python, script, "connect", "--host", pair.peer_addr, "--role", "sink",
                                                *read]), scope)  # fmt: skip
        receiver = Receiver(app)
    for process in (app, peer):
        process.wait(timeout=seconds + 30)
    receiver.join(10)
    for process in (app, peer):
        if process.stdout is not None:
            process.stdout.close()
    moved.add(segment.app, segment.direction, receiver.total_bytes())


class SteppedClock:
    """The helper's wall clock file: DAY_START + elapsed real time x (an hour per hour_s)."""

    def __init__(self, path: Path, hour_s: float) -> None:
        self._path, self._hour_s = path, hour_s
        self._started = time.monotonic()
        self.set(DAY_START)

    def set(self, moment: float) -> None:
        staged = self._path.with_suffix(".new")
        staged.write_text(f"{moment:.3f}\n")
        os.replace(
            staged, self._path
        )  # the helper never reads half a number (it would fall back to time.time())

    def day_hours(self) -> float:
        return (time.monotonic() - self._started) / self._hour_s

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(0.05):
            self.set(DAY_START + min(self.day_hours(), 23.99) * HOUR_S)


def _usage(
    bus_address: str, app_id: str, since: int, until: int, resolution: UsageResolution
) -> list[UsageRow]:
    """Root's GetUsage; asked again for up to 10 s while polkitd reloads its rules (a refusal meanwhile)."""
    from chadthrottle.blocking_client import BlockingHelperClient
    from chadthrottle.helper_errors import HelperClientError

    deadline = time.monotonic() + 10
    while True:
        try:
            with BlockingHelperClient(bus_address, timeout_s=60) as client:
                return client.get_usage(app_id, since, until, resolution)
        except HelperClientError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _sums(rows: list[UsageRow]) -> tuple[int, int]:
    return sum(row.down_bytes for row in rows), sum(row.up_bytes for row in rows)


@contextmanager
def _scopes(apps: list[str]) -> Iterator[dict[str, Path]]:
    tag = secrets.token_hex(3)
    with ExitStack() as stack:
        yield {
            app: stack.enter_context(
                app_scope(cgroup2_mount(), own_names.desktop_id(f"Day{app}{tag}"))
            )
            for app in apps
        }


def _ratio(measured: int, expected: int) -> str:
    return f"{measured / expected:.4f}" if expected else ("-" if not measured else "inf")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--hour-s", type=float, default=4.0, help="real seconds per hour of the day"
    )
    arguments = parser.parse_args()
    hour_s = arguments.hour_s
    apps = sorted({segment.app for segment in SCRIPT})
    print(
        f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1/5/15 min)"
    )
    with tempfile.TemporaryDirectory(prefix="chadthrottle-usage-day-") as directory, \
            PrivateSystemBus() as bus, netns_pair() as pair, _scopes(apps) as scopes:  # fmt: skip
        make_countable(pair)
        clock_path = Path(directory) / "clock"
        clock = SteppedClock(clock_path, hour_s)
        helper = HelperProcess(bus.address, netns=pair.host_ns, state_dir=Path(directory) / "state")
        helper.command += ["--usage-flush-s", "1", "--wall-clock-file", str(clock_path)]
        after_nsenter = helper.command.index("--") + 1
        helper.command[after_nsenter:after_nsenter] = ["env", "TZ=UTC"]
        with helper:
            ids = {
                app: f"app:{scopes[app].name.split('-', 2)[2].rsplit('-', 1)[0]}" for app in apps
            }
            quiet(pair.host_ns, pair.host_if)
            wire_before = wire_counters(pair.host_ns, pair.host_if)
            moved = Moved()
            stop = threading.Event()
            clock = SteppedClock(clock_path, hour_s)  # the day starts now
            stepper = threading.Thread(target=clock.run, args=(stop,), daemon=True)
            stepper.start()
            workers = []
            for port, segment in enumerate(SCRIPT, start=6100):

                def later(segment: Segment = segment, port: int = port) -> None:
                    time.sleep(max(0.0, segment.start_h * hour_s - (clock.day_hours() * hour_s)))
                    seconds = (segment.end_h - segment.start_h) * hour_s
                    _run_segment(pair, scopes[segment.app], segment, port, seconds, moved)

                workers.append(threading.Thread(target=later, daemon=True))
                workers[-1].start()
            for worker in workers:
                worker.join(timeout=24 * hour_s + 60)
            while clock.day_hours() < 23.9:
                time.sleep(0.1)
            stop.set()
            stepper.join()
            clock.set(
                DAY_START + DAY_S - 30
            )  # the day's last minute: the last ticks still count in it
            quiet(pair.host_ns, pair.host_if)
            wire = wire_counters(pair.host_ns, pair.host_if) - wire_before
            time.sleep(
                3
            )  # a tick after the last exit (its final counts), and a flush (--usage-flush-s 1)
            by_day = {app: _usage(bus.address, ids[app], DAY_START, DAY_START + DAY_S, UsageResolution.DAY)
                      for app in apps}  # fmt: skip
            by_hour = {app: _usage(bus.address, ids[app], DAY_START, DAY_START + DAY_S, UsageResolution.HOUR)
                       for app in apps}  # fmt: skip
            by_minute = {app: _usage(bus.address, ids[app], DAY_START, DAY_START + DAY_S, UsageResolution.MINUTE)
                         for app in apps}  # fmt: skip
            outside = _usage(
                bus.address, "", DAY_START + DAY_S, int(time.time()) + 1, UsageResolution.DAY
            )
            log_text = helper.log_text()
    _report(apps, ids, by_day, by_hour, by_minute, moved, wire, outside, log_text)
    return 0


def _report(apps: list[str], ids: dict[str, str], by_day: dict[str, list[UsageRow]],
            by_hour: dict[str, list[UsageRow]], by_minute: dict[str, list[UsageRow]], moved: Moved,
            wire: WireCounters, outside: list[UsageRow], log_text: str) -> None:  # fmt: skip
    """Print the comparison: per application, rollups, wire, generator."""
    print(f"{'application':<10} {'dir':<4} {'day bytes':>12} {'hours sum':>12} {'minutes sum':>12} "
          f"{'generator':>12} {'day/gen':>8}  active hours")  # fmt: skip
    totals = [0, 0]
    for app in apps:
        day, hours, minutes = _sums(by_day[app]), _sums(by_hour[app]), _sums(by_minute[app])
        for at, direction in enumerate(("down", "up")):
            active = sorted({(row.start - DAY_START) // HOUR_S for row in by_hour[app]
                             if (row.down_bytes, row.up_bytes)[at] > 10_000})  # fmt: skip
            payload = moved.payload.get((app, direction), 0)
            totals[at] += day[at]
            print(f"{app:<10} {direction:<4} {day[at]:>12,} {hours[at]:>12,} {minutes[at]:>12,} {payload:>12,} "
                  f"{_ratio(day[at], payload):>8}  {active}")  # fmt: skip
        assert day == hours == minutes, f"{app}: day {day} != hours {hours} or minutes {minutes}"
        assert len(by_day[app]) == 1 and by_day[app][0].start == DAY_START, by_day[app]
    wire_down, wire_up = wire.rx_bytes, wire.tx_bytes
    print(f"wire (veth L3): down {wire_down:,} bytes, up {wire_up:,} bytes, {wire.dropped} dropped")
    worst = 0.0
    for label, counted, truth in (("down", totals[0], wire_down), ("up", totals[1], wire_up)):
        worst = max(worst, abs(counted / truth - 1))
        print(f"all applications {label}: {counted:,} of the wire's {truth:,} bytes: ratio {counted / truth:.6f} "
              f"({counted - truth:+,} bytes)")  # fmt: skip
    everything = sum(totals) / (wire_down + wire_up)
    print(f"total: ratio {everything:.6f}; worst direction off by {worst * 100:.4f}% "
          f"({'within' if worst <= TOLERANCE else 'NOT within'} {TOLERANCE * 100:.1f}%)")  # fmt: skip
    minutes = {app: len(rows) for app, rows in by_minute.items()}
    print(f"minute rows per application: {minutes}; rows of these applications on later days "
          f"(the system clock's): {[row.app_id for row in outside if row.app_id in ids.values()]}")  # fmt: skip
    load = os.getloadavg()
    print(f"load at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if "Traceback" in log_text:
        print(log_text[-3000:], file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
