"""An application with an open but quiet connection is listed (issue 17).

Before: after the helper (re)started, such an application was missing from the
window and from `chadthrottle-ctl list` until it next sent or received a
packet (a chat client's keepalive can be minutes away), because the listing
held only applications whose counters had moved."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.standalone import PrivateSystemBus

from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.helper_process import HelperProcess
from tests.support.netns import (
    TRAFFIC_SCRIPT,
    NetnsPair,
    app_scope,
    nsenter_argv,
    spawn,
    wait_for_line,
)
from tests.support.waiting import eventually

# Connects, says so, then holds the connection without sending a byte.
QUIET_CLIENT = ("import json, socket, sys, time; s = socket.create_connection((sys.argv[1], int(sys.argv[2]))); "
                "print(json.dumps({'connected': True}), flush=True); time.sleep(120)")  # fmt: skip


@pytest.fixture
def sink(pair: NetnsPair) -> Iterator[int]:
    """A listener in the peer namespace that accepts and reads (nothing comes)."""
    port = 6400 + secrets.randbelow(500)
    server = spawn(nsenter_argv(pair.peer_ns, [sys.executable, str(TRAFFIC_SCRIPT), "serve", "--port", str(port),
                                               "--role", "sink", "--connections", "2", "--seconds", "120"]), None)  # fmt: skip
    try:
        wait_for_line(server, "listening")
        yield port
    finally:
        server.kill()
        server.wait()


def _quiet_app(pair: NetnsPair, port: int, scope: Path) -> None:
    app = spawn(
        nsenter_argv(pair.host_ns, [sys.executable, "-c", QUIET_CLIENT, pair.peer_addr, str(port)]),
        scope,
    )
    wait_for_line(app, "connected")  # killed with its scope


def _listed(bus_address: str) -> dict[str, tuple[int, int, bool]]:
    apps = call_helper(bus_address, lambda c: c.list_applications())
    return {app.id: (app.rx_bytes, app.tx_bytes, app.running) for app in apps}


def test_quiet_connections_are_listed_from_the_helpers_start_and_as_they_open(
    private_bus: PrivateSystemBus, pair: NetnsPair, sink: int, tmp_path: Path
) -> None:
    tag = secrets.token_hex(3)
    with app_scope(cgroup2_mount(), own_names.desktop_id(f"QuietBefore{tag}")) as before, \
            app_scope(cgroup2_mount(), own_names.desktop_id(f"QuietAfter{tag}")) as after:  # fmt: skip
        _quiet_app(pair, sink, before)  # connected before the helper starts
        with HelperProcess(private_bus.address, netns=pair.host_ns, state_dir=tmp_path) as helper:
            early = own_names.app_id(f"QuietBefore{tag}")
            assert eventually(lambda: early in _listed(private_bus.address), 5.0), (
                f"an application holding a quiet connection from before the start is not listed: "
                f"{sorted(_listed(private_bus.address))}"
            )
            assert _listed(private_bus.address)[early] == (0, 0, True)
            _quiet_app(pair, sink, after)  # connects while the helper runs, then is quiet
            late = own_names.app_id(f"QuietAfter{tag}")
            assert eventually(lambda: late in _listed(private_bus.address), 5.0)
            assert helper.returncode is None
