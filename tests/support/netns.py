"""Two network namespaces joined by a veth pair, and traffic between them.

Namespace "peer" plays the internet; namespace "host" plays the user's machine:
the helper runs in it (its uplink is the veth), and so do the applications.
Names are unique per run; everything is removed on exit, also when a test fails.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import own_names

_COPY_PREFIX = "chadthrottle-traffic-"


def _session_copy(source: Path) -> Path:
    """The traffic program at a path of this test session's own, removed at
    its exit. A script's path is its application's id (script:<path>), and a
    helper's rule reaches that application's processes in every namespace:
    with one path for every session on the machine, one session's helper
    shaped another session's streams (its filter on their veth, where that
    session's helper then failed with "File exists", and an upload stalled)."""
    directory = Path(tempfile.mkdtemp(prefix=f"{_COPY_PREFIX}{os.getpid()}-"))
    for stale in directory.parent.glob(
        f"{_COPY_PREFIX}*-*"
    ):  # of sessions killed before their exit
        pid = stale.name[len(_COPY_PREFIX) :].split("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(stale, ignore_errors=True)
    directory.chmod(0o755)  # other users' applications (tests/support/other_users.py) run it too
    copy = directory / source.name
    shutil.copyfile(source, copy)
    copy.chmod(0o644)
    atexit.register(shutil.rmtree, directory, True)
    return copy


TRAFFIC_SCRIPT = _session_copy(Path(__file__).with_name("traffic.py"))
# Every namespace this session made (tests make theirs here): the leak check
# looks for these, not for other sessions' that come and go meanwhile.
MADE_NAMESPACES: set[str] = set()


# What each session made, kept past a SIGKILL (which skips every finally) so
# that a later session removes a killed one's namespaces, and only those: a
# file per session, named by its pid and start time, a line per namespace
# with its inode (a name made again by another session is another namespace).
# /run goes at a reboot, as the namespaces do.
NAMESPACE_RECORDS = Path("/run/chadthrottle-test-netns")


def _started(pid: int) -> str | None:
    """The process's start time (clock ticks since boot), None if it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _namespace_inode(name: str) -> int | None:
    try:
        return os.stat(f"/run/netns/{name}").st_ino
    except OSError:
        return None


def _own_record() -> Path:
    return NAMESPACE_RECORDS / f"{os.getpid()}-{_started(os.getpid())}"


def sweep_killed_sessions_namespaces() -> list[str]:
    """Delete the namespaces recorded by sessions that no longer run (their
    pid gone, or another process's under it), where the namespace of that
    name is still the one recorded; then their records. Returns the names."""
    removed = []
    for record in NAMESPACE_RECORDS.glob("*-*"):
        pid, _, started = record.name.partition("-")
        if not pid.isdigit() or _started(int(pid)) == started:
            continue
        with contextlib.suppress(OSError):
            for line in record.read_text().splitlines():
                name, _, inode = line.rpartition(" ")
                if inode.isdigit() and _namespace_inode(name) == int(inode):
                    done = subprocess.run(["ip", "netns", "del", name], capture_output=True)
                    if done.returncode == 0:  # else another session's sweep got there first
                        removed.append(name)
        record.unlink(missing_ok=True)
    return removed


def _forget_own_record() -> None:
    """At a session's exit: its record, once none of its namespaces is left
    (one that is, a leak the session reported, goes at a later sweep)."""
    record = _own_record()
    with contextlib.suppress(OSError):
        if all(
            _namespace_inode(line.rpartition(" ")[0]) is None
            for line in record.read_text().splitlines()
        ):
            record.unlink()


def _add_netns(name: str) -> None:
    if not MADE_NAMESPACES:  # this session's first
        NAMESPACE_RECORDS.mkdir(mode=0o700, exist_ok=True)
        sweep_killed_sessions_namespaces()
        atexit.register(_forget_own_record)
    _ip("netns", "add", name)
    MADE_NAMESPACES.add(name)
    with _own_record().open("a") as record:
        record.write(f"{name} {_namespace_inode(name)}\n")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def nsenter_argv(netns: str, argv: Sequence[str]) -> list[str]:
    """Run argv in a namespace without remounting /sys (unlike `ip netns exec`),
    so the process still sees the cgroup filesystem."""
    return ["nsenter", f"--net=/run/netns/{netns}", "--", *argv]


@dataclass(frozen=True)
class NetnsPair:
    peer_ns: str
    host_ns: str
    peer_if: str
    host_if: str
    peer_addr: str
    host_addr: str
    peer_addr6: str
    host_addr6: str


def wait_for_carrier(netns: str, ifname: str, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = subprocess.run(
            ["ip", "-n", netns, "-o", "link", "show", "dev", ifname], capture_output=True, text=True
        ).stdout
        if "NO-CARRIER" not in state and "state UP" in state:
            return
        time.sleep(0.02)
    raise TimeoutError(f"{ifname} in {netns} did not come up")


def _join(pair: NetnsPair, mtu: int) -> None:
    """The pair's veth between its two namespaces, addressed, up, with carrier."""
    _ip(
        "link",
        "add",
        pair.peer_if,
        "netns",
        pair.peer_ns,
        "mtu",
        str(mtu),
        "type",
        "veth",
        "peer",
        "name",
        pair.host_if,
        "netns",
        pair.host_ns,
        "mtu",
        str(mtu),
    )
    for ns, ifname, addr, addr6 in (
        (pair.peer_ns, pair.peer_if, pair.peer_addr, pair.peer_addr6),
        (pair.host_ns, pair.host_if, pair.host_addr, pair.host_addr6),
    ):
        _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", ifname)
        _ip("-n", ns, "addr", "add", f"{addr6}/64", "dev", ifname, "nodad")
        _ip("-n", ns, "link", "set", ifname, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
    wait_for_carrier(pair.host_ns, pair.host_if)
    wait_for_carrier(pair.peer_ns, pair.peer_if)


@contextlib.contextmanager
def netns_pair(mtu: int = 1500) -> Iterator[NetnsPair]:
    tag = secrets.token_hex(3)
    octet = int(tag[:2], 16)
    pair = NetnsPair(
        peer_ns=f"ctpeer-{tag}",
        host_ns=f"cthost-{tag}",
        peer_if=f"ctp{tag}",
        host_if=f"cth{tag}",
        peer_addr=f"10.{200 + octet % 50}.{int(tag[2:4], 16)}.1",
        host_addr=f"10.{200 + octet % 50}.{int(tag[2:4], 16)}.2",
        peer_addr6=f"fd7c:{tag[:4]}::1",
        host_addr6=f"fd7c:{tag[:4]}::2",
    )
    created: list[str] = []
    try:
        for ns in (pair.peer_ns, pair.host_ns):
            _add_netns(ns)
            created.append(ns)
        _join(pair, mtu)
        yield pair
    finally:
        for ns in reversed(created):  # deleting a namespace deletes its devices
            _end_processes_in(ns)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def _end_processes_in(netns: str, grace_s: float = 5.0) -> None:
    """End what still runs in a namespace about to be deleted: a process left
    there (a sink whose test failed before its stop) would keep the namespace,
    unnamed, alive past `ip netns del` and run on to its --seconds. SIGTERM
    first (a helper cleans up on it), SIGKILL after grace_s."""

    def pids() -> list[int]:
        listed = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True)
        return [
            int(pid) for pid in listed.stdout.split() if pid.isdigit() and int(pid) != os.getpid()
        ]

    left = pids()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace_s
        while (left := pids()) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not left:
            return


@dataclass
class Receiver:
    """Reads a sink's JSON reports in a thread: (seconds, cumulative bytes), timed
    when this thread read them (samples) and when the sink counted them
    (sink_samples: free of this process's own scheduling delays; at load 3-6
    on 2 cores reports reached this thread up to 0.07-0.29 s late, at load
    7-13 up to 0.63 s, which read a 2 s window's rate 0.74-1.03 times the
    bytes' own). Rates (rate_bps, rates_together, _latest) use the sink's times.
    arrived_samples: a TCP sink's bytes read plus those its socket held unread
    (its "q"), at the same times: what had arrived, however late the sink read."""

    process: subprocess.Popen[str]
    samples: list[tuple[float, int]] = field(default_factory=list)
    sink_samples: list[tuple[float, int]] = field(default_factory=list)
    arrived_samples: list[tuple[float, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            report = json.loads(line)
            if "bytes" in report:
                with self._lock:
                    self.samples.append((time.monotonic(), int(report["bytes"])))
                    if "m" in report:
                        self.sink_samples.append((float(report["m"]), int(report["bytes"])))
                    if "m" in report and "q" in report:
                        arrived = int(report["bytes"]) + int(report["q"])
                        self.arrived_samples.append((float(report["m"]), arrived))

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout_s)

    def total_bytes(self) -> int:
        with self._lock:
            return self.samples[-1][1] if self.samples else 0

    def _latest(self) -> tuple[float, int]:
        """The last report, timed when the sink counted it (the machine's
        monotonic clock, as time.monotonic() here); when it arrived for a sink
        that does not say."""
        with self._lock:
            if self.sink_samples:
                return self.sink_samples[-1]
            return self.samples[-1] if self.samples else (time.monotonic(), 0)

    def _timed(self, arrived: bool) -> list[tuple[float, int]]:
        """The reports to judge by: arrived bytes if asked and the sink says
        them (a TCP sink), else read ones by the sink's clock, else by this
        thread's (a sink that does not say when). Call with the lock held."""
        return (self.arrived_samples if arrived else []) or self.sink_samples or self.samples

    def counted_at(self, when: float, arrived: bool = False) -> int:
        """Bytes the sink had counted at `when` (its last report at or before
        it, by the sink's clock; 0 before its first); arrived: read plus held
        unread (arrived_samples), where the sink says so."""
        with self._lock:
            timed = self._timed(arrived)
            return next((count for at, count in reversed(timed) if at <= when), 0)

    def counted_more_at(self, since: float) -> float | None:
        """When the sink first counted bytes after `since` (by its clock), or
        None if it has not (as far as its reports have come)."""
        held = self.counted_at(since)
        with self._lock:
            timed = self.sink_samples or self.samples
            return next((at for at, count in timed if at > since and count > held), None)

    def quiet_for(
        self, seconds: float, report_within_s: float = 5.0, arrived: bool = False
    ) -> bool:
        """Nothing counted over the next `seconds`, judged by the sink's clock:
        the "m" of its reports, CLOCK_MONOTONIC read by the sink when it
        counted, the same clock as time.monotonic() here (one for every
        process and namespace), so the window's ends and the sink's counts
        compare. Not by when this process's reader thread got the reports:
        on a busy machine those come late (up to 0.63 s at load 7-13: the
        class docstring), and a late batch of bytes counted before the window
        read as traffic in it, or one counted in it read as none
        (tests/common/test_receiver_quiet.py). arrived: judge the bytes that
        had arrived (read plus held unread, a TCP sink's "q"), not those read,
        so a sink itself held off the CPU, reading in the window what came
        before it, does not read as traffic (bench/gates.py). Waits for the
        sink's first report past the window (it reports every interval, with
        bytes or not); a sink gone before then counted what its last report
        says."""
        since = time.monotonic()
        time.sleep(seconds)
        until = since + seconds
        deadline = until + report_within_s
        while self._latest()[0] < until and self._thread.is_alive():
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the sink reported nothing past the window in {report_within_s} s"
                )
            time.sleep(0.01)
        return self.counted_at(until, arrived) == self.counted_at(since, arrived)

    def rate_bps(self, seconds: float) -> float:
        """Payload rate over the next `seconds`, between two reports of the sink
        (timed when it counted them), so the test's own timing adds no error."""
        start_time, start_bytes = self._latest()
        time.sleep(seconds)
        end_time, end_bytes = self._latest()
        if end_time <= start_time:
            return 0.0
        return (end_bytes - start_bytes) / (end_time - start_time)


def rates_together(receivers: Sequence[Receiver], seconds: float) -> list[float]:
    """Each receiver's payload rate over the same `seconds`, for limits that
    hold a sum of several connections."""
    starts = [receiver._latest() for receiver in receivers]
    time.sleep(seconds)
    rates = []
    for receiver, (start_time, start_bytes) in zip(receivers, starts, strict=True):
        end_time, end_bytes = receiver._latest()
        rates.append(
            (end_bytes - start_bytes) / (end_time - start_time) if end_time > start_time else 0.0
        )
    return rates


@dataclass
class Stream:
    """One connection between an application in the host namespace and a server
    in the peer namespace. `receiver` is whichever side receives."""

    app: subprocess.Popen[str]
    server: subprocess.Popen[str]
    receiver: Receiver
    sender_netns: str = ""  # where the sending side's socket is, and its port:
    port: int = 0  # for a look at its TCP state (download_settled.sender_recovering)

    @property
    def app_pid(self) -> int:
        return self.app.pid

    def wait(self, timeout_s: float = 30.0) -> int:
        """Wait for a bounded stream to end; returns the payload bytes received."""
        for process in (self.app, self.server):
            process.wait(timeout=timeout_s)
        self.receiver.join(timeout_s)
        return self.receiver.total_bytes()

    def end(self, timeout_s: float = 30.0) -> int:
        """End the stream now as its --seconds would: the sending side stops
        and closes its connection (SIGTERM, tests/support/traffic.py), the
        receiving side reads up to the close; then as wait()."""
        sender = self.server if self.receiver.process is self.app else self.app
        if sender.poll() is None:
            sender.terminate()
        return self.wait(timeout_s)

    def stop(self) -> None:
        """Kill both sides, and the traffic a shell started as its child
        (child_after_s, child_when): killed with the shell alone it ran on
        to its --seconds, and held the reader's pipe open; once a blocked
        download's close could not reach it, past the test's end."""
        end_started((self.app, self.server), (self.receiver,))


def _descendants(pid: int) -> list[int]:
    """The processes below pid, children before theirs (none if it is gone)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found += [child, *_descendants(child)]
    return found


def spawn(argv: list[str], cgroup: Path | None) -> subprocess.Popen[str]:
    if cgroup is None:
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    # Enter the cgroup before exec, as a launcher would, and return only once the
    # process is in it, so the test never sees it outside its application.
    argv = ["sh", "-c", f'echo $$ > "{cgroup}/cgroup.procs" && exec "$@"', "sh", *argv]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 5
    while str(process.pid) not in (cgroup / "cgroup.procs").read_text().split():
        if time.monotonic() > deadline or process.poll() is not None:
            end_started([process])  # outside the scope: nothing else would end it
            raise RuntimeError(f"process {process.pid} did not enter {cgroup}")
        time.sleep(0.005)
    return process


def end_started(
    processes: Sequence[subprocess.Popen[str]], receivers: Sequence[Receiver] = ()
) -> None:
    """Kill processes started for something that then failed, with what a
    shell of theirs started (as Stream.stop), and close their pipes once the
    receivers reading them have read to the end."""
    for process in processes:
        if process.poll() is None:
            children = _descendants(process.pid)
            process.kill()
            for child in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
        process.wait(timeout=10)
    for receiver in receivers:
        receiver.join(5.0)
    for process in processes:
        if process.stdout is not None:
            process.stdout.close()


def wait_for_line(process: subprocess.Popen[str], key: str, timeout_s: float = 10.0) -> None:
    """Read a process's JSON lines until one has key ("listening", "connected")."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"process {process.args!r} exited before reporting {key!r}")
        if key in json.loads(line):
            return
    raise TimeoutError(f"no {key!r} from {process.args!r}")


@contextlib.contextmanager
def extra_link(
    near_ns: str, far_ns: str | None = None, mtu: int = 1500, tag: str = ""
) -> Iterator[NetnsPair]:
    """Another veth between two namespaces, on a subnet of its own, as a
    NetnsPair whose host side is near_ns and peer side far_ns (start_stream
    runs the application on the host side). far_ns None makes a new namespace
    for the far side; a new near_ns is made when it does not exist yet (an
    application's own namespace: a container, `ip netns exec`). tag (6 hex
    digits; default a fresh one) names the devices and subnet: the same tag
    again makes the same link again (a device deleted and added back, as a
    VPN reconnecting). What this made is removed on exit."""
    tag = tag or secrets.token_hex(3)
    octet = int(tag[:2], 16)
    subnet = f"10.{150 + octet % 40}.{int(tag[2:4], 16)}"
    made: list[str] = []
    existing = set(
        subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    )
    far = far_ns or f"ctfar-{tag}"
    pair = NetnsPair(
        peer_ns=far,
        host_ns=near_ns,
        peer_if=f"ctx{tag}",
        host_if=f"cty{tag}",
        peer_addr=f"{subnet}.1",
        host_addr=f"{subnet}.2",
        peer_addr6=f"fd7d:{tag[:4]}::1",
        host_addr6=f"fd7d:{tag[:4]}::2",
    )
    try:
        for ns in (near_ns, far):
            if ns not in existing:
                _add_netns(ns)
                made.append(ns)
        _join(pair, mtu)
        yield pair
    finally:
        subprocess.run(["ip", "-n", pair.host_ns, "link", "del", pair.host_if], capture_output=True)
        for ns in reversed(made):
            _end_processes_in(ns)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def start_stream(
    pair: NetnsPair,
    port: int,
    direction: str,
    *,
    udp: bool = False,
    family: int = 4,
    app_cgroup: Path | None = None,
    seconds: float = 60.0,
    app_serves: bool = False,
    child_after_s: float = 0.0,
    child_when: Path | None = None,
    peer_after_s: float = 0.0,
    peer_when: Path | None = None,
    peer_cgroup: Path | None = None,
    rate_bps: float = 0.0,
    congestion: str = "",
    mptcp: bool = False,
    report_interval_s: float = 0.0,
    rcvbuf_bytes: int = 0,
) -> Stream:
    """Start a bulk stream; direction "up" = the app sends, "down" = it receives.

    app_serves: the application listens (in the host namespace) and the peer
    connects, peer_after_s later, so the app's traffic flows on an accepted socket.
    peer_when: as peer_after_s, the peer connects once this file exists
    (looked for every 50 ms): after a step of the test's (a limit set), however
    long that took on a loaded machine.
    child_after_s: the application is a shell that starts the traffic as a
    child process this many seconds later (Stream.app is the shell).
    child_when: as child_after_s, the child started once this file exists
    (looked for every 50 ms): after a step of the test's, however long that took.
    peer_cgroup: an app scope for the peer, so no limit on the program (the
    same script as the application) reaches it.
    rate_bps: the source paces its payload to this (0: as fast as it can), so a
    stream's rate does not hang on how much CPU the machine has left.
    mptcp: both ends use MPTCP sockets (IPPROTO_MPTCP).
    report_interval_s: the sink reports at most this often (0: traffic.py's
    REPORT_INTERVAL_S, 50 ms).
    rcvbuf_bytes: a UDP sink's receive buffer (0: the namespace's default,
    a few ms of a 30 MiB/s stream: a sink held off the CPU longer drops).
    congestion: both ends' TCP congestion control ("": the namespace's). A test
    that bounds counted bytes by payload plus headers wants "cubic": BBR's
    start-up on an unlimited veth loses and resends segments by the hundred
    thousand, and the datapath rightly counts resent bytes as wire bytes.
    """
    python = sys.executable
    common = ["--port", str(port), "--family", str(family), "--seconds", str(seconds)] + (
        ["--udp"] if udp else []
    )
    if rate_bps:
        common += ["--rate", str(rate_bps)]
    if congestion:
        common += ["--congestion", congestion]
    if mptcp:
        common.append("--mptcp")
    if report_interval_s:
        common += ["--report-interval", str(report_interval_s)]
    if rcvbuf_bytes:
        common += ["--rcvbuf", str(rcvbuf_bytes)]
    peer_role, app_role = ("sink", "source") if direction == "up" else ("source", "sink")
    script = [python, str(TRAFFIC_SCRIPT)]
    started: list[subprocess.Popen[str]] = []
    try:  # a side that did not start (a timeout under load) ends the other too
        if app_serves:
            host = pair.host_addr6 if family == 6 else pair.host_addr
            app = spawn(
                nsenter_argv(pair.host_ns, [*script, "serve", "--role", app_role, *common]),
                app_cgroup,
            )
            started.append(app)
            wait_for_line(app, "listening")
            argv = nsenter_argv(
                pair.peer_ns, [*script, "connect", "--host", host, "--role", peer_role, *common]
            )
            if peer_after_s or peer_when is not None:
                first = (f"until [ -e {shlex.quote(str(peer_when))} ]; do sleep 0.05; done"
                         if peer_when is not None else f"sleep {peer_after_s}")  # fmt: skip
                argv = ["sh", "-c", f'{first}; exec "$@"', "sh", *argv]
            peer = spawn(argv, peer_cgroup)
            started.append(peer)
        else:
            peer = spawn(
                nsenter_argv(pair.peer_ns, [*script, "serve", "--role", peer_role, *common]),
                peer_cgroup,
            )
            started.append(peer)
            wait_for_line(peer, "listening")
            host = pair.peer_addr6 if family == 6 else pair.peer_addr
            argv = [*script, "connect", "--host", host, "--role", app_role, *common]
            if child_after_s or child_when is not None:
                first = (f"until [ -e {shlex.quote(str(child_when))} ]; do sleep 0.05; done"
                         if child_when is not None else f"sleep {child_after_s}")  # fmt: skip
                # The shell in the application's namespace too: a limited process
                # in the machine's own one had the helper shape its eth0 (clsact34).
                argv = ["sh", "-c", f'{first}; "$@" & wait', "sh", *argv]
            app = spawn(nsenter_argv(pair.host_ns, argv), app_cgroup)
            started.append(app)
            if not udp and not child_after_s and child_when is None:
                wait_for_line(app, "connected")
    except BaseException:
        end_started(started)
        raise
    app_receives = direction == "down"
    receiver = Receiver(app if app_receives else peer)
    sender_netns = pair.peer_ns if app_receives else pair.host_ns
    return Stream(app=app, server=peer, receiver=receiver, sender_netns=sender_netns, port=port)


def sweep_killed_sessions_scopes(cgroup_root: Path) -> list[Path]:
    """Remove the test slices of sessions killed before their exit (SIGKILL
    skips app_scope's clean-up): a slice whose every scope names a test
    process (its pid, last in the name) that no longer runs and holds no
    process. A live session's slices, and any cgroup of another shape, stay.
    Returns the slices removed."""
    removed = []
    for slice_ in cgroup_root.glob("chadthrottle-test-*.slice"):
        try:
            scopes = [child for child in slice_.iterdir() if child.is_dir()]
        except FileNotFoundError:  # another session's sweep removed it since the glob
            continue
        pids = [scope.name.removesuffix(".scope").rsplit("-", 1)[-1] for scope in scopes]
        if not scopes or not all(
            pid.isdigit() and not Path(f"/proc/{pid}").exists() for pid in pids
        ):
            continue
        try:
            if any((scope / "cgroup.procs").read_text().strip() for scope in scopes):
                continue
            for scope in scopes:
                scope.rmdir()
            slice_.rmdir()
        except OSError:  # a process moved in meanwhile, or another sweep got there first
            continue
        removed.append(slice_)
    return removed


@contextlib.contextmanager
def app_scope(cgroup_root: Path, desktop_id: str) -> Iterator[Path]:
    """A cgroup like the app scope a desktop launcher creates for an application:
    <test-parent>/app-<launcher>-<desktop id>-<n>.scope. Removed on exit, after
    killing whatever still runs in it (and a killed session's, before)."""
    sweep_killed_sessions_scopes(cgroup_root)
    parent = cgroup_root / f"{own_names.TEST_NAME_PREFIX}{secrets.token_hex(3)}.slice"
    scope = parent / f"app-cttest-{desktop_id}-{os.getpid()}.scope"
    scope.mkdir(parents=True)
    try:
        yield scope
    finally:
        for pid in (scope / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), 9)
        deadline = time.monotonic() + 5
        while (scope / "cgroup.procs").read_text().strip() and time.monotonic() < deadline:
            time.sleep(0.05)
        scope.rmdir()
        parent.rmdir()


_CLONE_NEWNET = 0x40000000


@contextlib.contextmanager
def entered_netns(name: str) -> Iterator[None]:
    """Move the calling thread into a namespace for the block. Netlink sockets
    opened inside (pyroute2's IPRoute) keep operating on it afterwards."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(target, _CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {name} failed")
        yield
    finally:
        libc.setns(original, _CLONE_NEWNET)
        os.close(target)
        os.close(original)


def netns_device(netns: str, ifname: str) -> tuple[int, int]:
    """(netns cookie, ifindex) of a device: how the datapath keys its counters."""
    import socket

    from chadthrottle.helper.kernel.namespaces import netns_cookie_of

    with entered_netns(netns), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        return netns_cookie_of(sock), socket.if_nametoindex(ifname)


# HTB prints how many packets it sent unclassified, a counter that any stray
# packet (an IPv6 router solicitation) moves: not part of the configuration.
_DIRECT_PACKETS = re.compile(r"direct_packets_stat \d+")


def tc_dump(netns: str, attempts: int = 20) -> str:
    """Every link, qdisc, class and filter of a namespace, for before/after checks
    (configuration, not counters). A device that vanishes while it is read (an
    IFB being removed) means: read again. The tc queries run at once, each its
    own process as before (one after another, a dump of two links took 43 ms
    here, 25-30 ms at once; 175 places in the tests dump, some in a poll)."""

    def run(*argv: str) -> str:
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()

    for attempt in range(attempts):
        lines = []
        try:
            queries: list[tuple[str, tuple[str, ...], subprocess.Popen[str]]] = []
            for line in run("ip", "-n", netns, "-o", "link", "show").splitlines():
                ifname = line.split(": ")[1].split("@")[0]
                for query in (
                    ("qdisc", "show", "dev", ifname),
                    ("class", "show", "dev", ifname),
                    ("filter", "show", "dev", ifname),
                    ("filter", "show", "dev", ifname, "ingress"),
                    ("filter", "show", "dev", ifname, "egress"),
                ):
                    argv = ("tc", "-n", netns, *query)
                    queries.append((line.split(" link/")[0], query, subprocess.Popen(
                        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))  # fmt: skip
            failed: subprocess.CalledProcessError | None = None
            for link, query, process in queries:  # every one waited for, failed or not
                out, err = process.communicate()
                if process.returncode != 0 and failed is None:
                    failed = subprocess.CalledProcessError(
                        process.returncode, process.args, out, err
                    )
                if query[0] == "qdisc":
                    lines.append(link)
                shown = _DIRECT_PACKETS.sub("direct_packets_stat -", out.strip())
                lines.append(f"{' '.join(query)}: {shown}")
            if failed is not None:
                raise failed
        except subprocess.CalledProcessError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05)
            continue
        return "\n".join(lines)
    raise AssertionError("unreachable")


@contextlib.contextmanager
def tc_shaper_in(netns: str, datapath: Any, retire_after_s: float = 0.0,
                 hook_linger_s: float = 0.0) -> Iterator[Any]:  # fmt: skip
    """The helper's tc shaper working on a namespace's devices (its netlink
    socket opened inside it); everything it made is removed on exit.
    hook_linger_s: 0 here (a hook goes with its last class, as the kernel
    tests expect); the helper's is tc_shaper.HOOK_LINGER_S."""
    from chadthrottle.helper.kernel.tc_shaper import TcShaper
    from pyroute2 import IPRoute

    with entered_netns(netns):
        ipr = IPRoute()
        shaper = TcShaper(ipr, datapath.tc_program, datapath, retire_after_s=retire_after_s,
                          hook_linger_s=hook_linger_s, instance=own_names.JOURNAL_INSTANCE)  # fmt: skip
    try:
        yield shaper
    finally:
        shaper.close()
        ipr.close()
