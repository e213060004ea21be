"""One limit over an application whose connections live in two network
namespaces is divided between them by what each uses
(helper/kernel/namespace_shares.py): while both download, each gets half;
when one stops, the other gets the whole limit back. Before, the namespace
whose connection had the limit first kept all of it and the other's
downloads got nothing (1.00 / 0.00, bench/namespace_share.py)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from chadthrottle.contract import Direction

from tests.e2e.conftest import MiB, Stack
from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.netns import NetnsPair, app_scope, extra_link, rates_together, start_stream

WIRE = 1448 / 1500  # payload per wire byte of a full TCP segment
LIMIT = 2 * MiB
WINDOW_S = 2.0
SETTLE_TIMEOUT_S = 10.0


@pytest.fixture
def scopes(stack: Stack) -> Iterator[tuple[Path, Path]]:
    """The application's app scope and its peers' (per session: another
    session's helper must not limit them)."""
    with app_scope(stack.cgroup_root, own_names.desktop_id("FairShare", fresh=True)) as scope, \
            app_scope(stack.cgroup_root, own_names.desktop_id("FairSharePeer", fresh=True)) as peer:  # fmt: skip
        yield scope, peer


@pytest.fixture
def namespaces(stack: Stack) -> Iterator[tuple[NetnsPair, NetnsPair]]:
    """Two namespaces of the application, each with a link of its own."""
    with extra_link(f"ctfsa-{secrets.token_hex(3)}", stack.pair.peer_ns) as first, \
            extra_link(f"ctfsb-{secrets.token_hex(3)}", stack.pair.peer_ns) as second:  # fmt: skip
        yield first, second


def _settled(read: Iterator[list[float]], within: object) -> list[float]:
    """The first reading within bounds, or the last one by SETTLE_TIMEOUT_S."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        shares = next(read)
        if within(shares) or time.monotonic() > deadline:  # type: ignore[operator]
            return shares


def test_two_namespaces_share_one_download_limit_and_one_gets_it_all_alone(
    stack: Stack, namespaces: tuple[NetnsPair, NetnsPair], scopes: tuple[Path, Path]
) -> None:
    scope, peer = scopes
    streams = [start_stream(namespaces[0], 5980, "down", app_cgroup=scope, peer_cgroup=peer)]
    app = ""
    try:
        app = call_helper(stack.bus_address, lambda c: c.set_limit(
            f"pid:{streams[0].app_pid}", Direction.DOWN, LIMIT))  # fmt: skip
        streams.append(
            start_stream(namespaces[1], 5981, "down", app_cgroup=scope, peer_cgroup=peer)
        )

        def shares() -> Iterator[list[float]]:
            while True:
                rates = rates_together([s.receiver for s in streams], WINDOW_S)
                yield [rate / WIRE / LIMIT for rate in rates]

        # settled: each share and their sum in bounds at one reading (a CI run judged the
        # first reading with both shares in bounds, and it read 0.57 + 0.55 = 1.11: the
        # split still settling, not traced further; the bounds are unchanged)
        both = _settled(shares(), lambda s: all(0.425 <= share <= 0.575 for share in s)
                        and 0.9 <= sum(s) <= 1.1)  # fmt: skip
        assert all(0.425 <= share <= 0.575 for share in both), (
            f"shares {both[0]:.2f} / {both[1]:.2f} of the limit, wanted 0.5 +-15% each"
        )
        assert 0.9 <= sum(both) <= 1.1, f"sum {sum(both):.3f} of the limit"

        streams.pop().stop()  # the second namespace goes idle: the first gets it all
        alone = _settled(shares(), lambda s: 0.9 <= s[0] <= 1.1)
        assert 0.9 <= alone[0] <= 1.1, f"{alone[0]:.2f} of the limit alone"
    finally:
        if app:
            call_helper(stack.bus_address, lambda c: c.clear_limit(app))
        for stream in streams:
            stream.stop()
