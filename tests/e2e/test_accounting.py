"""The numbers in the window are true: bytes of short-lived processes land on
their application, loopback is counted apart, and connections are listed."""

from __future__ import annotations

import sys
import time

from tests.e2e.conftest import Stack
from tests.support.helper_calls import call_helper
from tests.support.netns import TRAFFIC_SCRIPT, app_scope, nsenter_argv, spawn, wait_for_line

CONNECTIONS = 40
PAYLOAD_PER_CONNECTION = 256 * 1024
TICKS_S = 2.5  # the helper reads counters once a second


def test_short_lived_processes_are_attributed_to_their_application(stack: Stack) -> None:
    python, script = sys.executable, str(TRAFFIC_SCRIPT)
    server = spawn(nsenter_argv(stack.pair.peer_ns, [python, script, "serve", "--role", "sink", "--port", "5700",
                                                     "--connections", str(CONNECTIONS), "--seconds", "60"]), None)
    try:
        assert server.stdout is not None and "listening" in server.stdout.readline()
        with app_scope(stack.cgroup_root, "org.chadthrottle.TestBurst") as scope:
            for _ in range(CONNECTIONS):  # each process lives a fraction of a tick
                client = spawn(nsenter_argv(stack.pair.host_ns, [
                    python, script, "connect", "--host", stack.pair.peer_addr, "--port", "5700",
                    "--role", "source", "--bytes", str(PAYLOAD_PER_CONNECTION), "--seconds", "10"]), scope)
                client.communicate(timeout=20)
                assert client.returncode == 0
            time.sleep(TICKS_S)
            apps = {a.id: a for a in call_helper(stack.bus_address, lambda c: c.list_applications())}
        server.wait(timeout=20)
        app = apps["app:org.chadthrottle.TestBurst"]
        payload = CONNECTIONS * PAYLOAD_PER_CONNECTION
        # L3 bytes: the payload plus TCP/IP headers (about 3.6 %) and the handshakes
        assert payload <= app.tx_bytes <= payload * 1.06, f"{app.tx_bytes} B counted for {payload} B of payload"
        assert not app.running and app.pids == ()  # every process exited; still listed with its totals
        assert app.name == "TestBurst"  # and with the name it had
        interfaces = {i.name: i for i in call_helper(stack.bus_address, lambda c: c.list_interfaces())}
        assert interfaces[stack.pair.host_if].tx_bytes >= app.tx_bytes and not interfaces[stack.pair.host_if].loopback
    finally:
        if server.poll() is None:
            server.kill()
        server.wait()
        if server.stdout is not None:
            server.stdout.close()


def test_loopback_is_counted_apart(stack: Stack) -> None:
    """Loopback in the helper's namespace: neither rate includes it."""
    with app_scope(stack.cgroup_root, "org.chadthrottle.TestLoop") as scope:
        listener = spawn(nsenter_argv(stack.pair.host_ns, [
            sys.executable, str(TRAFFIC_SCRIPT), "serve", "--role", "sink", "--port", "5710", "--seconds", "8"]), scope)
        wait_for_line(listener, "listening")
        sender = spawn(nsenter_argv(stack.pair.host_ns, [
            sys.executable, str(TRAFFIC_SCRIPT), "connect", "--host", "127.0.0.1", "--port", "5710",
            "--role", "source", "--rate", "4000000", "--seconds", "6"]), scope)
        try:
            time.sleep(TICKS_S + 1)
            apps = {a.id: a for a in call_helper(stack.bus_address, lambda c: c.list_applications())}
            app = apps["app:org.chadthrottle.TestLoop"]
            assert app.loopback_up_bps > 2_000_000 and app.loopback_down_bps > 2_000_000
            assert app.up_bps < 10_000 and app.down_bps < 10_000
        finally:
            for process in (sender, listener):
                process.kill()
                process.wait()
                if process.stdout is not None:
                    process.stdout.close()
