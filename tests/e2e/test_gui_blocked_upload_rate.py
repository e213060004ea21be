"""What the window lists for an application whose upload is blocked while its
TCP download goes on (gui10's walk: Harbor Browser's upload, blocked, read
0 B/s beside its running download, while the cell's tooltip says the
download's bare acknowledgements pass the block, counted in its upload).

Real helper, a real TCP download over the veth paced at 2 MB/s, the real
window polling. Measured against the kernel: the application is the only TCP
sender in the host namespace, so that namespace's TCP OutSegs under the block
are its acknowledgements, each 52 bytes at L3 (IPv4 20, TCP 20, timestamps
12), the rate the helper lists (L3). With a used-up upload quota that then
limits to 100 KB/s beneath the block (as Harbor Browser's in the walk), the
helper listed the upload at 0 B/s while its counters (tx_bytes) grew: it took
that rate from the quota's tc class, which passes nothing under the block
(helper/engine/core.py tick, meter.use_shaped; until 2026-12-06). A closed
gate's direction now takes its rate from the counters (Apply.wholly_shaped,
Gating.closed; unit test: tests/helper/engine/test_blocked_direction_rate.py).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Iterator

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from chadthrottle.contract import Direction
from chadthrottle.gui.controller import AppController
from chadthrottle.gui.models.columns import Column, Role
from chadthrottle.gui.models.limit_truth import block_lifts
from PySide6.QtCore import Qt

from tests.e2e.conftest import Stack
from tests.e2e.gui_support import running_gui
from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.netns import app_scope, start_stream

PORT = 5794  # and the next
POLL_S = 0.25
PACE_BPS = 2_000_000  # the download's payload, paced: its ACK rate does not hang on the CPU left
ACK_L3_BYTES = 52
POLLS = 10  # the window's answers judged, under the block
QUOTA_BYTES, THEN_BPS, UPLOAD_BPS = 300_000, 100_000, 200_000


@pytest.fixture
def gui(stack: Stack, qtbot, tmp_path) -> Iterator[AppController]:  # type: ignore[no-untyped-def]
    with running_gui(stack, qtbot, tmp_path / "chadthrottle.ini", POLL_S) as controller:
        yield controller


def _tcp_out_segments(netns: str) -> int:
    """TCP segments sent from the namespace (/proc/net/snmp OutSegs)."""
    snmp = subprocess.run(["ip", "netns", "exec", netns, "cat", "/proc/net/snmp"],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip
    names, values = [line.split()[1:] for line in snmp.splitlines() if line.startswith("Tcp:")]
    return int(dict(zip(names, values, strict=True))["OutSegs"])


@pytest.mark.parametrize("with_quota", [False, True])
def test_a_tcp_download_under_an_upload_block_goes_on_and_its_acks_are_listed_as_upload(
    qtbot, stack: Stack, gui: AppController, with_quota: bool
) -> None:  # type: ignore[no-untyped-def]
    name = "TestGuiUpBlockedQuota" if with_quota else "TestGuiUpBlocked"
    app_id = own_names.app_id(name)
    model = gui.model

    def shown_up() -> tuple[str, float]:
        index = gui.window.table.proxy_index(app_id, Column.UP)  # anew: rows re-sort
        return str(index.data()), float(index.data(Role.RATE_UP) or 0.0)

    def state() -> object:
        return model.limit_state(app_id, Direction.UP)

    with app_scope(stack.cgroup_root, own_names.desktop_id(name)) as scope, \
            app_scope(stack.cgroup_root, own_names.desktop_id(name + "Peer", fresh=True)) as peers:  # fmt: skip
        # the peers in a scope of their own: no rule on their program (the same script) reaches them
        streams = [start_stream(stack.pair, PORT + with_quota, "down", app_cgroup=scope,
                                peer_cgroup=peers, rate_bps=PACE_BPS, seconds=180)]  # fmt: skip
        download = streams[0].receiver
        try:
            qtbot.waitUntil(lambda: model.application(app_id) is not None, timeout=15_000)
            if with_quota:  # an upload that uses it up, as Harbor Browser's in the walk
                streams.append(start_stream(stack.pair, PORT + 2, "up", app_cgroup=scope,
                                            peer_cgroup=peers, rate_bps=UPLOAD_BPS, seconds=180))  # fmt: skip
                call_helper(stack.bus_address, lambda c: c.set_quota(
                    app_id, Direction.UP, QUOTA_BYTES, "day", 0, THEN_BPS))  # fmt: skip
                qtbot.waitUntil(lambda: state().quota_spent, timeout=30_000)  # type: ignore[attr-defined]
            call_helper(stack.bus_address, lambda c: c.set_blocked(app_id, Direction.UP, True))
            # the block set here, listed (ListRules): not the tick or two a used-up quota
            # that then limits is listed blocked until its rate holds (quota_switching)
            qtbot.waitUntil(lambda: block_lifts(state()), timeout=15_000)  # type: ignore[arg-type]
            tooltip = gui.window.table.proxy_index(app_id, Column.UP_LIMIT).data(
                Qt.ItemDataRole.ToolTipRole
            )
            assert "Bare TCP acknowledgements still pass (counted in its upload), so its TCP " \
                "downloads go on" in tooltip, tooltip  # fmt: skip
            qtbot.waitUntil(
                lambda: shown_up()[0] != "…", timeout=15_000
            )  # measured since the block
            qtbot.wait(int(3 * POLL_S * 1000))  # the helper's window wholly under the block
            shown: list[tuple[str, float]] = []
            gui.snapshotShown.connect(lambda: shown.append(shown_up()))
            segments, received, since = (
                _tcp_out_segments(stack.pair.host_ns),
                download.total_bytes(),
                time.monotonic(),
            )
            qtbot.waitUntil(lambda: len(shown) >= POLLS, timeout=60_000)
            elapsed = time.monotonic() - since
            acks_bps = (_tcp_out_segments(stack.pair.host_ns) - segments) * ACK_L3_BYTES / elapsed
            download_bps = (download.total_bytes() - received) / elapsed
            listed = statistics.median(rate for _text, rate in shown)
            print(f"with_quota={with_quota}: download {download_bps / 1e6:.2f} MB/s; ACKs on the wire "
                  f"{acks_bps / 1e3:.2f} KB/s; the Up cell read {[text for text, _ in shown]}")  # fmt: skip
            assert download_bps > 0.5 * PACE_BPS, "the block of uploads stalled the TCP download"
            assert acks_bps > 0, "no acknowledgement left the application"
            assert "0 B/s" not in [text for text, _ in shown], shown
            assert 0.5 * acks_bps <= listed <= 2.0 * acks_bps, (
                f"the Up cell read {listed:.0f} B/s (median), the ACKs {acks_bps:.0f} B/s"
            )
        finally:
            for stream in streams:
                stream.stop()
            call_helper(stack.bus_address, lambda c: c.set_blocked(app_id, None, False))
            if with_quota:
                call_helper(stack.bus_address, lambda c: c.clear_quota(app_id))
