"""A scripted stand-in for the helper, for benchmarking the GUI alone.

It owns the helper's bus name on a private dbus-daemon of its own (no polkit,
no kernel) and answers ListApplications with N applications whose rates change
on every call, as a busy desktop's would. SetLimit/ClearLimit are remembered so
the GUI's limit flow works; ListConnections, the paused flag and GetUsage are answered too. It speaks only the shared contract and codec, so
the GUI cannot tell it from the helper on the wire; the GUI's cost (D-Bus
decoding, the model merge, sorting, painting) is what is measured.

    python bench/gui_feed.py --apps 200          # prints the bus address, serves until killed
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import random
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chadthrottle.bus_connection import mend_writer
from chadthrottle.contract import (
    API_VERSION,
    BUS_NAME,
    INTERFACE,
    METHODS,
    OBJECT_PATH,
    ApplicationInfo,
    BackendInfo,
    ConnectionInfo,
    Direction,
    ProcessTraffic,
)
from chadthrottle.dbus_codec import (
    encode_application,
    encode_backend,
    encode_connection,
    encode_process,
    encode_usage,
)
from chadthrottle.usage_contract import UsageRow
from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

# Pids far above what this machine hands out, so the GUI finds no /proc entry
# for them (it shows "pid N"), as for processes of other users.
FAKE_PID_BASE = 3_900_000
BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


CONNECTIONS_SHOWN = 20  # a browser's worth, in the detail pane's table


class ScriptedApplications:
    """N applications with rates that drift smoothly, plus limits set through the bus."""

    def __init__(self, count: int, seed: int = 7) -> None:
        rng = random.Random(seed)
        self._apps = [
            (
                f"exe:/opt/bench/app{i:03d}",
                f"app{i:03d}",
                rng.uniform(1e3, 5e7),
                rng.uniform(0, 6.3),
            )
            for i in range(count)
        ]
        self._pids = {
            app_id: tuple(FAKE_PID_BASE + i * 4 + k for k in range(1 + i % 3))
            for i, (app_id, *_rest) in enumerate(self._apps)
        }
        self.limits: dict[tuple[str, Direction], int] = {}

    def usage(self, app_id: str, since: int, resolution: str) -> list[UsageRow]:
        """One row per application (or per minute of one application) since
        ``since``: each application's mean rate over the time since then."""
        now = int(time.time())
        if resolution == "minute":
            return [UsageRow(app_id, start, start + 60, 60_000_000, 6_000_000)
                    for start in range(since - since % 60, now - 60, 60)]  # fmt: skip
        return [UsageRow(a, since, now, int(scale * (now - since) / 2), int(scale * (now - since) / 20))
                for a, _name, scale, _phase in self._apps if app_id in ("", a)]  # fmt: skip

    def snapshot(self, now_s: float) -> list[ApplicationInfo]:
        result = []
        for app_id, name, scale, phase in self._apps:
            wave = 0.5 + 0.5 * math.sin(now_s / 5 + phase)
            down = scale * wave
            up = scale * 0.1 * (1 - wave)
            down_limit = self.limits.get((app_id, Direction.DOWN), 0)
            up_limit = self.limits.get((app_id, Direction.UP), 0)
            result.append(ApplicationInfo(
                id=app_id, name=name, icon="", uids=(1000,), pids=self._pids[app_id],
                down_bps=min(down, down_limit or down), up_bps=min(up, up_limit or up),
                rx_bytes=int(now_s * down), tx_bytes=int(now_s * up),
                down_limit_bps=down_limit, up_limit_bps=up_limit,
            ))  # fmt: skip
        return result


class FeedService:
    """Answers the helper's methods on the bus from a ScriptedApplications."""

    def __init__(self, bus: MessageBus, applications: ScriptedApplications) -> None:
        self._bus = bus
        self._apps = applications
        self.calls = 0
        self.paused = False

    def handle(self, message: Message) -> bool:
        if message.message_type is not MessageType.METHOD_CALL or message.interface != INTERFACE:
            return False
        self.calls += 1
        spec = METHODS.get(message.member or "")
        if spec is None:
            self._bus.send(
                Message.new_error(message, "org.freedesktop.DBus.Error.UnknownMethod", "unknown")
            )
            return True
        body: list[Any]
        if spec.name == "GetApiVersion":
            body = [API_VERSION]
        elif spec.name == "ListApplications":
            body = [[encode_application(app) for app in self._apps.snapshot(time.monotonic())]]
        elif spec.name == "ListBackends":
            body = [[encode_backend(BackendInfo("ebpf", True, "", ("down", "up")))]]
        elif spec.name == "ListConnections":  # the selected row's, and any expanded row's
            (app_id,) = message.body
            moved = int(
                time.monotonic() * 100_000
            )  # each connection's bytes grow, so the table has rates to show
            body = [[encode_connection(ConnectionInfo("tcp", f"10.0.0.5:{40000 + port}", f"192.0.2.{port}:443",
                                                      "ESTABLISHED", 1, moved * port, moved // 10))
                     for port in range(CONNECTIONS_SHOWN)]]  # fmt: skip
        elif spec.name == "ListProcesses":  # an expanded row's processes, each its share
            (app_id,) = message.body
            app = next((a for a in self._apps.snapshot(time.monotonic()) if a.id == app_id), None)
            pids = app.pids if app is not None else ()
            body = [[encode_process(ProcessTraffic(pid, f"proc{pid}", app.down_bps / len(pids),
                                                   app.up_bps / len(pids), app.rx_bytes // len(pids),
                                                   app.tx_bytes // len(pids)))
                     for pid in pids if app is not None]]  # fmt: skip
        elif (
            spec.name == "GetUsage"
        ):  # the totals column asks every 15 s, the selected row's graph its last hour
            app_id, since, _until, resolution = message.body
            body = [[encode_usage(row) for row in self._apps.usage(app_id, int(since), resolution)]]
        elif spec.name == "ListRules":  # asked each poll; the feed's limits are every caller's own
            body = [[]]
        elif spec.name == "GetLimitsPaused":
            body = [self.paused]
        elif spec.name == "SetLimitsPaused":
            (self.paused,) = message.body
            body = []
        elif spec.name == "SetLimit":
            app_id, direction, rate_bps, _burst = message.body
            self._apps.limits[(app_id, Direction(direction))] = int(rate_bps)
            body = [app_id]
        elif spec.name == "ClearLimit":
            app_id, which = message.body
            for direction in Direction:
                if which in ("both", direction.value):
                    self._apps.limits.pop((app_id, direction), None)
            body = [app_id]
        else:
            self._bus.send(
                Message.new_error(message, "org.freedesktop.DBus.Error.NotSupported", spec.name)
            )
            return True
        self._bus.send(Message.new_method_return(message, spec.out_signature, body))
        return True


async def serve(address: str, count: int) -> None:
    bus = await MessageBus(bus_address=address).connect()
    # As the helper does: unmended, a full send buffer (the GUI or the bus slow
    # under load) dropped the feed's connection, and gui_perf then measured an
    # idle window that says the helper is gone (0.1-0.4 % of a core).
    mend_writer(bus)
    service = FeedService(bus, ScriptedApplications(count))
    bus.add_message_handler(service.handle)
    await bus.request_name(BUS_NAME)
    print(
        f"serving {count} applications as {BUS_NAME} at {OBJECT_PATH}", file=sys.stderr, flush=True
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    bus.disconnect()


@contextlib.contextmanager
def private_bus() -> Iterator[str]:
    """A throw-away dbus-daemon anyone on this machine may own names on."""
    directory = Path(tempfile.mkdtemp(prefix="chadthrottle-bench-bus-"))
    config = directory / "bus.conf"
    config.write_text(BUS_CONFIG.format(socket=directory / "socket"))
    daemon = subprocess.Popen(
        ["dbus-daemon", f"--config-file={config}", "--nofork", "--print-address=1"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        assert daemon.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(daemon.stdout, selectors.EVENT_READ)
            if not selector.select(10.0):
                raise RuntimeError("dbus-daemon did not start")
        yield daemon.stdout.readline().decode().strip()
    finally:
        daemon.terminate()
        daemon.wait(10)
        if daemon.stdout is not None:
            daemon.stdout.close()
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def running_feed(count: int) -> Iterator[str]:
    """A private bus with the feed serving on it; yields the bus address."""
    with private_bus() as address:
        feed = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--address", address, "--apps", str(count)],
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert feed.stderr is not None
            line = feed.stderr.readline()
            if not line.startswith("serving"):
                raise RuntimeError(f"the feed did not start: {line}{feed.stderr.read()}")
            yield address
        finally:
            feed.terminate()
            feed.wait(10)
            if feed.stderr is not None:
                feed.stderr.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--apps", type=int, default=200)
    parser.add_argument(
        "--address", help="serve on this bus (default: start a private one and print it)"
    )
    arguments = parser.parse_args()
    if arguments.address:
        asyncio.run(serve(arguments.address, arguments.apps))
        return 0
    with running_feed(arguments.apps) as address:
        print(address, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main())
