"""What the usage history costs: CPU per flush, bytes on disk, GetUsage latency.

The store and recorder as the helper runs them (helper/usage/), on a real
SQLite file in a temporary state directory:

- **flush**: one minute's batch of N applications (one uid each, both
  directions and loopback), CPU (process time) and wall time per flush, on a
  database already at its two-year steady state;
- **size**: the file once every level is full for N applications that were
  all active in every minute of two years (the worst case; rows are written
  straight into the table, as the store's rollups leave them: minutes for
  25 h, hours for 90 days, days for 731), and after a prune;
- **GetUsage**: the recorder's query (what the helper runs for the call,
  without the bus) for 30 days by day for every application, for one, a
  day by hour, and today by day with two minutes not written yet (the
  window's totals column, asked after each poll that moved bytes).

    sudo .venv/bin/python bench/usage_store.py              # 500 applications
    .venv/bin/python bench/usage_store.py --apps 1000 --flushes 60
    sudo .venv/bin/python bench/usage_store.py --over-bus   # and GetUsage through a real helper
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chadthrottle.helper.engine.api import ADMIN_VIEWER
from chadthrottle.helper.errors import InvalidArgument
from chadthrottle.helper.kernel.layout import CounterSample
from chadthrottle.helper.usage.buckets import DAY_S, RETENTION_S, Level, bucket_start
from chadthrottle.helper.usage.recorder import UsageRecorder
from chadthrottle.helper.usage.store import DATABASE_FILE, UsageStore
from chadthrottle.usage_contract import UsageResolution


class Sample:
    """One socket owner's counters, as the datapath reports them."""

    __slots__ = ("ifindex", "netns_cookie", "owner_start", "owner_tgid", "rx_bytes", "tx_bytes")

    def __init__(self, tgid: int, ifindex: int, rx: int, tx: int) -> None:
        self.owner_tgid, self.netns_cookie, self.ifindex, self.rx_bytes, self.tx_bytes = (
            tgid,
            1,
            ifindex,
            rx,
            tx,
        )
        self.owner_start = 0


def _steady_rows(apps: int, now: int) -> Iterator[tuple[int, int, str, int, int, int, int, int]]:
    """Every row the store keeps at two years for `apps` applications active in every minute."""
    for level in Level:
        first = now - RETENTION_S[level]
        start = bucket_start(level, first)
        while start <= now:
            for app in range(apps):
                yield (
                    int(level),
                    start,
                    f"exe:/opt/bench/app{app}",
                    1000,
                    123_456_789 + app,
                    12_345_678,
                    4096,
                    4096,
                )
            start = (
                start + int(level)
                if level is not Level.DAY
                else bucket_start(Level.DAY, start + DAY_S + 3_600)
            )


def _timed(call: Callable[[], object], rounds: int) -> tuple[float, float, float]:
    """(median CPU ms, median wall ms, max wall ms) over rounds calls."""
    cpu, wall = [], []
    for _ in range(rounds):
        c0, w0 = time.process_time(), time.perf_counter()
        call()
        cpu.append((time.process_time() - c0) * 1000)
        wall.append((time.perf_counter() - w0) * 1000)
    return statistics.median(cpu), statistics.median(wall), max(wall)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=500)
    parser.add_argument("--flushes", type=int, default=30, help="flushes measured")
    parser.add_argument("--queries", type=int, default=20, help="queries measured, per kind")
    parser.add_argument(
        "--over-bus",
        action="store_true",
        help="also call a real helper (root: private bus, polkitd, a veth pair) with this history",
    )
    arguments = parser.parse_args()
    apps, now = arguments.apps, int(time.time())
    with tempfile.TemporaryDirectory(prefix="chadthrottle-usage-bench-") as directory:
        state = Path(directory) / "state"
        store = UsageStore(state)
        assert store.open()
        store.close()
        started = time.perf_counter()
        with sqlite3.connect(state / DATABASE_FILE) as db:
            db.executemany(
                "INSERT INTO usage VALUES (?, ?, ?, ?, ?, ?, ?, ?)", _steady_rows(apps, now)
            )
            rows = db.execute("SELECT count(*) FROM usage").fetchone()[0]
        print(f"{apps} applications, every one active in every minute of two years: {rows:,} rows "
              f"(filled in {time.perf_counter() - started:.0f} s)")  # fmt: skip
        clock = [float(now)]
        recorder = UsageRecorder(
            UsageStore(state), flush_interval_s=3600, wall_clock=lambda: clock[0]
        )
        recorder.start()  # opens, prunes what expired
        size = (state / DATABASE_FILE).stat().st_size
        print(f"size on disk: {size / 1e6:.1f} MB ({size / rows:.0f} bytes a row; "
              f"{size / apps / 1e3:.0f} kB an application)")  # fmt: skip

        counters = {tgid: 0 for tgid in range(apps)}

        def owner_of(sample: CounterSample) -> tuple[str, int | None]:
            return f"exe:/opt/bench/app{sample.owner_tgid}", 1000

        def one_minute() -> None:
            clock[0] += 60
            for tgid in counters:
                counters[tgid] += 1_000_000
            samples = [
                Sample(tgid, ifindex, count, count // 10)
                for tgid, count in counters.items()
                for ifindex in (1, 2)
            ]
            recorder.update(samples, owner_of)

        def feed_and_flush() -> None:
            one_minute()
            recorder.flush()

        feed = _timed(one_minute, arguments.flushes)
        recorder.flush()
        flush = _timed(feed_and_flush, arguments.flushes)
        print(
            f"one tick's feed ({apps} applications, 2 interfaces each): CPU {feed[0]:.2f} ms median"
        )
        print(f"feed + flush of one minute ({apps} applications, {3 * apps} rows upserted): "
              f"CPU {flush[0]:.1f} ms median, wall {flush[1]:.1f} ms median, {flush[2]:.1f} ms max")  # fmt: skip
        prune = _timed(lambda: recorder._store.prune(int(clock[0])), 3)
        print(f"prune (hourly): wall {prune[1]:.1f} ms median")
        since_30 = bucket_start(Level.DAY, int(clock[0]) - 29 * DAY_S)
        kinds = {
            "30 days by day, every application": ("", since_30, UsageResolution.DAY),
            "30 days by day, one application": (
                "exe:/opt/bench/app7",
                since_30,
                UsageResolution.DAY,
            ),
            "today by hour, every application": (
                "",
                bucket_start(Level.DAY, int(clock[0])),
                UsageResolution.HOUR,
            ),
            "a year by month, every application": (
                "",
                int(clock[0]) - 365 * DAY_S,
                UsageResolution.MONTH,
            ),
        }
        for label, (app_id, since, resolution) in kinds.items():
            answer: list[object] = []

            def query(
                app_id: str = app_id,
                since: int = since,
                resolution: UsageResolution = resolution,
                answer: list[object] = answer,
            ) -> None:
                answer[:] = recorder.query(
                    app_id, since, int(clock[0]) + 1, resolution, ADMIN_VIEWER
                )

            try:
                cost = _timed(query, arguments.queries)
            except InvalidArgument as error:
                print(f"GetUsage {label}: refused ({error})")
                continue
            print(f"GetUsage {label}: {len(answer):,} rows, wall {cost[1]:.1f} ms median ({cost[2]:.1f} max), "
                  f"CPU {cost[0]:.1f} ms")  # fmt: skip
        # The window's totals column, asked after each poll that moved bytes: today
        # by day, with what the helper has not written yet (two minutes waiting).
        one_minute()
        one_minute()
        today = bucket_start(Level.DAY, int(clock[0]))
        waiting = _timed(lambda: recorder.query("", today, int(clock[0]) + 1, UsageResolution.DAY,
                                                ADMIN_VIEWER), arguments.queries)  # fmt: skip
        print(f"GetUsage today by day, every application, {len(recorder._pending):,} entries waiting: "
              f"wall {waiting[1]:.1f} ms median ({waiting[2]:.1f} max), CPU {waiting[0]:.1f} ms")  # fmt: skip
        recorder.close()
        print(f"size after the run: {(state / DATABASE_FILE).stat().st_size / 1e6:.1f} MB")
        if arguments.over_bus:
            _over_the_bus(state, kinds, arguments.queries)
    return 0


def _over_the_bus(
    state: Path, kinds: dict[str, tuple[str, int, UsageResolution]], rounds: int
) -> None:
    """The same calls to a real helper on a private bus (real polkitd), with
    this database as its history: what a client waits for, marshalling included."""
    from chadthrottle.blocking_client import BlockingHelperClient
    from chadthrottle.helper.standalone import HelperProcess, PrivateSystemBus

    from tests.support.netns import netns_pair

    with PrivateSystemBus() as bus, netns_pair() as pair, \
            HelperProcess(bus.address, netns=pair.host_ns, state_dir=state) as helper, \
            BlockingHelperClient(bus.address, timeout_s=60) as client:  # fmt: skip
        for label, (app_id, since, resolution) in kinds.items():
            answer: list[object] = []

            def call(
                app_id: str = app_id,
                since: int = since,
                resolution: UsageResolution = resolution,
                answer: list[object] = answer,
            ) -> None:
                answer[:] = client.get_usage(app_id, since, 0, resolution)

            try:
                cost = _timed(call, rounds)
            except Exception:
                print(helper.log_text()[-3000:], bus.logs()[-3000:], sep="\n", file=sys.stderr)
                raise
            print(f"over the bus, GetUsage {label}: {len(answer):,} rows, wall {cost[1]:.1f} ms median "
                  f"({cost[2]:.1f} max; the client's decoding included)")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
