"""An application whose upload is limited goes on downloading at full speed:
its download's acknowledgements are upload packets of the same application,
and behind its limited bulk upload (HTB class queue, or the policer's refusals)
they came late, so the download's sender waited on them (a 5.2 MB/s download
fell to 20-650 KB/s under a 100 KB/s upload limit). The limited application's
download is read together with an unlimited bystander's, so the machine's load
slows both alike."""

from __future__ import annotations

import time

import pytest
from chadthrottle.contract import Direction

from tests.e2e.conftest import Stack
from tests.support.helper_calls import call_helper
from tests.support.netns import app_scope, rates_together, start_stream

pytestmark = pytest.mark.parametrize("stack", ["tc", "ebpf"], indirect=True)

UPLOAD_LIMIT_BPS = 100 * 1024
SETTLE_S = 2.0  # the limit lands within a tick, the upload's queue fills
WINDOW_S = 3.0
# Both downloads are paced by their senders, so neither hangs on how much CPU
# the loaded machine leaves it: unlimited, each reads this rate.
DOWNLOAD_BPS = 100e6
# The limited application's download keeps at least this share of the
# unlimited bystander's once its upload is held: 1.00 at load 8-10. Before its
# acknowledgements skipped its upload class and policer it read 0.004-0.005
# (tc: they waited ~1.8 s in the class queue) and 0.69-0.70 (ebpf: the policer
# refused some; unpaced, 0.00-0.27).
KEPT_SHARE = 0.8
# The limited direction is still held (it ran at hundreds of MB/s before the
# limit): within this of the limit over the window. Its exactness is the limit
# tests' to judge; the ebpf policer's burst swings +-17% over 2.5-3 s windows
# (docs/benchmarks.md, "An upload limit and the application's downloads").
HELD_BOUND = 1.25
# The helper's listed upload rate, over its last two ticks, read 0.92-0.99 of
# the limit; 1.76-1.78 with the ebpf backend while it counted the uncharged
# acknowledgements (5.6 beside an unpaced download: 'limit not met').
# The listed download rate beside a fast upload: 1.78 (tc) and 1.91 (ebpf) times the limit
# while it counted the upload's acknowledgements; within HELD_BOUND now.
LISTED_BOUND = 1.4


def test_an_upload_limit_leaves_the_same_applications_download_alone(stack: Stack) -> None:
    backend = stack.helper.command[stack.helper.command.index("--backend") + 1]
    port = 5700 if backend == "tc" else 5710
    with app_scope(stack.cgroup_root, f"org.chadthrottle.Acks{port}") as scope:
        upload = start_stream(stack.pair, port, "up", app_cgroup=scope)
        download = start_stream(
            stack.pair, port + 1, "down", app_cgroup=scope, rate_bps=DOWNLOAD_BPS
        )
        bystander = start_stream(stack.pair, port + 2, "down", rate_bps=DOWNLOAD_BPS)
        app_id = ""
        try:
            time.sleep(0.3)
            app_id = call_helper(stack.bus_address, lambda c: c.set_limit(f"pid:{upload.app_pid}", Direction.UP,
                                                                          UPLOAD_LIMIT_BPS))  # fmt: skip
            time.sleep(SETTLE_S)
            limited, beside, uploaded = rates_together(
                [download.receiver, bystander.receiver, upload.receiver], WINDOW_S
            )
            assert uploaded < HELD_BOUND * UPLOAD_LIMIT_BPS, (
                f"the upload moved {uploaded / 1e3:.1f} kB/s"
            )
            # its acknowledgements are counted, not listed as upload over the limit
            apps = {
                a.id: a for a in call_helper(stack.bus_address, lambda c: c.list_applications())
            }
            listed = apps[app_id].rate_bps(Direction.UP)
            assert listed < LISTED_BOUND * UPLOAD_LIMIT_BPS, (
                f"the helper listed {listed / 1e3:.1f} kB/s up"
            )
            assert limited >= KEPT_SHARE * beside, (
                f"the upload-limited application downloaded {limited / 1e6:.3f} MB/s "
                f"beside an unlimited one's {beside / 1e6:.3f} MB/s"
            )
        finally:
            for stream in (upload, download, bystander):
                stream.stop()
            if app_id:
                call_helper(stack.bus_address, lambda c: c.clear_limit(app_id))


def test_a_download_limit_leaves_the_same_applications_upload_alone(stack: Stack) -> None:
    """The mirror image: the upload's acknowledgements arrive as packets of
    the application's download, which went into its limited download class
    (tc) or its download policer (ebpf): under a 100 KB/s download limit its
    upload, paced at 100 MB/s, kept 0.015-0.31 (tc) and 0.74-0.98 (ebpf) of
    an unlimited one's beside it."""
    backend = stack.helper.command[stack.helper.command.index("--backend") + 1]
    port = 5720 if backend == "tc" else 5730
    with app_scope(stack.cgroup_root, f"org.chadthrottle.Acks{port}") as scope:
        download = start_stream(stack.pair, port, "down", app_cgroup=scope)
        upload = start_stream(stack.pair, port + 1, "up", app_cgroup=scope, rate_bps=DOWNLOAD_BPS)
        bystander = start_stream(stack.pair, port + 2, "up", rate_bps=DOWNLOAD_BPS)
        app_id = ""
        try:
            time.sleep(0.3)
            app_id = call_helper(stack.bus_address, lambda c: c.set_limit(f"pid:{download.app_pid}", Direction.DOWN,
                                                                          UPLOAD_LIMIT_BPS))  # fmt: skip
            time.sleep(SETTLE_S)
            limited, beside, downloaded = rates_together(
                [upload.receiver, bystander.receiver, download.receiver], WINDOW_S
            )
            assert downloaded < HELD_BOUND * UPLOAD_LIMIT_BPS, (
                f"the download moved {downloaded / 1e3:.1f} kB/s"
            )
            # its upload's acknowledgements are counted, not listed as download over the limit
            app = {
                a.id: a for a in call_helper(stack.bus_address, lambda c: c.list_applications())
            }[app_id]
            listed = app.rate_bps(Direction.DOWN)
            assert listed < HELD_BOUND * UPLOAD_LIMIT_BPS, (
                f"the helper listed {listed / 1e3:.1f} kB/s down"
            )
            assert "above the limit" not in app.down_limit_problem, app.down_limit_problem
            assert limited >= KEPT_SHARE * beside, (
                f"the download-limited application uploaded {limited / 1e6:.3f} MB/s "
                f"beside an unlimited one's {beside / 1e6:.3f} MB/s"
            )
        finally:
            for stream in (upload, download, bystander):
                stream.stop()
            if app_id:
                call_helper(stack.bus_address, lambda c: c.clear_limit(app_id))
