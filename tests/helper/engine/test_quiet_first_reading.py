"""An application whose sockets are open and nothing of whose was counted
yet (at the helper's start: its sockets adopted a moment before the first
read) has no rate at its first reading, as a counted one has none: listed
measuring; 0 B/s only once a whole tick between two reads counted nothing
(recording stand-ins for the kernel; the real path:
tests/e2e/test_first_listing_after_start.py, first36).

Before, the start's first listing said 0 B/s, not measuring, for a paced
2 MB/s download that sent nothing in the moment between the adoption and
the first read (2 of 4 runs beside two busy loops), and the window drew it
as a drop to nothing, which the first reading's measuring is there to spare
(spike34)."""

from __future__ import annotations

import pytest
from chadthrottle.contract import ApplicationInfo, BackendInfo, Direction, ProcessTraffic

from tests.helper.engine.admin_engine import AdminEngine
from tests.helper.engine.recording_ports import (
    RecordingDatapath,
    RecordingShaper,
    Traffic,
    curl_index,
)

CURL = "exe:/usr/bin/curl"
CURL_PID = 10
DOWNLOAD_BPS = 2_000_000


class Stage:
    """The engine over recording ports whose start adopted curl's sockets
    (a socket holder) with nothing counted; second() moves one second on
    and ticks."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, holders: set[int] | None = None) -> None:
        self.datapath = RecordingDatapath()
        self.now = 0.0
        self.engine = AdminEngine(
            self.datapath, RecordingShaper(), curl_index(monkeypatch),
            lambda active, viewer_pids=None: [BackendInfo("tc", True, "", ())],
            clock=lambda: self.now,
        )  # fmt: skip
        self.engine.note_socket_holders({CURL_PID} if holders is None else holders)
        self.datapath.traffic = []  # nothing counted since the adoption

    def second(self, rx_bytes: int | None = None) -> tuple[ApplicationInfo, ProcessTraffic]:
        """A tick one second on; rx_bytes: curl's counter then (None: none yet)."""
        self.now += 1.0
        if rx_bytes is not None:
            self.datapath.traffic = [Traffic(CURL_PID, rx_bytes=rx_bytes, tx_bytes=0)]
        self.engine.tick()
        (listed,) = self.engine.list_applications()
        (process,) = self.engine.list_processes(listed.id)
        return listed, process


def test_a_quiet_application_is_measuring_at_its_first_reading(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Measuring, then 0 B/s over a whole quiet tick; its process alike."""
    stage = Stage(monkeypatch)
    first, first_process = stage.second()
    assert first.running and first.rx_bytes == 0
    assert (first.down_measuring, first.up_measuring) == (True, True), (
        "a rate listed that nothing measured: nothing counted in the moment since the adoption"
    )
    assert first_process.down_measuring and first_process.up_measuring
    quiet, quiet_process = stage.second()
    assert (quiet.down_measuring, quiet.up_measuring) == (False, False)
    assert quiet.down_bps == 0.0 and quiet_process.down_bps == 0.0
    assert not quiet_process.down_measuring


def test_a_download_first_counted_after_the_first_reading(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The paced download's rows: measuring until a rate over a whole tick
    of its own counts, then that rate (never a 0 B/s it did not read)."""
    stage = Stage(monkeypatch)
    rows = [stage.second()[0]]
    rows += [stage.second(rx_bytes=n * DOWNLOAD_BPS)[0] for n in (1, 2, 3)]
    said = [(row.down_bps, row.down_measuring) for row in rows]
    assert said == [
        (0.0, True),
        (0.0, True),
        (DOWNLOAD_BPS, False),
        (DOWNLOAD_BPS, False),
    ], said


def test_an_application_announced_since_the_last_tick_is_measuring(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A process announced between two ticks (its first socket) and listed
    before the next (a change publishes) is measuring, not at 0 B/s: no
    read measured it."""
    stage = Stage(monkeypatch, holders=set())
    stage.now += 1.0
    stage.engine.tick()
    assert stage.engine.list_applications() == []  # curl holds no socket yet
    stage.engine.note_new_owner(CURL_PID)
    stage.engine.set_limit(CURL, Direction.DOWN, 1_000_000, 0)  # publishes: curl listed, its rule
    (listed,) = stage.engine.list_applications()
    assert listed.down_limit_bps == 1_000_000
    assert (listed.down_measuring, listed.up_measuring) == (True, True)
    quiet, _ = stage.second()
    assert (quiet.down_measuring, quiet.up_measuring) == (True, True)  # its first tick's read
    assert not stage.second()[0].down_measuring
