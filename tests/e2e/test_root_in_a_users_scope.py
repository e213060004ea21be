"""A user's rule on their app scope does not reach a root process in it.

A user's rule tags the app scopes inside that user's own systemd instance,
so that sockets a new process of the application opens there are limited
from the first packet. Root's processes run in a user's scope too: what the
user starts with sudo or pkexec from a terminal stays in the terminal's
scope. chadt_sock gave their sockets the scope's slot, so the user's own
rule on the terminal held root's traffic (docs/helper.md, "Nothing over
another user's processes"). Real helper, real polkitd, uid 65534, real traffic."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import MiB, Stack
from tests.support import own_names
from tests.support.netns import Stream, rates_together, start_stream
from tests.support.other_users import ClientAs, client_as, granted, stream_as
from tests.support.waiting import eventually

NOBODY = 65534
FAST_BPS = 20 * MiB  # far above the user's limit; the veth does several hundred MiB/s
WIRE = 1448 / 1500


@pytest.fixture
def nobody(stack: Stack) -> Iterator[ClientAs]:
    with client_as(stack.bus_address, NOBODY) as client, granted(client):
        yield client


@pytest.fixture
def scope_of_nobody(stack: Stack) -> Iterator[Path]:
    """An app scope in NOBODY's own systemd instance, as a launcher makes one."""
    base = stack.cgroup_root / f"{own_names.TEST_NAME_PREFIX}{secrets.token_hex(3)}.slice"
    scope = (
        base
        / f"user@{NOBODY}.service"
        / "app.slice"
        / f"app-gnome-{own_names.desktop_id('Terminal', fresh=True)}-{os.getpid()}.scope"
    )
    scope.mkdir(parents=True)
    try:
        yield scope
    finally:
        for pid in (scope / "cgroup.procs").read_text().split():
            os.kill(int(pid), 9)
        deadline = time.monotonic() + 5
        while (scope / "cgroup.procs").read_text().strip() and time.monotonic() < deadline:
            time.sleep(0.05)
        for directory in (scope, scope.parent, scope.parent.parent, base):
            directory.rmdir()


def test_a_users_scope_rule_leaves_a_root_process_in_that_scope(
    stack: Stack, nobody: ClientAs, scope_of_nobody: Path
) -> None:
    app = "app:" + scope_of_nobody.name.removeprefix("app-gnome-").rsplit("-", 1)[0]
    streams: dict[str, Stream] = {}
    try:
        streams["nobody"] = stream_as(NOBODY, stack.pair, 5833, scope_of_nobody)
        assert eventually(lambda: app in dict(nobody.ask("list")["ok"]), 10.0), "not listed"
        assert nobody.ask("set", app, "up", MiB) == {"ok": app}
        limited = streams["nobody"].receiver
        assert eventually(lambda: limited.rate_bps(0.5) < 1.3 * MiB, 5.0), "the user's not limited"
        # root's process in the user's scope, started after the rule (sudo from the terminal)
        streams["root"] = start_stream(stack.pair, 5834, "up", app_cgroup=scope_of_nobody)
        streams["root"].receiver.rate_bps(1.0)  # a limit lands within 0.3-0.5 s where it reaches
        # both over the same window, each judged on its own (one after the other took 2 s more)
        rate, own = rates_together([streams["root"].receiver, limited], 2.0)
        print(f"root's upload in the user's scope: {rate / MiB:.1f} MiB/s")
        assert rate > FAST_BPS, f"root's upload held to {rate / MiB:.2f} MiB/s by a user's rule"
        assert own / WIRE < 1.15 * MiB, "the user's own process escaped"
        assert nobody.ask("clear", app) == {"ok": app}
    finally:
        for stream in streams.values():
            stream.stop()
