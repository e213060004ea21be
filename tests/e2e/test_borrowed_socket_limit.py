"""An upload limit divided between two namespaces of an application's
processes still holds the sum when the application also sends from sockets
in a third namespace where none of its processes is (a socket made there
after setns, or passed over a unix socket): no class of the division holds
that traffic, so the guard must hold the sum at the limit, not at the 1.1
times it runs at for a division the classes hold (issue 13 review;
docs/backends.md, "Every namespace")."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from chadthrottle.contract import Direction
from chadthrottle.helper.kernel.limit_reach import SOCKETS_ONLY

from tests.e2e.conftest import MiB, Stack
from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.netns import (
    TRAFFIC_SCRIPT,
    NetnsPair,
    Receiver,
    Stream,
    app_scope,
    extra_link,
    nsenter_argv,
    spawn,
    wait_for_line,
)
from tests.support.settled_sum import settled_rates
from tests.support.waiting import eventually

LIMIT = 2 * MiB
WIRE = 1448 / 1500
# Two connections, each paced at the socket at about the whole limit: they offer
# twice the limit, so only the guard holds their sum (one alone is held by its pacing).
CONNECTIONS = 2
# A process of the application in the second namespace: a socket, nothing sent.
HOLDER = (
    "import socket, time; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); time.sleep(60)"
)


@pytest.fixture
def scope(stack: Stack) -> Iterator[Path]:
    with app_scope(stack.cgroup_root, own_names.desktop_id("Borrowing", fresh=True)) as created:
        yield created


@pytest.fixture
def peer_scope(stack: Stack) -> Iterator[Path]:
    with app_scope(stack.cgroup_root, own_names.desktop_id("BorrowPeer", fresh=True)) as created:
        yield created


def _borrowed_upload(
    stack: Stack, far: NetnsPair, port: int, scope: Path, peer_scope: Path
) -> Stream:
    """A source in the helper's namespace whose socket is in far's near side."""
    python, script = sys.executable, str(TRAFFIC_SCRIPT)
    sink = spawn(nsenter_argv(far.peer_ns, [python, script, "serve", "--role", "sink", "--port", str(port),
                                            "--seconds", "60"]), peer_scope)  # fmt: skip
    wait_for_line(sink, "listening")
    source = spawn(nsenter_argv(stack.pair.host_ns, [
        python, script, "connect", "--host", far.peer_addr, "--port", str(port), "--role", "source",
        "--seconds", "60", "--socket-netns", f"/run/netns/{far.host_ns}",
    ]), scope)  # fmt: skip
    wait_for_line(source, "connected")
    return Stream(app=source, server=sink, receiver=Receiver(sink))


def test_sockets_in_a_namespace_without_the_apps_processes_do_not_pass_the_division(
    stack: Stack, scope: Path, peer_scope: Path
) -> None:
    second, borrowed = f"ctapp-{secrets.token_hex(3)}", f"ctbor-{secrets.token_hex(3)}"
    with extra_link(second, stack.pair.peer_ns), extra_link(borrowed, stack.pair.peer_ns) as far:
        holder = spawn(nsenter_argv(second, [sys.executable, "-c", HOLDER]), scope)
        streams: list[Stream] = []
        try:
            streams = [
                _borrowed_upload(stack, far, 5760 + i, scope, peer_scope)
                for i in range(CONNECTIONS)
            ]
            app = call_helper(stack.bus_address,
                              lambda c: c.set_limit(f"pid:{streams[0].app_pid}", Direction.UP, LIMIT))  # fmt: skip
            try:
                # the processes' two namespaces are shaped: the limit is divided between them
                divided = (
                    f"divided by demand between the helper's own namespace and namespace {second}"
                )

                def reach() -> str:
                    listed = call_helper(stack.bus_address, lambda c: c.list_applications())
                    return {a.id: a.up_limit_reach for a in listed}.get(app, "")

                assert eventually(lambda: reach().startswith(divided), timeout_s=5.0), reach()
                # ... and its sockets in the third, where no process of it is, are said to be policed
                assert eventually(
                    lambda: f"policed, not shaped in {SOCKETS_ONLY}" in reach(), 3.0
                ), reach()
                total = sum(settled_rates([s.receiver for s in streams], LIMIT, WIRE))
                print(f"borrowed sockets' sum: {total / LIMIT:.3f} of the limit")
                assert 0.9 * LIMIT <= total <= 1.04 * LIMIT, f"{total / LIMIT:.3f} of the limit"
            finally:
                call_helper(stack.bus_address, lambda c: c.clear_limit(app))
        finally:
            for stream in streams:
                stream.stop()
            holder.kill()
            holder.wait(timeout=10)
            if holder.stdout is not None:
                holder.stdout.close()
