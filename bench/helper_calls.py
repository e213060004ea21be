"""How the real helper holds up under calls: SetLimit latency at a steady call
rate from several client processes, whether ListApplications keeps answering
meanwhile, idle CPU, start-up time and memory.

The helper runs in the host namespace of a veth pair, on a private system bus
with a real polkitd, with a few real applications (limited uploads) running:

    sudo .venv/bin/python bench/helper_calls.py            # 1,000 calls/s for 10 s
    sudo .venv/bin/python bench/helper_calls.py --rate 2000 --clients 8 --seconds 5

Latency is measured open-loop: each call has a scheduled send time, and its
latency runs from that time to the reply, so a helper that falls behind shows
it (closed-loop clients would quietly send less). Targets (issue 5): p99 under
20 ms at 1,000 calls/s; idle CPU under 0.5% of one core.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chadthrottle.contract import BUS_NAME, INTERFACE, OBJECT_PATH
from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.standalone import HelperProcess, PrivateSystemBus
from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

from tests.support import own_names
from tests.support.netns import NetnsPair, Stream, app_scope, netns_pair, start_stream

APP_COUNT = 3
APP_RATE_BPS = 1024 * 1024  # the apps' uploads are held here, so traffic costs little CPU
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _call(member: str, signature: str = "", body: list[Any] | None = None) -> Message:
    return Message(destination=BUS_NAME, path=OBJECT_PATH, interface=INTERFACE,
                   member=member, signature=signature, body=body or [])  # fmt: skip


async def _timed(bus: MessageBus, message: Message, scheduled: float) -> tuple[float, str, float]:
    """(latency from the scheduled send time, "" or the error name, the scheduled time)."""
    reply = await bus.call(message)
    failed = (
        ""
        if reply.message_type is MessageType.METHOD_RETURN
        else f"{reply.error_name}: {reply.body[0]}"
    )
    return time.monotonic() - scheduled, failed, scheduled


async def _paced(address: str, rate_per_s: float, seconds: float, start_at: float,
                 make: Any) -> list[tuple[float, str, float]]:  # fmt: skip
    """Send make(i) at start_at + i / rate_per_s for seconds; (latency, ok) each."""
    bus = await MessageBus(bus_address=address).connect()
    try:
        tasks = []
        count = int(rate_per_s * seconds)
        for i in range(count):
            scheduled = start_at + i / rate_per_s
            delay = scheduled - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(_timed(bus, make(i), scheduled)))
        return list(await asyncio.gather(*tasks))
    finally:
        bus.disconnect()


def _setter(address: str, app_ids: list[str], rate_per_s: float, seconds: float, start_at: float,
            client: int, results: Any) -> None:  # fmt: skip
    def make(i: int) -> Message:
        app_id = app_ids[(i + client) % len(app_ids)]
        rate_bps = APP_RATE_BPS + 1000 * ((i + client) % 50)  # a real change most of the time
        return _call("SetLimit", "sstts", [app_id, "up", rate_bps, 0, ""])

    results.put(("set", asyncio.run(_paced(address, rate_per_s, seconds, start_at, make))))


def _reader(address: str, rate_per_s: float, seconds: float, start_at: float, results: Any) -> None:
    results.put(
        (
            "read",
            asyncio.run(
                _paced(address, rate_per_s, seconds, start_at, lambda i: _call("ListApplications"))
            ),
        )
    )


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _idle_cpu_percent(pid: int, seconds: float) -> float:
    before = _cpu_seconds(pid)
    time.sleep(seconds)
    return 100 * (_cpu_seconds(pid) - before) / seconds


def _percentiles(latencies_s: list[float]) -> str:
    if not latencies_s:
        return "no calls"
    ordered = sorted(latencies_s)

    def at(q: float) -> float:
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return (f"p50 {at(0.50):7.2f} ms   p99 {at(0.99):7.2f} ms   max {1000 * ordered[-1]:7.2f} ms"
            f"   mean {1000 * statistics.fmean(ordered):6.2f} ms")  # fmt: skip


def _limit(address: str, app_id: str) -> None:
    async def run() -> None:
        bus = await MessageBus(bus_address=address).connect()
        try:
            reply = await bus.call(_call("SetLimit", "sstts", [app_id, "up", APP_RATE_BPS, 0, ""]))
            if reply.message_type is not MessageType.METHOD_RETURN:
                raise RuntimeError(f"SetLimit {app_id}: {reply.error_name} {reply.body}")
        finally:
            bus.disconnect()

    asyncio.run(run())


@contextlib.contextmanager
def _apps(pair: NetnsPair) -> Iterator[list[tuple[str, Stream]]]:
    with contextlib.ExitStack() as stack:
        apps = []
        for n in range(APP_COUNT):
            scope = stack.enter_context(
                app_scope(cgroup2_mount(), own_names.desktop_id(f"Bench{n}"))
            )
            stream = start_stream(pair, 5800 + n, "up", app_cgroup=scope, seconds=600)
            stack.callback(stream.stop)
            apps.append((own_names.app_id(f"Bench{n}"), stream))
        yield apps


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rate", type=float, default=1000.0, help="SetLimit calls per second, all clients"
    )
    parser.add_argument("--clients", type=int, default=4, help="client processes sending SetLimit")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--read-rate", type=float, default=10.0, help="ListApplications calls per second"
    )
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=30.0,
        help="how long idle CPU is measured (the kernel counts in 10 ms ticks)",
    )
    parser.add_argument(
        "--per-second", action="store_true", help="SetLimit latency for each second too"
    )
    parser.add_argument(
        "--py-spy", metavar="FILE", help="profile the helper under load with py-spy (raw stacks)"
    )
    arguments = parser.parse_args()
    if os.geteuid() != 0:
        print("helper_calls: run as root (namespaces, BPF, tc)", file=sys.stderr)
        return 1

    with (
        PrivateSystemBus() as bus,
        netns_pair() as pair,
        tempfile.TemporaryDirectory() as state_dir,
    ):
        helper = HelperProcess(bus.address, netns=pair.host_ns, state_dir=Path(state_dir), log_level="warning",
                               start_timeout_s=150)  # fmt: skip
        started = time.monotonic()
        with helper:
            startup_s = time.monotonic() - started
            pid = helper._process.pid if helper._process else 0
            print(
                f"start-up (spawn -> owns {BUS_NAME}): {startup_s:.2f} s   RSS after start: {_rss_mib(pid):.0f} MiB"
            )
            time.sleep(3.0)  # past start-up work (the first ticks, adopting sockets)
            print(
                f"idle CPU, no limits, no traffic: {_idle_cpu_percent(pid, arguments.idle_seconds):.2f}% of one core"
            )
            with _apps(pair) as apps:
                _measure(arguments, bus.address, pid, apps)
            problems = [
                line
                for line in helper.log_text().splitlines()
                if " WARNING " in line or " ERROR " in line
            ]
            for line in problems[:5]:
                print(f"helper log: {line}")
            if helper.returncode is not None:
                print(helper.log_text(), file=sys.stderr)
                return 1
    return 0


def _sequential(address: str, app_id: str, count: int) -> float:
    """Mean seconds per SetLimit, one call at a time: the helper's service time."""

    async def run() -> float:
        bus = await MessageBus(bus_address=address).connect()
        try:
            started = time.monotonic()
            for i in range(count):
                await bus.call(
                    _call("SetLimit", "sstt", [app_id, "up", APP_RATE_BPS + 1000 * (i % 50), 0])
                )
            return (time.monotonic() - started) / count
        finally:
            bus.disconnect()

    return asyncio.run(run())


def _measure(
    arguments: argparse.Namespace, address: str, pid: int, apps: list[tuple[str, Stream]]
) -> None:
    for app_id, _stream in apps:
        _limit(address, app_id)
    time.sleep(1.5)
    print(
        f"idle CPU, {APP_COUNT} limited apps with traffic: {_idle_cpu_percent(pid, arguments.idle_seconds):.2f}% of one core"
    )
    mean_s = _sequential(address, apps[0][0], 500)
    print(f"SetLimit one at a time: {1000 * mean_s:.2f} ms each = {1 / mean_s:.0f} calls/s at most")

    app_ids = [app_id for app_id, _ in apps]
    context = multiprocessing.get_context("spawn")
    results: Any = context.Queue()
    start_at = time.monotonic() + 3.0  # every client connected and waiting
    cpu_before = _cpu_seconds(pid)
    processes = [
        context.Process(target=_setter, args=(address, app_ids, arguments.rate / arguments.clients,
                                              arguments.seconds, start_at, n, results))
        for n in range(arguments.clients)
    ]  # fmt: skip
    processes.append(context.Process(target=_reader, args=(address, arguments.read_rate,
                                                           arguments.seconds, start_at, results)))  # fmt: skip
    for process in processes:
        process.start()
    profiler = None
    if arguments.py_spy:
        beside_python = Path(sys.executable).parent / "py-spy"
        py_spy = str(beside_python) if beside_python.exists() else "py-spy"
        profiler = subprocess.Popen([py_spy, "record", "-p", str(pid), "-d", str(int(arguments.seconds)),
                                     "-r", "200", "-f", "raw", "-o", arguments.py_spy],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    outcomes = [results.get(timeout=arguments.seconds + 120) for _ in processes]
    for process in processes:
        process.join(30)
    if profiler is not None:
        profiler.wait(60)
    busy_cpu = 100 * (_cpu_seconds(pid) - cpu_before) / (time.monotonic() - start_at)
    reads = [r for kind, o in outcomes if kind == "read" for r in o]
    writes = [r for kind, o in outcomes if kind == "set" for r in o]
    set_failed = sum(1 for _, error, _ in writes if error)
    print(f"SetLimit: {len(writes)} calls from {arguments.clients} clients at {arguments.rate:.0f}/s "
          f"for {arguments.seconds:.0f} s, {set_failed} failed")  # fmt: skip
    print(f"  latency  {_percentiles([lat for lat, _, _ in writes])}")
    if arguments.per_second:
        for second in range(int(arguments.seconds)):
            in_second = [lat for lat, _, at in writes if second <= at - start_at < second + 1]
            print(f"    second {second}: {_percentiles(in_second)}")
    for error, count in Counter(error for _, error, _ in writes + reads if error).most_common(3):
        print(f"  {count} x {error}")
    print(
        f"ListApplications meanwhile: {len(reads)} calls, {sum(1 for _, error, _ in reads if error)} failed"
    )
    print(f"  latency  {_percentiles([lat for lat, _, _ in reads])}")
    print(
        f"helper CPU under load: {busy_cpu:.0f}% of one core   RSS after load: {_rss_mib(pid):.0f} MiB"
    )


if __name__ == "__main__":
    sys.exit(main())
