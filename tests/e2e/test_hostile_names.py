"""Names that are not UTF-8, hold escape sequences or are very long, end to end.

Real programs run from such paths and real devices with such names carry real
traffic; the real helper on the private bus lists them for everyone, limits
them by pid, keeps the limits across a restart, and chadthrottle-ctl prints
them without a raw control character (docs/helper.md, "Names from the kernel").
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chadthrottle.contract import MAX_APP_ID_LENGTH, Direction
from chadthrottle.helper.adapter.validation import validate_app_id
from chadthrottle.helper.engine.rule_store import RULES_FILE
from chadthrottle.helper.kernel import namespaces
from chadthrottle.helper.standalone import PrivateSystemBus
from chadthrottle.units import format_rate

from tests.support.helper_calls import call_helper
from tests.support.helper_process import HelperProcess
from tests.support.netns import (
    TRAFFIC_SCRIPT,
    NetnsPair,
    Receiver,
    Stream,
    end_started,
    netns_pair,
    nsenter_argv,
    rates_together,
    spawn,
    wait_for_line,
)
from tests.support.requirements import require_program, require_root
from tests.support.waiting import eventually

CTL = [sys.executable, "-m", "chadthrottle.cli.ctl"]
LIMIT_BPS = 1_000_000
PACED_BPS = 4_000_000  # unlimited streams are paced: a 2-core machine shares its CPU
PAYLOAD_SHARE = 1448 / 1500  # receivers count payload, limits count IP packets
START_TIMEOUT_S = 150.0  # another session's helper may hold the datapath lock
RESTART_STALL_S = 10.0  # a limited TCP stream waits out a retransmission timeout
DIGEST = re.compile(r"\\#[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def pair(private_bus: PrivateSystemBus) -> Iterator[NetnsPair]:
    require_root()
    require_program("nsenter")
    require_program("unshare")
    with netns_pair() as created:
        yield created


@contextlib.contextmanager
def _helper(
    private_bus: PrivateSystemBus, pair: NetnsPair, state_dir: Path | None = None
) -> Iterator[HelperProcess]:
    """A helper in the pair's host namespace; its log is printed (shown with
    the failure) when the block fails."""
    with HelperProcess(private_bus.address, netns=pair.host_ns, state_dir=state_dir,
                       start_timeout_s=START_TIMEOUT_S) as helper:  # fmt: skip
        try:
            yield helper
        except BaseException:
            helper.stop()
            print(f"helper log:\n{helper.log_text()[-20000:]}")
            raise


def _ctl(bus_address: str, *args: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr); the output must be UTF-8 (raw \\xff is not)."""
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": bus_address}
    result = subprocess.run(CTL + list(args), capture_output=True, env=env, timeout=60)
    return result.returncode, result.stdout.decode("utf-8"), result.stderr.decode("utf-8")


def _terminal_safe(text: str) -> bool:
    """No character a terminal acts on, except the newlines between lines."""
    return not any(unicodedata.category(char) in ("Cc", "Cs") for char in text.replace("\n", ""))


def _strings(data: Any) -> set[str]:
    """Every key and string value in parsed JSON, however it is nested."""
    if isinstance(data, dict):
        return set(data) | {s for value in data.values() for s in _strings(value)}
    if isinstance(data, list):
        return {s for value in data for s in _strings(value)}
    return {data} if isinstance(data, str) else set()


@contextlib.contextmanager
def hostile_programs(directory: Path) -> Iterator[dict[str, bytes]]:
    """A real interpreter copied to three paths: one that is not UTF-8, one with
    escape sequences, one longer than an application id may be. Removed on exit."""
    base = os.fsencode(directory)
    paths = {
        "not utf-8": base + b"/\xff\xfe/tool\xff\xfe",
        "escapes": base + b"/\x1b[31mred/tool\x1b]0;owned\x07",
        "long": base + b"/" + b"/".join([b"d" * 200, b"e" * 200, b"f" * 200]) + b"/tool-long",
    }
    interpreter = os.path.realpath(sys.executable)
    try:
        for path in paths.values():
            os.makedirs(os.path.dirname(path))
            shutil.copy(interpreter, path)
        yield paths
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _upload(pair: NetnsPair, port: int, program: bytes) -> Stream:
    """The program (an interpreter) sends to a sink in the peer namespace."""
    common = ["--port", str(port), "--seconds", "300"]
    server = spawn(
        nsenter_argv(
            pair.peer_ns, [sys.executable, str(TRAFFIC_SCRIPT), "serve", "--role", "sink", *common]
        ),
        None,
    )
    started = [server]
    try:  # in no app scope: a failed start would leave them to their --seconds
        wait_for_line(server, "listening")
        app = spawn(nsenter_argv(pair.host_ns, [os.fsdecode(program), str(TRAFFIC_SCRIPT), "connect", "--host",
                                                pair.peer_addr, "--role", "source", "--rate", str(PACED_BPS), *common]),
                    None)  # fmt: skip
        started.append(app)
        wait_for_line(app, "connected")
    except BaseException:
        end_started(started)
        raise
    return Stream(app=app, server=server, receiver=Receiver(server))


def _unlimited_kinds(streams: dict[str, Stream], timeout_s: float) -> list[str]:
    """The streams never seen at the limit in a 2 s window within timeout_s.
    All are measured over the same windows (one after another, the three took
    three times as long); each is judged on its own rate, as before."""
    waiting = dict(streams)
    deadline = time.monotonic() + timeout_s
    while waiting:
        last_round = (
            time.monotonic() >= deadline
        )  # one window starting at the deadline, as eventually() has
        rates = rates_together([stream.receiver for stream in waiting.values()], 2.0)
        for kind, rate in zip(list(waiting), rates, strict=True):
            if 0.85 * LIMIT_BPS <= rate / PAYLOAD_SHARE <= 1.15 * LIMIT_BPS:
                del waiting[kind]
        if last_round:
            break
    return sorted(waiting)


def _check_ids(ids: dict[str, str], directory: Path) -> None:
    assert ids["not utf-8"] == f"exe:{directory}/\\xff\\xfe/tool\\xff\\xfe"
    assert ids["escapes"] == f"exe:{directory}/\\x1b[31mred/tool\\x1b]0;owned\\x07"
    assert ids["long"].startswith(f"exe:{directory}/ddd") and DIGEST.search(ids["long"])
    assert len(ids["long"]) <= MAX_APP_ID_LENGTH
    for app_id in ids.values():
        assert validate_app_id(app_id) == app_id


def test_programs_at_hostile_paths_are_listed_limited_and_kept_across_a_restart(
    private_bus: PrivateSystemBus, pair: NetnsPair, tmp_path: Path
) -> None:
    state_dir = tmp_path / "state"
    streams: dict[str, Stream] = {}
    with hostile_programs(tmp_path / "programs") as programs:
        directory = tmp_path / "programs"
        try:
            with _helper(private_bus, pair, state_dir) as first:
                for port, (kind, program) in enumerate(programs.items(), start=5700):
                    streams[kind] = _upload(pair, port, program)
                pids = {kind: stream.app_pid for kind, stream in streams.items()}

                def listed() -> dict[str, Any]:
                    apps = call_helper(private_bus.address, lambda c: c.list_applications())
                    return {
                        kind: next((a for a in apps if pid in a.pids), None)
                        for kind, pid in pids.items()
                    }

                assert eventually(lambda: None not in listed().values(), 10.0), (
                    "not every program is listed"
                )
                apps = listed()
                _check_ids({kind: app.id for kind, app in apps.items()}, directory)
                assert (
                    apps["not utf-8"].name == "tool\\xff\\xfe"
                    and apps["escapes"].name == "tool\\x1b]0;owned\\x07"
                )

                status, table, errors = _ctl(private_bus.address, "list")
                assert status == 0, errors
                assert _terminal_safe(table) and all(app.id in table for app in apps.values())
                status, text, errors = _ctl(private_bus.address, "list", "--json")
                assert status == 0 and text.isascii(), errors
                assert {app.id for app in apps.values()} <= {
                    entry["id"] for entry in json.loads(text)
                }
                for (
                    kind,
                    app,
                ) in apps.items():  # the escaped id, passed back as it is, names the program
                    status, text, errors = _ctl(
                        private_bus.address, "connections", app.id, "--json"
                    )
                    assert status == 0 and pids[kind] in {c["pid"] for c in json.loads(text)}, (
                        errors
                    )

                limited_ids = {}
                for kind, pid in pids.items():
                    status, text, errors = _ctl(
                        private_bus.address, "limit", f"pid:{pid}", "--up", "1M"
                    )
                    assert status == 0, errors
                    assert _terminal_safe(text) and text.endswith(
                        f": up limited to {format_rate(LIMIT_BPS)}\n"
                    ), text
                    limited_ids[kind] = text.removesuffix(
                        f": up limited to {format_rate(LIMIT_BPS)}\n"
                    )
                assert limited_ids == {kind: app.id for kind, app in apps.items()}
                assert _unlimited_kinds(streams, 6.0) == [], "these programs are not limited"
                assert first.stop() == 0

            stored = _strings(json.loads((state_dir / RULES_FILE).read_text()))
            assert set(limited_ids.values()) <= stored
            with _helper(private_bus, pair, state_dir) as second:
                apps = {
                    app.id: app
                    for app in call_helper(private_bus.address, lambda c: c.list_applications())
                }
                for kind, app_id in limited_ids.items():
                    assert (
                        apps[app_id].limit_bps(Direction.UP) == LIMIT_BPS
                        and pids[kind] in apps[app_id].pids
                    )
                assert not list(state_dir.glob(f"{RULES_FILE}.corrupt-*")), second.log_text()
                assert _unlimited_kinds(streams, RESTART_STALL_S) == [], (
                    "these programs' limits are gone"
                )
        finally:
            for stream in streams.values():
                stream.stop()


@contextlib.contextmanager
def unnamed_netns() -> Iterator[int]:
    """A network namespace as anyone makes one (unshare -n), alive while the
    process that holds it runs: its pid. Its devices go with it."""
    holder = subprocess.Popen(["unshare", "--net", "sleep", "300"])
    try:
        assert eventually(lambda: os.readlink(f"/proc/{holder.pid}/exe").endswith("/sleep"), 5.0)
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()


def _in(pid: int, *argv: str | bytes) -> list[str]:
    """argv run in the namespace process pid is in (bytes kept as os.fsdecode keeps them)."""
    return ["nsenter", f"--net=/proc/{pid}/ns/net", "--", *map(os.fsdecode, argv)]


@contextlib.contextmanager
def hostile_link() -> Iterator[tuple[int, int, bytes, bytes, str]]:
    """A veth pair between two unnamed namespaces, its ends named b"\\xff\\xfe..."
    (not UTF-8) and b"\\x1b[31m..." (an escape sequence), with addresses:
    (holder pid, peer holder pid, name, peer name, peer address)."""
    tag = secrets.token_hex(2).encode()
    name, peer_name = b"\xff\xfect" + tag, b"\x1b[31m" + tag
    subnet = f"10.{180 + int(tag[:2], 16) % 20}.{int(tag[2:], 16)}"
    with unnamed_netns() as holder, unnamed_netns() as peer_holder:
        subprocess.run(["ip", "link", "add", "name", name, "netns", str(holder), "type", "veth",
                        "peer", "name", peer_name, "netns", str(peer_holder)], check=True)  # fmt: skip
        for pid, device, address in (
            (holder, name, f"{subnet}.1"),
            (peer_holder, peer_name, f"{subnet}.2"),
        ):
            subprocess.run(
                _in(pid, "ip", "addr", "add", f"{address}/24", "dev", device), check=True
            )
            subprocess.run(_in(pid, "ip", "link", "set", device, "up"), check=True)
            subprocess.run(_in(pid, "ip", "link", "set", "lo", "up"), check=True)
        yield holder, peer_holder, name, peer_name, f"{subnet}.2"


def test_interfaces_with_hostile_names_in_anyones_namespace_are_listed(
    private_bus: PrivateSystemBus, pair: NetnsPair
) -> None:
    require_program("ip")
    with (
        hostile_link() as (holder, peer_holder, name, peer_name, peer_address),
        _helper(private_bus, pair),
    ):
        escaped, peer_escaped = (
            "\\xff\\xfect" + name[4:].decode(),
            "\\x1b[31m" + peer_name[5:].decode(),
        )
        common = ["--port", "5800", "--seconds", "300"]
        sink = spawn(
            _in(
                peer_holder, sys.executable, str(TRAFFIC_SCRIPT), "serve", "--role", "sink", *common
            ),
            None,
        )
        source = None
        try:
            wait_for_line(sink, "listening")
            source = spawn(_in(holder, sys.executable, str(TRAFFIC_SCRIPT), "connect", "--host", peer_address,
                               "--role", "source", "--rate", str(PACED_BPS), *common), None)  # fmt: skip

            def names() -> set[str]:
                interfaces = call_helper(private_bus.address, lambda c: c.list_interfaces())
                return {i.name for i in interfaces if i.tx_bytes + i.rx_bytes > 0}

            assert eventually(lambda: {escaped, peer_escaped} <= names(), 10.0), names()
            interfaces = call_helper(private_bus.address, lambda c: c.list_interfaces())
            labels = {i.name: i.netns for i in interfaces}
            assert labels[escaped] == f"net:[{os.stat(f'/proc/{holder}/ns/net').st_ino}]"

            status, table, errors = _ctl(private_bus.address, "interfaces")
            assert status == 0, errors
            assert _terminal_safe(table) and escaped in table and peer_escaped in table
            status, text, errors = _ctl(private_bus.address, "interfaces", "--json")
            assert status == 0 and text.isascii(), errors
            assert {escaped, peer_escaped} <= {entry["name"] for entry in json.loads(text)}
        finally:
            for process in (source, sink):
                if process is not None:
                    process.kill()
                    process.wait()
                    if process.stdout is not None:
                        process.stdout.close()


def test_a_named_namespace_with_a_hostile_name_gets_an_escaped_label(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As `ip netns add` would name one, but in a directory of the test's own
    (a real /run/netns entry would show in every `ip netns list` on the machine)."""
    require_root()
    require_program("unshare")
    named = tmp_path / "netns"
    named.mkdir()
    entry = os.fsencode(named) + b"/ns\xff\x1b[2J"
    with unnamed_netns() as holder:
        with open(entry, "wb"):
            pass
        subprocess.run(["mount", "--bind", f"/proc/{holder}/ns/net", entry], check=True)
        try:
            monkeypatch.setattr(namespaces, "NAMED_NETNS_DIR", named)
            directory = namespaces.NamespaceDirectory()
            cookie = namespaces.in_netns(os.fsdecode(entry), lambda: namespaces._look_inside()[0])
            assert cookie is not None
            assert directory.views({cookie})[cookie].label == "ns\\xff\\x1b[2J"
        finally:
            subprocess.run(["umount", entry], check=True)
