"""Callers that load the helper, for the flood test and bench/helper_flood.py.

Flooders: client processes running as an unprivileged uid (setpriv, as a
local attacker would) that keep SetLimit and ClearLimit calls for ids no
application has in flight. Timed calls: a legitimate root caller's calls at
a fixed pace, each timed from when it was due (open loop: a helper that
falls behind shows it, a closed-loop caller would quietly call less)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from chadthrottle.client import HelperClient, HelperClientError

from tests.support import own_names

NOBODY = 65534
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Runs as the flooding uid: argv address, client number, seconds, calls in
# flight, calls per second (0: as fast as the helper answers), leave (1: at the
# deadline report what was answered and leave the bus, the calls still waiting
# unanswered; 0: wait for their answers first). Connects, prints
# {"ready": true}, waits for a line on stdin; if that line is "granted", first
# waits (up to 15 s) until polkit says yes; prints {"flooding": true,
# "allowed": whether polkit said yes (or nothing was to be granted)}; then calls
# for seconds (at most that many in flight) and prints {"calls": n,
# "outcomes": {name: count}}.
FLOOD_CLIENT = r"""
import asyncio, collections, json, sys, time
from chadthrottle.client import HelperClient, HelperClientError
from chadthrottle.contract import Direction

async def main(address, client, seconds, in_flight, rate, leave):
    outcomes = collections.Counter()
    async with HelperClient(address, timeout_s=60) as helper:
        await helper.connect()
        print(json.dumps({"ready": True}), flush=True)
        granted = (await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)).strip() == "granted"
        probe_until = time.monotonic() + 15
        allowed = not granted
        while granted and time.monotonic() < probe_until:
            try:
                await helper.clear_limit(f"exe:/nonexistent/probe-{client}")
            except HelperClientError as error:
                if not error.name.endswith("NotAuthorized"):
                    allowed = True
                    break
            await asyncio.sleep(0.1)
        print(json.dumps({"flooding": True, "allowed": allowed}), flush=True)
        start = time.monotonic()
        deadline = start + seconds
        slots = asyncio.Semaphore(in_flight)
        pending = set()

        async def one(i):
            app_id = f"exe:/nonexistent/flood-{client}-{i}"
            try:
                if i % 2:
                    await helper.clear_limit(app_id)
                else:
                    await helper.set_limit(app_id, Direction.UP, 1_000_000)
                outcomes["ok"] += 1
            except HelperClientError as error:
                outcomes[error.name.rsplit(".", 1)[-1]] += 1
            finally:
                slots.release()

        i = 0
        while time.monotonic() < deadline:
            if rate:
                await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            await slots.acquire()
            task = asyncio.ensure_future(one(i))
            pending.add(task)
            task.add_done_callback(pending.discard)
            i += 1
        if leave:
            report = {"calls": sum(outcomes.values()), "outcomes": dict(outcomes)}
            for task in list(pending):
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        else:
            await asyncio.gather(*pending)
    if not leave:
        report = {"calls": sum(outcomes.values()), "outcomes": outcomes}
    print(json.dumps(report), flush=True)

asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]),
                 sys.argv[6:] == ["1"]))
"""
RULES_DIR = Path("/etc/polkit-1/rules.d")


def setpriv_argv(uid: int) -> list[str]:
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]


def as_uid_env(bus_address: str) -> dict[str, str]:
    """A small environment for a process of another uid (no root's HOME)."""
    env = {
        "DBUS_SYSTEM_BUS_ADDRESS": bus_address,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PATH": "/usr/bin:/bin",
    }
    if "PYTHONPATH" in os.environ:  # a checkout other than the installed one
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


@dataclass
class Flood:
    """Flooding client processes, connected and waiting for go()."""

    processes: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def go(self, granted: bool = False) -> None:
        """Start calling (granted: once polkit allows each client limit-own)."""
        for process in self.processes:
            assert process.stdin is not None
            process.stdin.write("granted\n" if granted else "go\n")
            process.stdin.flush()

    def flooding(self) -> None:
        """Wait until every client calls, each past its wait for polkit after
        go(granted=True); raise if polkit did not say yes to one within 15 s."""
        for process in self.processes:
            assert process.stdout is not None
            line = process.stdout.readline()
            if '"flooding"' not in line:
                raise RuntimeError(f"a flooding client did not start: {line}{process.stdout.read()[-2000:]}")  # fmt: skip
            if not json.loads(line)["allowed"]:
                raise RuntimeError(
                    f"polkit did not grant flooding client {process.pid} its actions"
                )

    def results(self, timeout_s: float) -> tuple[int, dict[str, int]]:
        """(calls answered, answers by kind) over all clients."""
        calls, outcomes = 0, {}
        deadline = time.monotonic() + timeout_s
        for process in self.processes:
            out, _ = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
            report = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
            if process.returncode != 0 or "calls" not in report:
                raise RuntimeError(
                    f"a flooding client failed (exit {process.returncode}): {out[-2000:]}"
                )
            calls += report["calls"]
            for name, count in report["outcomes"].items():
                outcomes[name] = outcomes.get(name, 0) + count
        return calls, outcomes


@contextlib.contextmanager
def flood(bus_address: str, clients: int, seconds: float, in_flight: int, rate_per_s: float = 0.0,
          uid: int = NOBODY, leave_at_deadline: bool = False) -> Iterator[Flood]:  # fmt: skip
    """Start the flooding clients (each rate_per_s calls a second, 0: as fast
    as answered) and wait until each is connected; every one is killed on
    leaving, whatever happened. leave_at_deadline: each counts only what was
    answered within its seconds and then leaves the bus, its paced calls
    still waiting (the helper drops them); otherwise it waits for them, one
    per FAILURE_DELAY_S (in_flight of them: 6.4 s for 64)."""
    started = Flood()
    try:
        for n in range(clients):
            argv = [*setpriv_argv(uid), sys.executable, "-c", FLOOD_CLIENT, bus_address, str(n), str(seconds),
                    str(in_flight), str(rate_per_s), "1" if leave_at_deadline else "0"]  # fmt: skip
            started.processes.append(subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                                      stderr=subprocess.STDOUT, text=True,
                                                      env=as_uid_env(bus_address)))  # fmt: skip
        for process in started.processes:
            assert process.stdout is not None
            line = process.stdout.readline()
            if "ready" not in line:
                raise RuntimeError(
                    f"a flooding client did not connect: {line}{process.stdout.read()[-2000:]}"
                )
        yield started
    finally:
        for process in started.processes:
            if process.poll() is None:
                process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired, ValueError, OSError):
                process.communicate(timeout=10)


@contextlib.contextmanager
def polkit_grant(pids: list[int], actions: list[str]) -> Iterator[Path]:
    """A polkit rule allowing these actions to these processes only (other
    test sessions share the rules directory), removed on leaving. Named with
    the session's prefix: another session's leak check took a flood test's
    rule for its own leftover (run beside it, 2026-12-05)."""
    path = RULES_DIR / f"10-{own_names.TEST_NAME_PREFIX}flood-{secrets.token_hex(4)}.rules"
    path.write_text(
        "// Written by ChadThrottle's flood test or bench; removed when it ends.\n"
        "polkit.addRule(function(action, subject) {\n"
        f"    if ({json.dumps(pids)}.indexOf(subject.pid) >= 0 && {json.dumps(actions)}.indexOf(action.id) >= 0) {{\n"
        "        return polkit.Result.YES;\n"
        "    }\n"
        "});\n"
    )
    path.chmod(0o644)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


Timed = tuple[
    str, float, str
]  # (kind, seconds from when it was due to its answer, "" or the error)


async def paced_calls(bus_address: str, calls: list[tuple[str, Callable[[HelperClient], Awaitable[object]]]],
                      rate_per_s: float, seconds: float, start_at: float) -> list[Timed]:  # fmt: skip
    """Make calls[i % len(calls)] at start_at + i / rate_per_s (monotonic), for seconds."""

    async def timed(kind: str, call: Awaitable[object], due: float) -> Timed:
        try:
            await call
            return kind, time.monotonic() - due, ""
        except HelperClientError as error:
            return kind, time.monotonic() - due, error.name

    async with HelperClient(bus_address, timeout_s=60) as client:
        await client.get_api_version()  # connected before the first due time
        tasks = []
        for i in range(int(rate_per_s * seconds)):
            due = start_at + i / rate_per_s
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            kind, make = calls[i % len(calls)]
            tasks.append(asyncio.ensure_future(timed(kind, make(client), due)))
        return list(await asyncio.gather(*tasks))


def percentile_ms(latencies_s: list[float], q: float) -> float:
    if not latencies_s:
        return float("nan")
    ordered = sorted(latencies_s)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0
