"""Rule 2 across a SIGKILL: a user's rights end at that user's processes, and a
helper killed, restarted, cleans what it had made. Pacing and the window clamp
are set on a TCP socket itself: user A's rule's socket passed to user B's
process (SCM_RIGHTS) kept A's pacing and clamp for its life after the helper
was killed, also after the next start, which walks only its rules' processes
(review34b R4, crash case). Now the next start lifts them (held_caps.py),
while a socket the restored rule carries keeps its limit and B's own pacing
is left alone."""

from __future__ import annotations

import ctypes
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from chadthrottle.contract import Direction
from chadthrottle.helper.identity.processes import read_start
from chadthrottle.helper.kernel import bpf_maps
from chadthrottle.helper.kernel.bpf_syscalls import pidfd_getfd
from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.kernel.datapath import Datapath, remove_leftover_programs
from chadthrottle.helper.kernel.held_caps import open_dead_tags, parse_held, record_of
from chadthrottle.helper.kernel.layout import SocketCaps, SockTag
from chadthrottle.helper.kernel.ownership import RUN_DIR
from chadthrottle.helper.kernel.socket_tagging import UNCAPPED_PACING
from chadthrottle.helper.standalone import PrivateSystemBus

from tests.helper.kernel.test_process_keys import SLOT
from tests.helper.kernel.test_slot_passed_on import USER_A, USER_B
from tests.support.helper_calls import call_helper
from tests.support.helper_process import HelperProcess
from tests.support.netns import entered_netns, netns_pair, nsenter_argv
from tests.support.waiting import eventually

CAPS = SocketCaps(pacing_bps=125_000, window_bps=125_000)
OWN_PACING = 50_000  # what B's application sets on one socket itself
SO_MAX_PACING_RATE = 47

# A: makes three TCP connections once told (under its rule by then), passes
# two to B over the unix socket (its fd in argv), keeps the third.
SENDER = (
    "import array, socket, sys\n"
    "chan = socket.socket(fileno=int(sys.argv[1]))\n"
    "port = int(sys.stdin.readline())\n"
    "one, two, kept = (socket.create_connection(('127.0.0.1', port)) for _ in range(3))\n"
    "chan.sendmsg([b'x'], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,\n"
    "              array.array('i', [one.fileno(), two.fileno()]))])\n"
    "one.close(); two.close()\n"
    "print(kept.fileno(), flush=True)\n"
    "sys.stdin.readline()\n"
)
# B: receives them, paces the second itself, prints the descriptors; sends a
# byte on the first when told (a packet: the dead chadt_sockops runs).
RECEIVER = (
    "import array, socket, sys\n"
    "chan = socket.socket(fileno=int(sys.argv[1]))\n"
    "fds = array.array('i')\n"
    "_, ancillary, _, _ = chan.recvmsg(1, socket.CMSG_LEN(2 * fds.itemsize))\n"
    "fds.frombytes(ancillary[0][2])\n"
    "two = socket.socket(fileno=fds[1])\n"
    f"two.setsockopt(socket.SOL_SOCKET, {SO_MAX_PACING_RATE}, {OWN_PACING})\n"
    "print(*fds, flush=True)\n"
    "one = socket.socket(fileno=fds[0])\n"
    "for line in sys.stdin:\n"
    "    one.send(b'x')\n"
    "    print('sent', flush=True)\n"
)
# The killed helper: a datapath of a helper instance holding A's process to
# A's rule (CAPS), killed by SIGKILL when told.
KILLED = (
    "import os, signal, sys\n"
    "from pathlib import Path\n"
    "from chadthrottle.helper.kernel.datapath import Datapath\n"
    "from chadthrottle.helper.kernel.layout import SocketCaps\n"
    "path = Datapath(cache_dir=Path(sys.argv[1]), instance=sys.argv[2])\n"
    "path.open()\n"
    "slot, uid, pid, start = (int(word) for word in sys.argv[3:7])\n"
    "path.set_slot_owners({slot: uid})\n"
    f"path.set_slot_caps(slot, SocketCaps({CAPS.pacing_bps}, {CAPS.window_bps}))\n"
    "path.set_process_slot(pid, slot, start)\n"
    "print('limited', flush=True)\n"
    "sys.stdin.readline()\n"
    "os.kill(os.getpid(), signal.SIGKILL)\n"
)


def _caps_on(pid: int, fd: int) -> tuple[int, int]:
    """(SO_MAX_PACING_RATE, TCP_WINDOW_CLAMP) of pid's socket fd."""
    pidfd = os.pidfd_open(pid)
    try:
        with socket.socket(fileno=pidfd_getfd(pidfd, fd)) as sock:
            pacing = int.from_bytes(sock.getsockopt(socket.SOL_SOCKET, SO_MAX_PACING_RATE, 8),
                                    "little")  # fmt: skip
            return pacing, int(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_WINDOW_CLAMP))
    finally:
        os.close(pidfd)


def _old_slot(tags_fd: int, pid: int, fd: int) -> int:
    """The slot pid's socket fd carries in the dead helper's tags."""
    pidfd = os.pidfd_open(pid)
    try:
        with socket.socket(fileno=pidfd_getfd(pidfd, fd)) as sock:
            tag = SockTag()
            assert bpf_maps.lookup(tags_fd, ctypes.c_int(sock.fileno()), tag)
            return int(tag.app_slot)
    finally:
        os.close(pidfd)


def _end(process: subprocess.Popen[str]) -> None:
    process.kill()
    process.wait()
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            pipe.close()


def _lifted(caps: tuple[int, int]) -> bool:
    return caps[0] >= UNCAPPED_PACING and caps[1] > CAPS.window_bps


def _spawn(code: str, *args: str, user: int | None = None,
           pass_fds: tuple[int, ...] = ()) -> subprocess.Popen[str]:  # fmt: skip
    return subprocess.Popen([sys.executable, "-c", code, *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, user=user, group=user,
                            pass_fds=pass_fds)  # fmt: skip


@pytest.fixture
def instance() -> Iterator[str]:
    """A helper instance of this test's own: no other start takes its records."""
    name = secrets.token_hex(8)
    try:
        yield name
    finally:
        remove_leftover_programs(cgroup2_mount(), name)
        for path in RUN_DIR.glob(f"*{name}*"):
            path.unlink(missing_ok=True)


def test_a_passed_sockets_caps_are_lifted_at_the_start_after_a_sigkill(
    kernel_ready: Path, listener: socket.socket, instance: str
) -> None:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    sender = _spawn(SENDER, str(left.fileno()), user=USER_A, pass_fds=(left.fileno(),))
    receiver = _spawn(RECEIVER, str(right.fileno()), user=USER_B, pass_fds=(right.fileno(),))
    start = read_start(sender.pid)
    assert start is not None
    killed = _spawn(KILLED, str(kernel_ready), instance, str(SLOT), str(USER_A), str(sender.pid),
                    str(start))  # fmt: skip
    restarted = Datapath(cache_dir=kernel_ready, instance=instance)
    dead_tags: int | None = None
    try:
        assert sender.stdin and sender.stdout and receiver.stdin and receiver.stdout
        assert killed.stdin and killed.stdout
        assert killed.stdout.readline().strip() == "limited"
        sender.stdin.write(f"{listener.getsockname()[1]}\n")
        sender.stdin.flush()
        kept = int(sender.stdout.readline())
        one, two = (int(fd) for fd in receiver.stdout.readline().split())
        assert not _lifted(_caps_on(receiver.pid, one))  # A's rule's, on B's socket
        own_pacing = _caps_on(receiver.pid, two)[0]
        assert own_pacing == OWN_PACING, "B's own pacing was not set"
        assert not _lifted(_caps_on(sender.pid, kept))
        killed.stdin.write("die\n")
        killed.stdin.flush()
        assert killed.wait(30) == -signal.SIGKILL
        record = record_of(instance)
        assert record is not None and f"pacing {SLOT} {CAPS.pacing_bps}" in record.read_text()
        dead_tags = open_dead_tags(parse_held(record.read_text())[0].map_id, 0)
        assert dead_tags is not None

        # the next start: the rule restored (A's process walked), then the sweep
        restarted.open()
        restarted.adopt_open_sockets([sender.pid, receiver.pid])
        restarted.set_slot_owners({SLOT: USER_A})
        restarted.set_slot_caps(SLOT, CAPS, later=True)
        restarted.set_process_slot(sender.pid, SLOT, start, later=True)
        began = time.monotonic()
        # the sweep goes on past B's process (every process, within each call's
        # budget) and its record's part goes once it is done: waited for too
        assert eventually(
            lambda: (
                restarted.walk_pending() == 0
                and _lifted(_caps_on(receiver.pid, one))
                and restarted._dead_sweep is None
            ),
            10.0,
        ), f"B's socket still held to A's rule after the restart: {_caps_on(receiver.pid, one)}"
        print(f"lifted {time.monotonic() - began:.3f} s after the restore")
        receiver.stdin.write("send\n")  # a packet: the dead helper's chadt_sockops runs
        receiver.stdin.flush()
        assert receiver.stdout.readline().strip() == "sent"
        assert _lifted(_caps_on(receiver.pid, one)), "the dead helper clamped it again"
        pacing, clamp = _caps_on(receiver.pid, two)
        assert pacing == OWN_PACING, "B's own pacing was lifted"
        assert clamp > CAPS.window_bps, "A's rule's clamp stayed on B's second socket"
        assert not _lifted(_caps_on(sender.pid, kept)), "the restored rule's socket was lifted"
        # until the takeover the dead helper's programs class by its tags: the
        # restored rule's socket keeps its slot there, B's does not
        assert _old_slot(dead_tags, sender.pid, kept) == SLOT
        assert _old_slot(dead_tags, receiver.pid, one) == 0
        assert record.read_text().count("map ") == 1, "the dead helper's part is still kept"

        assert remove_leftover_programs(cgroup2_mount(), instance) >= 4  # the takeover
        assert _lifted(_caps_on(receiver.pid, one))
        assert not _lifted(_caps_on(sender.pid, kept))
    finally:
        for process in (killed, sender, receiver):
            _end(process)
        restarted.close()
        if dead_tags is not None:
            os.close(dead_tags)
        left.close()
        right.close()


def test_a_bad_record_is_named_and_nothing_is_swept(
    kernel_ready: Path, instance: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A record cut short or not ours: the start says so by name and lifts
    nothing from it."""
    record = record_of(instance)
    assert record is not None
    record.write_text(f"map 1\npacing {SLOT} 125000\nwindow {SLOT}\n")
    started = Datapath(cache_dir=kernel_ready, instance=instance)
    try:
        with caplog.at_level(logging.WARNING):
            started.open()
        assert f"the held caps record {record} is not valid (line 3" in caplog.text
        assert started._dead_sweep is None
    finally:
        started.close()
    assert not record.exists()


# The real helper's case: A's application (a pid rule's, in the helper's
# namespace) opens a connection before the limit (walked: the caps are in
# force), then three under it, passes two to B and keeps the third.
APP = (
    "import array, socket, sys\n"
    "chan = socket.socket(fileno=int(sys.argv[1]))\n"
    "port = int(sys.stdin.readline())\n"
    "probe = socket.create_connection(('127.0.0.1', port))\n"
    "print(probe.fileno(), flush=True)\n"
    "sys.stdin.readline()\n"
    "one, two, kept = (socket.create_connection(('127.0.0.1', port)) for _ in range(3))\n"
    "chan.sendmsg([b'x'], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,\n"
    "              array.array('i', [one.fileno(), two.fileno()]))])\n"
    "one.close(); two.close()\n"
    "print(kept.fileno(), flush=True)\n"
    "sys.stdin.readline()\n"
)
LISTENER = (
    "import socket, sys\n"
    "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(16)\n"
    "print(s.getsockname()[1], flush=True)\n"
    "sys.stdin.readline()\n"
)
RATE = 125_000


def test_a_real_helper_sigkilled_leaves_no_caps_on_a_passed_socket_after_its_restart(
    private_bus: PrivateSystemBus, tmp_path: Path
) -> None:
    """A real helper (bus, engine, stored rules) SIGKILLed while A's rule (on
    a script, asked for by its pid) holds an upload and a download limit: its
    restart restores the rule and lifts the caps from the sockets A passed to
    B (another script), not from those A kept."""
    with netns_pair() as pair, _scripts({"app.py": APP, "receiver.py": RECEIVER}) as scripts:
        state = tmp_path / "state"
        helpers = [HelperProcess(private_bus.address, netns=pair.host_ns, state_dir=state)]
        with entered_netns(pair.host_ns):  # A's every socket there: the helper shapes only it
            left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        listener = _spawn_argv(nsenter_argv(pair.host_ns, [sys.executable, "-c", LISTENER]))
        app = _spawn_argv(_as_in(pair.host_ns, USER_A, scripts / "app.py", left), (left.fileno(),))
        receiver = _spawn_argv(_as_in(pair.host_ns, USER_B, scripts / "receiver.py", right),
                               (right.fileno(),))  # fmt: skip
        try:
            assert listener.stdout and app.stdin and app.stdout and receiver.stdout
            port = int(listener.stdout.readline())
            app.stdin.write(f"{port}\n")
            app.stdin.flush()
            probe = int(app.stdout.readline())
            helpers[0].start()
            for direction in (Direction.UP, Direction.DOWN):
                call_helper(private_bus.address,
                            lambda c, d=direction: c.set_limit(f"pid:{app.pid}", d, RATE))  # fmt: skip
            assert eventually(lambda: not _lifted(_caps_on(app.pid, probe)), 10.0)
            app.stdin.write("go\n")
            app.stdin.flush()
            kept = int(app.stdout.readline())
            one, two = (int(fd) for fd in receiver.stdout.readline().split())
            before = _caps_on(receiver.pid, one)
            assert not _lifted(before), "A's rule did not cap the socket it passed"
            assert _caps_on(receiver.pid, two)[0] == OWN_PACING

            helpers[0].kill()
            helpers.append(HelperProcess(private_bus.address, netns=pair.host_ns, state_dir=state))
            helpers[-1].start()
            assert eventually(lambda: _lifted(_caps_on(receiver.pid, one)), 15.0), (
                f"B's socket still held to A's rule after the restart: "
                f"{_caps_on(receiver.pid, one)} (was {before})\n{helpers[-1].log_text()}"
            )

            # said once the whole sweep ended (every process), after B's socket
            def said() -> list[str]:
                return [line for line in helpers[-1].log_text().splitlines()
                        if "lifted the caps a killed helper's slots held" in line]  # fmt: skip

            assert eventually(lambda: bool(said()), 15.0), (
                f"the restart did not say it swept:\n{helpers[-1].log_text()}"
            )
            print(said()[0])
            pacing, clamp = _caps_on(receiver.pid, two)
            assert pacing == OWN_PACING and clamp > RATE
            assert not _lifted(_caps_on(app.pid, kept)), "the restored rule's socket was lifted"
            assert not _lifted(_caps_on(app.pid, probe))
        finally:
            for process in (app, receiver, listener):
                _end(process)
            for helper in reversed(helpers):
                helper.close()
            left.close()
            right.close()


@contextmanager
def _scripts(codes: dict[str, str]) -> Iterator[Path]:
    """The codes as script files other users may run (a script is its own
    application: "script:PATH"), removed after."""
    made = Path(tempfile.mkdtemp(prefix="ct-rights32-"))
    try:
        made.chmod(0o755)
        for name, code in codes.items():
            (made / name).write_text(code)
            (made / name).chmod(0o644)
        yield made
    finally:
        shutil.rmtree(made)


def _as_in(netns: str, uid: int, script: Path, chan: socket.socket) -> list[str]:
    """script run as uid in netns, the unix socket chan's fd in its argv."""
    return ["nsenter", f"--net=/run/netns/{netns}", f"--setuid={uid}", f"--setgid={uid}", "--",
            sys.executable, str(script), str(chan.fileno())]  # fmt: skip


def _spawn_argv(argv: list[str], pass_fds: tuple[int, ...] = ()) -> subprocess.Popen[str]:
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            pass_fds=pass_fds)  # fmt: skip
