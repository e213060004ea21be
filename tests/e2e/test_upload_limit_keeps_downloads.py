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
            assert uploaded < 1.1 * UPLOAD_LIMIT_BPS, f"the upload moved {uploaded / 1e3:.1f} kB/s"
            assert limited >= KEPT_SHARE * beside, (
                f"the upload-limited application downloaded {limited / 1e6:.3f} MB/s "
                f"beside an unlimited one's {beside / 1e6:.3f} MB/s"
            )
        finally:
            for stream in (upload, download, bystander):
                stream.stop()
            if app_id:
                call_helper(stack.bus_address, lambda c: c.clear_limit(app_id))
