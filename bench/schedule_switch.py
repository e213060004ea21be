"""How soon does a schedule switch a limit on and off after its minute, and
what do schedules cost the engine's tick?

    sudo .venv/bin/python -m bench.schedule_switch [--rounds 3] [--limit-mib 1]

1. One upload between two network namespaces, the real helper in the "host"
   namespace on a private system bus with its wall clock read from a file
   (--wall-clock-file), a schedule "mon 09:00-09:01" at --limit-mib. Each
   round moves the clock to 09:00:00 and back to 09:01:00 and prints, for
   each switch, the time until ListApplications shows it and until the
   traffic (0.25 s windows as the receiver reads them) is within 1.1x of the
   limit, or above 5x it again. With --real-clock, one more round on the
   real clock (no clock file), timed from the minute itself.
2. LimitTable.activate() (what the tick runs for schedules) with 1,000 rules
   of 3 schedules each: within a minute (59 ticks of 60), on a new minute
   where nothing switches, and when every rule switches.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path

from chadthrottle.contract import MIN_BURST_BYTES, Direction
from chadthrottle.helper.engine.limits import Limit, LimitTable
from chadthrottle.helper.engine.schedules import local_zone, make_schedule
from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.standalone import HelperProcess, PrivateSystemBus

from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.netns import Receiver, app_scope, netns_pair, start_stream

MiB = 1024 * 1024
PAYLOAD_SHARE = 1448 / 1500  # the receiver counts payload; limits count IP packets
WINDOW_S = 0.25
MONDAY_0900 = datetime(2027, 1, 4, 9, 0, tzinfo=local_zone()).timestamp()


def _window_bps(receiver: Receiver) -> float:
    return receiver.rate_bps(WINDOW_S) / PAYLOAD_SHARE


def _until(condition: object, timeout_s: float = 10.0) -> float:
    """Seconds until condition() held (polled every 20 ms), or nan."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if condition():  # type: ignore[operator]
            return time.monotonic() - started
        time.sleep(0.02)
    return float("nan")


def switch_latency(rounds: int, limit_bps: int) -> list[tuple[str, float, float]]:
    results = []
    with tempfile.TemporaryDirectory() as folder, PrivateSystemBus() as bus, netns_pair() as pair:
        clock = Path(folder) / "clock"
        clock.write_text(f"{MONDAY_0900 - 30}\n")
        helper = HelperProcess(bus.address, netns=pair.host_ns, state_dir=Path(folder) / "state")
        helper.command += ["--wall-clock-file", str(clock)]
        with helper, app_scope(cgroup2_mount(), own_names.desktop_id("BenchSchedule")) as scope:
            stream = start_stream(pair, 5720, "up", app_cgroup=scope, seconds=600)
            try:
                app_id = call_helper(
                    bus.address,
                    lambda c: c.set_schedule(
                        f"pid:{stream.app_pid}", "mon", "09:00", "09:01", 0, limit_bps
                    ),
                )

                def listed() -> int:
                    apps = {
                        a.id: a for a in call_helper(bus.address, lambda c: c.list_applications())
                    }
                    return apps[app_id].up_limit_bps if app_id in apps else -1

                time.sleep(1.0)
                for _ in range(rounds):
                    clock.write_text(f"{MONDAY_0900}\n")
                    moved = time.monotonic()
                    shown = _until(lambda: listed() == limit_bps)
                    held = _until(lambda: _window_bps(stream.receiver) <= 1.1 * limit_bps, 15.0)
                    results.append(
                        ("on at 09:00", shown, time.monotonic() - moved if held == held else held)
                    )
                    time.sleep(2.0)
                    clock.write_text(f"{MONDAY_0900 + 60}\n")
                    moved = time.monotonic()
                    shown = _until(lambda: listed() == 0)
                    freed = _until(lambda: _window_bps(stream.receiver) > 5 * limit_bps, 15.0)
                    results.append(
                        (
                            "off at 09:01",
                            shown,
                            time.monotonic() - moved if freed == freed else freed,
                        )
                    )
                    time.sleep(2.0)
            finally:
                stream.stop()
    return results


def real_clock_latency(limit_bps: int) -> list[tuple[str, float, float]]:
    """One round on the real clock: a schedule for the next whole minute of
    today, measured from the minute itself (no clock file: the tick's own
    timing counts). Takes up to two minutes."""
    results = []
    zone = local_zone()
    with tempfile.TemporaryDirectory() as folder, PrivateSystemBus() as bus, netns_pair() as pair:
        helper = HelperProcess(bus.address, netns=pair.host_ns, state_dir=Path(folder) / "state")
        with helper, app_scope(cgroup2_mount(), own_names.desktop_id("BenchScheduleReal")) as scope:
            stream = start_stream(pair, 5721, "up", app_cgroup=scope, seconds=600)
            try:
                now = time.time()
                start = (
                    now - now % 60 + (120 if now % 60 > 45 else 60)
                )  # at least 15 s to set it up
                local = datetime.fromtimestamp(start, zone)
                names = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
                end = datetime.fromtimestamp(start + 60, zone)
                app_id = call_helper(
                    bus.address,
                    lambda c: c.set_schedule(
                        f"pid:{stream.app_pid}",
                        names[local.weekday()],
                        local.strftime("%H:%M"),
                        end.strftime("%H:%M"),
                        0,
                        limit_bps,
                    ),
                )

                def listed() -> int:
                    apps = {
                        a.id: a for a in call_helper(bus.address, lambda c: c.list_applications())
                    }
                    return apps[app_id].up_limit_bps if app_id in apps else -1

                for target, wanted, what in ((start, limit_bps, "on"), (start + 60, 0, "off")):
                    time.sleep(max(0.0, target - time.time()))
                    shown = _until(lambda w=wanted: listed() == w)
                    shown_at = time.time() - target
                    if wanted:
                        _until(lambda: _window_bps(stream.receiver) <= 1.1 * limit_bps, 15.0)
                    else:
                        _until(lambda: _window_bps(stream.receiver) > 5 * limit_bps, 15.0)
                    results.append(
                        (
                            f"{what} at the minute (real clock)",
                            shown_at if shown == shown else shown,
                            time.time() - target,
                        )
                    )
            finally:
                stream.stop()
    return results


def activate_cost(
    rules: int = 1000, per_rule: int = 3, repeats: int = 50
) -> tuple[float, float, float]:
    """Median seconds of one activate(): a tick within the same minute (59
    ticks of 60), a new minute where nothing switches, and every rule switching."""
    table = LimitTable()
    rate = {Direction.DOWN: Limit(1_000_000, MIN_BURST_BYTES)}
    for n in range(rules):
        for day in range(per_rule):
            table.add_schedule(
                (f"exe:/usr/bin/app{n}", 1000),
                make_schedule(("mon", "tue", "wed")[day], "09:00", "10:00", rate),
            )
    zone = local_zone()
    same, quiet, switching = [], [], []
    for i in range(repeats):
        minute = datetime(2027, 1, 4, 12, i % 60, tzinfo=zone)  # Monday noon: nothing active
        started = time.perf_counter()
        table.activate(minute)
        quiet.append(time.perf_counter() - started)
        started = time.perf_counter()
        table.activate(minute.replace(second=30))
        same.append(time.perf_counter() - started)
        started = time.perf_counter()
        table.activate(
            datetime(2027, 1, 4, 9 + i % 2, 30, tzinfo=zone)
        )  # 09:30 / 10:30: all on / all off
        switching.append(time.perf_counter() - started)
    return statistics.median(same), statistics.median(quiet), statistics.median(switching)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--limit-mib", type=float, default=1.0)
    parser.add_argument(
        "--real-clock", action="store_true", help="also one round on the real clock (2 min)"
    )
    arguments = parser.parse_args()
    same, quiet, switching = activate_cost()
    print(
        f"activate(), 1,000 rules x 3 schedules: {same * 1e6:.1f} us within a minute, {quiet * 1e3:.2f} ms "
        f"on a new minute where nothing switches, {switching * 1e3:.2f} ms when every rule switches (median of 50)"
    )
    rounds = switch_latency(arguments.rounds, int(arguments.limit_mib * MiB))
    if arguments.real_clock:
        rounds += real_clock_latency(int(arguments.limit_mib * MiB))
    for what, shown, traffic in rounds:
        print(
            f"{what}: listed after {shown:.2f} s, traffic {'within 1.1x' if 'on' in what else 'above 5x'} "
            f"after {traffic:.2f} s"
        )


if __name__ == "__main__":
    main()
