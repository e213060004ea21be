"""chadthrottle-ctl watch against the real helper: one JSON object a line, over
one bus connection, a bounded --count, and a clean end with a named status on
SIGINT and on a reader that goes away (a helper that goes away, or is not
there: test_cli_watch_without_helper.py, which needs the bus to itself)."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import selectors
import signal
import subprocess
import sys

from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

from tests.e2e.conftest import Stack
from tests.support import own_names
from tests.support.idle_app import idle_app
from tests.support.waiting import eventually

CTL = [sys.executable, "-m", "chadthrottle.cli.ctl"]
# watch starts with SIGINT at its default, as from a terminal: a suite started
# where SIGINT is ignored (`nohup scripts/run-tests &`, a script's background
# job) passes that on to every child, and Python then raises no
# KeyboardInterrupt. env(1) puts the default back and execs in place (same pid).
DEFAULT_SIGINT = ["env", "--default-signal=INT"]


def watch_process(address: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": address}
    return subprocess.Popen([*DEFAULT_SIGINT, *CTL, "watch", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip


def next_line(process: subprocess.Popen[str], timeout_s: float = 10.0) -> str:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        assert selector.select(timeout_s), f"no line from watch within {timeout_s} s"
    return process.stdout.readline()


def finish(process: subprocess.Popen[str], timeout_s: float = 10.0) -> tuple[int, str, str]:
    """(exit status, rest of stdout, stderr); killed if it does not end in time."""
    try:
        out, err = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"watch did not end within {timeout_s} s; stderr: {err}") from None
    return process.returncode, out or "", err or ""


def _connections_of(address: str, pid: int) -> set[str]:
    """The unique bus names whose process is pid, as the bus daemon tells it."""

    async def ask() -> set[str]:
        bus = await MessageBus(bus_address=address).connect()
        try:

            def daemon_call(
                member: str, signature: str = "", body: list[object] | None = None
            ) -> Message:
                return Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                               interface="org.freedesktop.DBus", member=member, signature=signature, body=body or [])  # fmt: skip

            names = (await bus.call(daemon_call("ListNames"))).body[0]
            found = set()
            for name in (n for n in names if n.startswith(":")):
                reply = await bus.call(daemon_call("GetConnectionUnixProcessID", "s", [name]))
                if reply.message_type is MessageType.METHOD_RETURN and reply.body[0] == pid:
                    found.add(name)
            return found
        finally:
            bus.disconnect()

    return asyncio.run(ask())


def test_watch_json_prints_count_lines_of_the_listing_over_one_connection(stack: Stack) -> None:
    with idle_app(
        stack.cgroup_root, stack.pair.host_ns, own_names.desktop_id("TestWatch")
    ) as app_id:
        env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": stack.bus_address}
        listed: list[dict[str, object]] = []

        def app_listed() -> bool:
            listed[:] = json.loads(subprocess.run([*CTL, "list", "--json"], capture_output=True, text=True,
                                                  env=env, timeout=60, check=True).stdout)  # fmt: skip
            return any(app["id"] == app_id for app in listed)

        assert eventually(app_listed, 15.0, 0.2), f"{app_id} never listed"
        process = watch_process(stack.bus_address, "--json", "--interval", "0.3", "--count", "8")
        first = next_line(process)
        seen = [
            _connections_of(stack.bus_address, process.pid)
            for _ in range(3)
            if process.poll() is None
        ]
        status, rest, err = finish(process)
        assert status == 0 and err == "", err

        lines = [first, *rest.splitlines()]
        assert len(lines) == 8 and all(line.strip() for line in lines)
        reports = [json.loads(line) for line in lines]
        assert all(set(report) == {"time", "paused", "applications"} for report in reports)
        assert all(report["paused"] is False for report in reports)
        times = [report["time"] for report in reports]
        assert (
            all(b > a for a, b in itertools.pairwise(times))
            and times[-1] - times[0] >= 7 * 0.3 * 0.8
        )
        watched = next(app for app in reports[-1]["applications"] if app["id"] == app_id)
        from_list = next(app for app in listed if app["id"] == app_id)
        assert list(watched) == list(from_list)  # the same keys, in the same order, as list --json
        assert {key: watched[key] for key in ("name", "pids", "uids")} == {
            key: from_list[key] for key in ("name", "pids", "uids")
        }

        samples = [names for names in seen if names]
        assert samples, "watch was never seen on the bus"
        assert all(len(names) == 1 for names in samples) and len(set().union(*samples)) == 1, (
            samples
        )


def test_watch_ends_on_sigint_with_status_130_and_one_line(stack: Stack) -> None:
    process = watch_process(stack.bus_address, "--json", "--interval", "0.2")
    json.loads(next_line(process))
    process.send_signal(signal.SIGINT)
    status, _rest, err = finish(process)
    assert status == 130 and err == "chadthrottle-ctl: interrupted\n", err


def test_watch_ends_quietly_when_its_reader_goes_away(stack: Stack) -> None:
    process = watch_process(stack.bus_address, "--json", "--interval", "0.1")
    json.loads(next_line(process))
    assert process.stdout is not None
    process.stdout.close()  # as `chadthrottle-ctl watch --json | head -n 1` does
    assert process.stderr is not None
    try:
        status = process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    err = process.stderr.read()
    process.stderr.close()
    assert status == 0 and err == "", (
        err
    )  # no "Exception ignored ... BrokenPipeError", no status 120
