"""A user's limited program cannot make root's calls wait by the number of
descriptors its processes hold.

The attack (rights28): nobody limits their own program, which holds 19,000
descriptors and forks a child every 50 ms (each child inherits them and
lives a second). The helper tags every new process of a limited program by
walking its descriptor table, under the engine's lock: the tick held it
2-2.4 s, and root's ListApplications waited up to 2.4 s. And each new rate
on such a program capped every socket of its processes again, in the call;
each clear untagged them all, each new rule retagged them, each tighter
download limit clamped their windows first, all in the call. Every walk a
rule change sets off now takes at most a budget per call
(helper/kernel/pending_walks.py), the rest at the next ticks. The real
helper and polkitd; nobody's client granted monitor and limit-own; root's
ListApplications timed for WATCH_S."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from chadthrottle.client import HelperClient
from chadthrottle.usage_contract import UsageResolution

from tests.e2e.conftest import Stack
from tests.support.helper_calls import call_helper
from tests.support.netns import nsenter_argv
from tests.support.other_users import ClientAs, client_as, granted
from tests.support.requirements import require_program
from tests.support.waiting import eventually

NOBODY = 65534
DESCRIPTORS = 19_000
CHILD_LIFE_S = 1.0
FORKER = (
    "import os, socket, sys, time\n"
    "null = os.open('/dev/null', os.O_RDONLY)\n"
    "held = [os.dup(null) for _ in range(int(sys.argv[1]))]\n"
    "sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
    "print('ready', flush=True)\n"
    "forks = int(sys.argv[3])  # 0: forever\n"
    "while True:\n"
    "    forks -= 1\n"
    "    if forks == -1:\n"
    "        time.sleep(600)\n"
    "    if os.fork() == 0:\n"
    "        time.sleep(float(sys.argv[2]))\n"
    "        os._exit(0)\n"
    "    time.sleep(0.05)\n"
    "    try:\n"
    "        while os.waitpid(-1, os.WNOHANG)[0]:\n"
    "            pass\n"
    "    except ChildProcessError:\n"
    "        pass\n"
)
WATCH_S = 5.0
# Root's longest wait. Before: 1.05-1.09 s against the forks (2.2-2.4 s in
# rights28), 1.55-1.64 s against the rate changes, ~1.5 s against a set and
# clear in turn (rights30); after 0.08-0.17 s: the walks' budget (0.1 s) and a
# tick's own work, other tests beside (docs/benchmarks/helper-calls.md).
LONGEST_WAIT_S = 0.5

# Root's wait is a latency: the other lane's load moved it past the bound at
# load 3.3-9.7 with the code right (0.52-0.63 s, against 1.05-2.41 s without
# the bound), so it is judged with no other test beside it.
pytestmark = pytest.mark.machine_alone


@pytest.fixture
def forker(request: pytest.FixtureRequest, stack: Stack) -> Iterator[tuple[str, int]]:
    """nobody's program, forking (the test's parameter: (children's life,
    how many; 0: forever)); its application id and pid. In the helper's
    namespace: its sockets in the machine's own had the helper shape eth0,
    and two lanes' helpers left a clsact there (clsact34)."""
    life_s, forks = getattr(request, "param", (CHILD_LIFE_S, 0))
    folder = Path(tempfile.mkdtemp(prefix="ct-forker-"))
    folder.chmod(0o755)
    script = folder / "forker.py"
    script.write_text(FORKER)
    script.chmod(0o644)
    argv = nsenter_argv(stack.pair.host_ns, [
        require_program("setpriv"), f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
        sys.executable, str(script), str(DESCRIPTORS), str(life_s), str(forks)])  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        yield f"script:{script}", process.pid
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # its session: the children too
        process.wait()
        if process.stdout is not None:
            process.stdout.close()
        gone = lambda: not _session_of(process.pid)  # noqa: E731
        assert eventually(gone, 10), "the forker's children outlived it"
        shutil.rmtree(folder)


def _session_of(sid: int) -> list[int]:
    """The processes of session sid that have not exited. One that exited is
    a zombie until its parent reaps it, and the forker's children, orphaned
    by its kill, are reaped by PID 1: 1.2-1.4 s after the kill on these
    machines (their init polls), where an exited process holds no
    descriptor, socket or memory any more: counted, each teardown waited
    that out."""
    found = []
    for name in os.listdir("/proc"):
        try:
            if name.isdigit() and os.getsid(int(name)) == sid and not _exited(int(name)):
                found.append(int(name))
        except ProcessLookupError:
            continue
    return found


def _exited(pid: int) -> bool:
    """A zombie (or dead) process: /proc/PID/stat's state after the name."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:  # gone meanwhile
        return True


@pytest.fixture
def nobody(stack: Stack) -> Iterator[ClientAs]:
    with client_as(stack.bus_address, NOBODY) as client, granted(client):
        yield client


def test_a_users_forking_program_of_many_descriptors_holds_up_no_root_call(
    stack: Stack, nobody: ClientAs, forker: tuple[str, int]
) -> None:
    app_id, pid = forker
    assert nobody.ask("set", f"pid:{pid}", "up", 1_000_000) == {"ok": app_id}
    try:
        _roots_waits_within(stack)
    finally:
        assert nobody.ask("clear", app_id) == {"ok": app_id}


def _roots_waits_within(stack: Stack, app_id: str = "") -> list[str]:
    """Root's ListApplications every 0.2 s for WATCH_S: each answered
    within LONGEST_WAIT_S; what app_id's download limit's reach said."""
    waits: list[float] = []
    reaches: list[str] = []
    until = time.monotonic() + WATCH_S
    while time.monotonic() < until:
        started = time.monotonic()
        apps = call_helper(stack.bus_address, lambda c: c.list_applications())
        waits.append(time.monotonic() - started)
        reaches += [a.down_limit_reach for a in apps if a.id == app_id]
        time.sleep(0.2)
    load = os.getloadavg()[0]
    print(f"root's ListApplications: {len(waits)} calls, median {statistics.median(waits):.3f} s, "
          f"longest {max(waits):.3f} s (load {load:.1f})")  # fmt: skip
    assert max(waits) < LONGEST_WAIT_S, f"root waited {max(waits):.2f} s (load {load:.1f})"
    return reaches


@pytest.mark.parametrize("forker", [(600.0, 8)], indirect=True)
def test_a_users_rate_changes_on_a_program_of_many_descriptors_hold_up_no_root_call(
    stack: Stack, nobody: ClientAs, forker: tuple[str, int]
) -> None:
    """A new rate changes the pacing of every TCP socket of the program's
    9 processes: each of nobody's SetLimit calls capped them all again, in
    the call, under the lock (a user's successful calls are not paced)."""
    app_id, pid = forker
    assert nobody.ask("set", f"pid:{pid}", "up", 1_000_000) == {"ok": app_id}
    try:
        # the first tags' walks done (listed while they wait, since the budget)
        def walked() -> bool:
            # each of nobody's calls walks a budget's worth too, not only each tick's
            assert nobody.ask("set", app_id, "up", 1_000_000) == {"ok": app_id}
            apps = call_helper(stack.bus_address, lambda c: c.list_applications())
            return not any("not held to it yet" in a.up_limit_reach for a in apps if a.id == app_id)

        assert eventually(walked, 30), "the first tags' walks did not end"
        stop, changes = threading.Event(), [0]

        def change_rates() -> None:
            while not stop.is_set():
                rate = 1_000_000 + 1000 * (changes[0] % 2)
                assert nobody.ask("set", app_id, "up", rate) == {"ok": app_id}
                changes[0] += 1

        _in_turn_meanwhile(stack, change_rates, stop, changes)
    finally:
        assert nobody.ask("clear", app_id) == {"ok": app_id}


def _in_turn_meanwhile(stack: Stack, change: Callable[[], None], stop: threading.Event,
                       changes: list[int], app_id: str = "") -> list[str]:  # fmt: skip
    """Root's waits within bounds while change() runs in a thread; what
    app_id's download reach said meanwhile."""
    changer = threading.Thread(target=change, daemon=True)
    changer.start()
    try:
        reaches = _roots_waits_within(stack, app_id)
    finally:
        stop.set()
        changer.join(30)
    print(f"nobody's changes meanwhile: {changes[0]}")
    assert changes[0] >= 2, "nobody's changes did not get through: nothing proved"
    return reaches


@pytest.mark.parametrize("forker", [(600.0, 8)], indirect=True)
def test_a_users_rules_set_cleared_and_tightened_in_turn_hold_up_no_root_call(
    stack: Stack, nobody: ClientAs, forker: tuple[str, int]
) -> None:
    """On the program's 9 processes, each clear untagged every socket in
    the call, each set tagged them again, and each tighter download limit
    clamped their windows before it landed, all under the lock (root's
    calls waited 1.5 s). Now they wait like first tags, the old slot held
    until walked, the clamps for the budget and the rest after, the reach
    saying so meanwhile. One program and one watch for both: the test's
    own time stays short."""
    app_id, pid = forker
    assert nobody.ask("set", f"pid:{pid}", "up", 1_000_000) == {"ok": app_id}
    stop, changes = threading.Event(), [0]

    def in_turn() -> None:
        while not stop.is_set():
            assert nobody.ask("clear", app_id) == {"ok": app_id}  # untagged
            assert nobody.ask("set", app_id, "down", 2_000_000) == {"ok": app_id}  # tagged
            assert nobody.ask("set", app_id, "down", 1_000_000) == {"ok": app_id}  # tighter
            changes[0] += 3

    try:
        reaches = _in_turn_meanwhile(stack, in_turn, stop, changes, app_id)
        assert any("not held to it yet" in reach for reach in reaches), reaches
    finally:
        assert nobody.ask("clear", app_id) == {"ok": app_id}


# Each read call's median while nobody's changes walk: the reads answer from
# the snapshot the engine publishes after each tick and change, never on the
# engine thread nor under its lock. Before (snap32): each read's median
# 0.12-0.14 s behind each change's own work, after 1-3 ms, with a flood of
# nobody's reads too; ListConnections, ListProcesses and ListInterfaces
# since snap33 (docs/benchmarks/helper-calls.md).
READ_MEDIAN_S = 0.05
READS = ("ListApplications", "ListRules", "ListSchedules", "GetLinkShaping", "GetLimitsPaused",
         "ListBackends", "GetUsage", "ListConnections", "ListProcesses", "ListInterfaces")  # fmt: skip
# A viewer's first ListApplications and ListProcesses (a user running the
# program) while the changes walk: from the snapshot too (snap33). Before:
# on the engine thread, behind a change when one runs (0.14-0.21 s in
# snap32's runs; 0.01-0.03 s when the engine thread was free).
FIRST_CALL_S = 0.1


@pytest.fixture
def roots_program() -> Iterator[str]:
    """A copy of sleep running as root under a name of its own: the
    application of few descriptors whose connections root lists."""
    directory = Path(tempfile.mkdtemp(prefix="ct-roots-"))
    shutil.copy("/bin/sleep", directory / "sleep")
    process = subprocess.Popen([str(directory / "sleep"), "600"])
    try:
        yield f"exe:{directory / 'sleep'}"
    finally:
        process.kill()
        process.wait()
        shutil.rmtree(directory)


@pytest.mark.parametrize("forker", [(600.0, 8)], indirect=True)
def test_read_calls_answer_while_a_users_changes_walk_and_show_each_change_at_once(
    stack: Stack, nobody: ClientAs, forker: tuple[str, int], roots_program: str
) -> None:
    """nobody clears, sets and tightens its download limit in turn on its
    program of 9 processes of 19,000 descriptors (each change walks them,
    a budget per call and tick, and waits for the clamped windows); root's
    read calls on one connection meanwhile, each timed (ListProcesses of
    nobody's program, ListConnections of root's), and nobody's first
    listing and processes on a connection of its own.
    And read-your-writes: right after each of nobody's sets, nobody's
    ListRules and root's ListApplications show that rate."""
    app_id, pid = forker
    assert nobody.ask("set", f"pid:{pid}", "up", 1_000_000) == {"ok": app_id}

    def roots_process() -> object:
        return call_helper(stack.bus_address, lambda c: c.list_processes(roots_program))

    assert eventually(roots_process, 10), "root's program not known to the helper"
    stop, changes, stale = threading.Event(), [0], []

    def in_turn() -> None:
        while not stop.is_set():
            assert nobody.ask("clear", app_id) == {"ok": app_id}
            for rate in (2_000_000, 1_000_000):
                assert nobody.ask("set", app_id, "down", rate) == {"ok": app_id}
                rules = nobody.ask("rules")["ok"]
                if [app_id, "down", rate, NOBODY, True] not in rules:
                    stale.append(f"nobody's ListRules after its set of {rate}: {rules}")
                apps = call_helper(stack.bus_address, lambda c: c.list_applications())
                limits = [a.down_limit_bps for a in apps if a.id == app_id]
                if limits != [rate]:
                    stale.append(f"root's ListApplications after a set of {rate}: {limits}")
            changes[0] += 3

    changer = threading.Thread(target=in_turn, daemon=True)
    changer.start()
    try:
        assert eventually(lambda: changes[0] >= 3, 30), "nobody's changes did not get through"
        firsts = _first_calls(stack, app_id)
        waits = asyncio.run(_roots_reads_timed(stack.bus_address, roots_program, app_id))
    finally:
        stop.set()
        changer.join(30)
    try:
        load = os.getloadavg()[0]
        print(f"nobody's changes meanwhile: {changes[0]} (load {load:.1f})")
        for name, took in waits.items():
            p99 = (
                statistics.quantiles(took, n=100, method="inclusive")[98]
                if len(took) > 1
                else took[0]
            )
            print(f"root's {name}: {len(took)} calls, median {statistics.median(took):.4f} s, "
                  f"p99 {p99:.4f} s, longest {max(took):.4f} s")  # fmt: skip
        print(f"nobody's first calls: {firsts}")
        assert changes[0] >= 3, "nobody's changes did not get through: nothing proved"
        assert not stale, stale
        slow = {name: round(statistics.median(took), 3) for name, took in waits.items()
                if statistics.median(took) >= READ_MEDIAN_S}  # fmt: skip
        assert not slow, f"medians over {READ_MEDIAN_S} s: {slow} (load {load:.1f})"
        late = {name: took for name, took in firsts.items() if took >= FIRST_CALL_S}
        assert not late, f"nobody's first calls over {FIRST_CALL_S} s: {late} (load {load:.1f})"
    finally:
        assert nobody.ask("clear", app_id) == {"ok": app_id}


def _first_calls(stack: Stack, app_id: str) -> dict[str, float]:
    """nobody's first ListApplications and ListProcesses of its program,
    each timed, on a new connection (nobody's viewer had not listed: its
    other client only changes and lists rules). Not its ListConnections:
    that reads its 9 x 19,000 descriptors, 5 s here, as the caller chose."""
    firsts = {}
    with client_as(stack.bus_address, NOBODY) as client, granted(client):
        for name, command in (
            ("ListApplications", ("list",)),
            ("ListProcesses", ("processes", app_id)),
        ):
            started = time.monotonic()
            assert "ok" in client.ask(*command), name
            firsts[name] = round(time.monotonic() - started, 4)
    return firsts


async def _roots_reads_timed(
    bus_address: str, roots_app: str, users_app: str
) -> dict[str, list[float]]:
    """Root's read calls on one connection for WATCH_S, each kind in its
    own loop (a kind's wait is not another's), each call timed."""
    reads: dict[str, Callable[[HelperClient], Awaitable[object]]] = {
        "ListApplications": lambda c: c.list_applications(),
        "ListRules": lambda c: c.list_rules(),
        "ListSchedules": lambda c: c.list_schedules(),
        "GetLinkShaping": lambda c: c.get_link_shaping(),
        "GetLimitsPaused": lambda c: c.get_limits_paused(),
        "ListBackends": lambda c: c.list_backends(),
        "GetUsage": lambda c: c.get_usage("", int(time.time()) - 600, 0, UsageResolution.MINUTE),
        "ListConnections": lambda c: c.list_connections(roots_app),
        "ListProcesses": lambda c: c.list_processes(users_app),
        "ListInterfaces": lambda c: c.list_interfaces(),
    }
    assert tuple(reads) == READS
    waits: dict[str, list[float]] = {name: [] for name in reads}

    async def timed(client: HelperClient, name: str, until: float) -> None:
        read = reads[name]
        while time.monotonic() < until:
            started = time.monotonic()
            await read(client)
            waits[name].append(time.monotonic() - started)
            await asyncio.sleep(0.1)

    async with HelperClient(bus_address) as client:
        until = time.monotonic() + WATCH_S
        await asyncio.gather(*(timed(client, name, until) for name in reads))
    return waits
