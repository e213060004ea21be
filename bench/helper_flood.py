"""How the real helper holds up against a local user who loads it on purpose
(issue 20), while root makes legitimate calls:

- flood: clients running as uid 65534 keep SetLimit/ClearLimit calls for
  ids no application has in flight, with no polkit permission at all
  (denied before anything is looked up) and, "flood-granted", with limit-own
  granted (a rule naming their pids), so that every call is looked up;
- churn: one unprivileged uid starts thousands of short-lived programs, each
  a different executable (so a different application) that opens a socket,
  sends one datagram and lives a few milliseconds more.

Meanwhile a root client calls ListApplications and SetLimit on a real,
limited application at a fixed pace (open loop, tests/support/flood.py); the
bench prints those calls' latency, the helper's CPU, and for the churn its
RSS before, right after, and once the exited programs have left the
listing (listing.EXITED_VISIBLE_S), over several rounds.

    sudo .venv/bin/python bench/helper_flood.py                 # all three, ~4 min
    sudo .venv/bin/python bench/helper_flood.py --phases flood --flood-clients 8 --seconds 10
    sudo .venv/bin/python bench/helper_flood.py --phases churn --programs 5000 --churn-seconds 5

Targets: the legitimate calls' p99 under 20 ms in both; the helper's RSS
back near where it was once the churn is over (not growing per round).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chadthrottle.client import HelperClient
from chadthrottle.contract import BUS_NAME, OBJECT_PATH, Action, Direction
from chadthrottle.helper.engine.listing import EXITED_VISIBLE_S
from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.standalone import HelperProcess, PrivateSystemBus
from dbus_fast import Message

from tests.support import own_names
from tests.support.flood import (
    NOBODY,
    Timed,
    as_uid_env,
    cpu_seconds,
    flood,
    paced_calls,
    percentile_ms,
    polkit_grant,
    rss_mib,
    setpriv_argv,
)
from tests.support.netns import NetnsPair, app_scope, netns_pair, nsenter_argv, start_stream
from tests.support.waiting import eventually

# This process's id: a spawned process (root's calls, _start_legit) imports
# this module anew and would draw another session tag, so it is handed this one
# (it drew its own until flake33: every root SetLimit was NoSuchApplication).
APP_ID = own_names.app_id("FloodBench")
APP_RATE_BPS = 1024 * 1024

# One short-lived program: a socket, one datagram to the peer's discard port,
# then it lives on for argv[2] microseconds (as a short download would) and exits.
PROGRAM_C = r"""
#include <arpa/inet.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
int main(int argc, char **argv) {
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(9)};
    char payload[64] = {0};
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0 || argc < 3 || inet_pton(AF_INET, argv[1], &to.sin_addr) != 1)
        return 1;
    if (sendto(s, payload, sizeof payload, 0, (struct sockaddr *)&to, sizeof to) < 0)
        return 1;
    usleep(atoi(argv[2]));
    return 0;
}
"""

# Runs as the churning uid: argv directory, count, start (monotonic), rate,
# peer address, same program (0/1), lifetime (us); starts directory/pNNNNN at
# the pace, at most 256 at a time; prints {"seconds": ..., "failed": ...}.
LAUNCHER = r"""
import json, os, sys, time
directory, count, start, rate, peer, same, lifetime_us = sys.argv[1:8]
count, start, rate, same = int(count), float(start), float(rate), same == "1"
running = failed = 0

def reap(block):
    global running, failed
    while running:
        pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
        if pid == 0:
            return
        running -= 1
        failed += status != 0
        if block:
            return

for i in range(count):
    delay = start + i / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    reap(False)
    while running >= 256:
        reap(True)
    path = f"{directory}/p{0 if same else i:05d}"
    os.posix_spawn(path, [path, peer, lifetime_us], {})
    running += 1
while running:
    reap(True)
print(json.dumps({"seconds": time.monotonic() - start, "failed": failed}), flush=True)
"""


def _legit(address: str, app_id: str, rate_per_s: float, seconds: float, start_at: float,
           results: Any, bus_probes: bool = False) -> None:  # fmt: skip
    """Root's calls: ListApplications and SetLimit on the real application, in
    turn; bus_probes: also Peer.Ping to the helper (answered on its event loop:
    no authorization, no engine) and GetId to dbus-daemon, to tell where a
    slow call waited."""
    changes = iter(range(10**9))

    def set_limit(client: HelperClient) -> Any:
        return client.set_limit(
            app_id, Direction.UP, APP_RATE_BPS + 1000 * (next(changes) % 50), interactive=False
        )

    def probe(destination: str, path: str, interface: str, member: str) -> Any:
        def call(client: HelperClient) -> Any:
            assert client._bus is not None  # connected by paced_calls before the first
            return client._bus.call(Message(destination=destination, path=path,
                                            interface=interface, member=member))  # fmt: skip

        return call

    calls = [
        ("ListApplications", lambda client: client.list_applications()),
        ("SetLimit", set_limit),
    ]
    if bus_probes:
        calls += [
            ("Ping", probe(BUS_NAME, OBJECT_PATH, "org.freedesktop.DBus.Peer", "Ping")),
            ("GetId", probe("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                            "GetId")),
        ]  # fmt: skip
    results.put(asyncio.run(paced_calls(address, calls, rate_per_s, seconds, start_at)))


def _start_legit(
    address: str, rate_per_s: float, seconds: float, start_at: float, bus_probes: bool = False
) -> tuple[Any, Any]:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(
        target=_legit, args=(address, APP_ID, rate_per_s, seconds, start_at, results, bus_probes)
    )
    process.start()
    return process, results


def _report_legit(timed: list[Timed]) -> float:
    """Print each kind's latency; returns the worst p99 (ms) of root's calls
    (not the bus probes')."""
    worst = 0.0
    for kind in ("ListApplications", "SetLimit", "Ping", "GetId"):
        latencies = [latency for k, latency, _ in timed if k == kind]
        if not latencies and kind in ("Ping", "GetId"):
            continue
        errors = [error for k, _, error in timed if k == kind and error]
        p99 = percentile_ms(latencies, 0.99)
        worst = max(worst, p99) if kind in ("ListApplications", "SetLimit") else worst
        print(f"  root {kind:16} {len(latencies):4} calls, {len(errors)} failed   "
              f"p50 {percentile_ms(latencies, 0.50):7.2f} ms   p99 {p99:7.2f} ms   "
              f"max {percentile_ms(latencies, 1.0):7.2f} ms")  # fmt: skip
        for error in sorted(set(errors))[:3]:
            print(f"    {errors.count(error)} x {error}")
    return worst


def _machine_jiffies() -> tuple[int, int]:
    """(busy, all) CPU time of the whole machine so far, from /proc/stat."""
    fields = Path("/proc/stat").read_text().split()[1:9]
    user, nice, system, idle, iowait, irq, softirq, steal = (int(value) for value in fields)
    busy = user + nice + system + irq + softirq + steal
    return busy, busy + idle + iowait


def _machine_busy(before: tuple[int, int]) -> str:
    busy, total = _machine_jiffies()
    share = (busy - before[0]) / max(1, total - before[1])
    return f"machine {100 * share:.0f}% busy ({os.cpu_count()} cores)"


def _bus_processes(bus: PrivateSystemBus) -> dict[str, int]:
    """The pids of this bench's dbus-daemon and polkitd (found by their bus)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            name = Path(argv[0].decode(errors="replace")).name
            if (name == "dbus-daemon" and str(bus.directory).encode() in b" ".join(argv)) or (
                name == "polkitd" and bus.address.encode() in (entry / "environ").read_bytes()
            ):
                found[name] = int(entry.name)
    return found


def _cpu_of(pids: dict[str, int], before: dict[str, float], seconds: float) -> str:
    return "   ".join(
        f"{name} {100 * (cpu_seconds(pid) - before[name]) / seconds:.0f}%"
        for name, pid in pids.items()
    )


def _quiet_phase(arguments: argparse.Namespace, address: str, pid: int) -> None:
    """Root's calls with nothing else going on, to compare with."""
    start_at = time.monotonic() + 2.0
    legit, results = _start_legit(address, arguments.legit_rate, arguments.quiet_seconds, start_at,
                                  arguments.bus_probes)  # fmt: skip
    time.sleep(max(0.0, start_at - time.monotonic()))
    cpu_before, machine_before = cpu_seconds(pid), _machine_jiffies()
    timed = results.get(timeout=arguments.quiet_seconds + 120)
    cpu = 100 * (cpu_seconds(pid) - cpu_before) / (time.monotonic() - start_at)
    legit.join(30)
    print(f"quiet: root's calls alone for {arguments.quiet_seconds:.0f} s")
    _report_legit(timed)
    print(f"  helper CPU: {cpu:.0f}% of one core   {_machine_busy(machine_before)}")


def _listed(address: str) -> set[str]:
    async def run() -> set[str]:
        async with HelperClient(address, timeout_s=60) as client:
            return {app.id for app in await client.list_applications()}

    return asyncio.run(run())


def _list_count(address: str) -> int:
    return len(_listed(address))


def _limit(address: str) -> None:
    async def run() -> None:
        async with HelperClient(address, timeout_s=60) as client:
            await client.set_limit(APP_ID, Direction.UP, APP_RATE_BPS, interactive=False)

    asyncio.run(run())


@contextlib.contextmanager
def _profiled(prefix: str | None, phase: str, pid: int, seconds: float) -> Iterator[None]:
    """py-spy (raw stacks) on the helper for seconds, if asked."""
    profiler = None
    if prefix:
        beside_python = Path(sys.executable).parent / "py-spy"
        py_spy = str(beside_python) if beside_python.exists() else "py-spy"
        profiler = subprocess.Popen([py_spy, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "200", "--gil",
                                     "-f", "raw", "-o", f"{prefix}-{phase}.txt"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        yield
    finally:
        if profiler is not None:
            profiler.wait(120)


def _flood_phase(
    arguments: argparse.Namespace, address: str, pid: int, granted: bool, others: dict[str, int]
) -> float:
    """granted: a polkit rule lets the flooding clients limit their own
    applications, so each call gets past polkit to a lookup of the id."""
    who = "granted limit-own" if granted else "no permission"
    pace = f"{arguments.flood_rate:.0f} calls/s" if arguments.flood_rate else "as fast as answered"
    print(f"flood: {arguments.flood_clients} clients as uid {NOBODY} ({who}), {pace}, at most {arguments.in_flight} "
          f"in flight each, unknown ids, {arguments.seconds:.0f} s")  # fmt: skip
    flood_s = arguments.seconds + 4.0  # from go, past the end of root's calls
    with contextlib.ExitStack() as stack:
        flooders = stack.enter_context(flood(address, arguments.flood_clients, flood_s, arguments.in_flight,
                                             arguments.flood_rate / arguments.flood_clients))  # fmt: skip
        if granted:
            stack.enter_context(polkit_grant(flooders.pids, [Action.LIMIT_OWN.value]))
        flooders.go(granted)
        start_at = time.monotonic() + 2.0  # polkitd has read the rule, the flood runs
        legit, results = _start_legit(address, arguments.legit_rate, arguments.seconds, start_at,
                                      arguments.bus_probes)  # fmt: skip
        time.sleep(max(0.0, start_at - time.monotonic()))
        cpu_before, machine_before = cpu_seconds(pid), _machine_jiffies()
        others_before = {name: cpu_seconds(other) for name, other in others.items()}
        with _profiled(
            arguments.py_spy, "flood-granted" if granted else "flood", pid, arguments.seconds
        ):
            timed = results.get(timeout=arguments.seconds + 120)
        cpu = 100 * (cpu_seconds(pid) - cpu_before) / (time.monotonic() - start_at)
        machine = _machine_busy(machine_before)
        others_cpu = _cpu_of(others, others_before, time.monotonic() - start_at)
        calls, outcomes = flooders.results(timeout_s=flood_s + 120)
    legit.join(30)
    answers = ", ".join(f"{count} {name}" for name, count in sorted(outcomes.items()))
    print(f"  flood answered: {calls} calls = {calls / flood_s:.0f}/s ({answers})")
    worst = _report_legit(timed)
    print(
        f"  helper CPU: {cpu:.0f}% of one core   {others_cpu}   {machine}   RSS {rss_mib(pid):.0f} MiB"
    )
    return worst


@contextlib.contextmanager
def _programs(count: int) -> Iterator[Path]:
    """count hard links of one small program (count executables), readable by all."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise SystemExit("helper_flood: the churn needs a C compiler (cc)")
    directory = Path(tempfile.mkdtemp(prefix="chadthrottle-churn-"))
    try:
        directory.chmod(0o755)
        (directory / "program.c").write_text(PROGRAM_C)
        build = [compiler, "-O2", "-o", str(directory / "p00000"), str(directory / "program.c")]
        if (
            subprocess.run([*build, "-static"], capture_output=True).returncode != 0
        ):  # static: a cheaper exec
            subprocess.run(build, check=True)
        (directory / "p00000").chmod(0o755)
        for i in range(1, count):
            os.link(directory / "p00000", directory / f"p{i:05d}")
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _churn_phase(
    arguments: argparse.Namespace, address: str, pid: int, pair: NetnsPair, programs: Path
) -> float:
    rate = arguments.programs / arguments.churn_seconds
    worst = 0.0
    for round_number in range(1, arguments.rounds + 1):
        rss_before = rss_mib(pid)
        tail_s = 5.0  # the ticks that notice the exits, and a launcher that falls behind
        start_at = time.monotonic() + 3.0
        window_s = arguments.churn_seconds + tail_s
        legit, results = _start_legit(address, arguments.legit_rate, window_s, start_at,
                                      arguments.bus_probes)  # fmt: skip
        argv = nsenter_argv(pair.host_ns, [*setpriv_argv(NOBODY), sys.executable, "-c", LAUNCHER, str(programs),
                                           str(arguments.programs), str(start_at), str(rate), pair.peer_addr,
                                           "1" if arguments.same_program else "0",
                                           str(round(1000 * arguments.lifetime_ms))])  # fmt: skip
        launcher = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    env=as_uid_env(address))  # fmt: skip
        try:
            time.sleep(max(0.0, start_at - time.monotonic()))
            cpu_before, machine_before = cpu_seconds(pid), _machine_jiffies()
            with _profiled(arguments.py_spy if round_number == 1 else None, "churn", pid, window_s):
                timed = results.get(timeout=window_s + 120)
            cpu = 100 * (cpu_seconds(pid) - cpu_before) / (time.monotonic() - start_at)
            machine = _machine_busy(machine_before)
            out, _ = launcher.communicate(timeout=120)
        finally:
            if launcher.poll() is None:
                launcher.kill()
                launcher.wait()
        legit.join(30)
        report = json.loads(out.strip().splitlines()[-1])
        ended = start_at + report["seconds"]
        kind = "one program" if arguments.same_program else "each its own executable"
        print(f"churn round {round_number}: {arguments.programs} programs as uid {NOBODY} ({kind}, "
              f"{arguments.lifetime_ms:.0f} ms each) in "
              f"{report['seconds']:.1f} s, {report['failed']} failed")  # fmt: skip
        worst = max(worst, _report_legit(timed))
        rss_after, listed_after = rss_mib(pid), _list_count(address)
        print(f"  helper CPU: {cpu:.0f}% of one core over {window_s:.0f} s   {machine}")
        print(
            f"  RSS {rss_before:.1f} -> {rss_after:.1f} MiB   applications listed: {listed_after}"
        )
        time.sleep(max(0.0, ended + EXITED_VISIBLE_S + 5.0 - time.monotonic()))
        print(f"  {EXITED_VISIBLE_S + 5:.0f} s after: RSS {rss_mib(pid):.1f} MiB   "
              f"applications listed: {_list_count(address)}")  # fmt: skip
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--phases",
        default="flood,flood-granted,churn",
        help="comma-separated: flood (no permission), flood-granted (limit-own), churn",
    )
    parser.add_argument("--flood-clients", type=int, default=8)
    parser.add_argument(
        "--in-flight",
        type=int,
        default=8,
        help="calls each flooding client keeps waiting (at most)",
    )
    parser.add_argument(
        "--flood-rate",
        type=float,
        default=0.0,
        help="calls per second from all flooding clients (0: as fast as the helper answers)",
    )
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="how long the flood is measured"
    )
    parser.add_argument(
        "--programs", type=int, default=5000, help="short-lived programs per churn round"
    )
    parser.add_argument(
        "--churn-seconds", type=float, default=5.0, help="over how long they are started"
    )
    parser.add_argument(
        "--lifetime-ms", type=float, default=20.0, help="how long each program runs"
    )
    parser.add_argument(
        "--same-program", action="store_true", help="one executable for all (one application)"
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="churn rounds (memory must not grow per round)"
    )
    parser.add_argument(
        "--legit-rate",
        type=float,
        default=20.0,
        help="root's calls per second (the kinds in turn; with --bus-probes a quarter each)",
    )
    parser.add_argument(
        "--quiet-seconds", type=float, default=5.0, help="root's calls alone first (0: skip)"
    )
    parser.add_argument(
        "--bus-probes",
        action="store_true",
        help="root also pings the helper (its event loop) and dbus-daemon, in turn with its calls",
    )
    parser.add_argument(
        "--py-spy", metavar="PREFIX", help="profile the helper: PREFIX-flood.txt, PREFIX-churn.txt"
    )
    arguments = parser.parse_args()
    phases = set(arguments.phases.split(","))
    if os.geteuid() != 0:
        print("helper_flood: run as root (namespaces, BPF, tc, setpriv)", file=sys.stderr)
        return 1
    if arguments.programs > 99999:
        parser.error("--programs: at most 99999")

    with contextlib.ExitStack() as stack:
        bus = stack.enter_context(PrivateSystemBus())
        pair = stack.enter_context(netns_pair())
        state_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        programs = stack.enter_context(_programs(arguments.programs)) if "churn" in phases else None
        helper = stack.enter_context(HelperProcess(bus.address, netns=pair.host_ns, state_dir=state_dir,
                                                   log_level="warning", start_timeout_s=150))  # fmt: skip
        pid = helper._process.pid if helper._process else 0
        scope = stack.enter_context(app_scope(cgroup2_mount(), APP_ID.removeprefix("app:")))
        stream = start_stream(pair, 5900, "up", app_cgroup=scope, seconds=900)
        stack.callback(stream.stop)
        if not eventually(lambda: APP_ID in _listed(bus.address), 30):
            print(f"helper_flood: {APP_ID} (the stream's) never listed", file=sys.stderr)
            return 1
        _limit(bus.address)
        print(
            f"helper owns {BUS_NAME}; RSS {rss_mib(pid):.1f} MiB; {_list_count(bus.address)} applications listed"
        )
        worst = 0.0
        if arguments.quiet_seconds > 0:
            _quiet_phase(arguments, bus.address, pid)
        if "flood" in phases:
            worst = max(
                worst, _flood_phase(arguments, bus.address, pid, False, _bus_processes(bus))
            )
        if "flood-granted" in phases:
            worst = max(worst, _flood_phase(arguments, bus.address, pid, True, _bus_processes(bus)))
        if "churn" in phases and programs is not None:
            worst = max(worst, _churn_phase(arguments, bus.address, pid, pair, programs))
        problems = [
            line
            for line in helper.log_text().splitlines()
            if " WARNING " in line or " ERROR " in line
        ]
        for line in problems[:5]:
            print(f"helper log: {line}")
        print(f"worst p99 of root's calls: {worst:.1f} ms (target 20 ms)")
        if helper.returncode is not None:
            print(helper.log_text(), file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
