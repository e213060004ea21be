"""Someone's qdisc in place of the HTB on the helper's own download IFB
(`tc qdisc replace dev ctifb... root pfifo`) under a limited download: the
guard held the limit (0.84-1.18 of it per second) but the listing went on
saying it was shaped, and clearing the limit failed ("tc change-class on
interface N failed: No such file or directory"). The helper now says it
(policed, not shaped, for the tick until it is mended), removes that IFB with
its hooks and makes them again: the download is shaped again and the limit
clears, leaving nothing (docs/backends.md, "Filters and programs ChadThrottle
did not create")."""

from __future__ import annotations

import re
import subprocess
import time

from chadthrottle.contract import Direction

from tests.e2e.conftest import Stack
from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.netns import app_scope, start_stream
from tests.support.waiting import eventually

LIMIT_BPS = 1_000_000
WIRE = 1448 / 1500
MADE_AGAIN_WITHIN_S = 10.0  # the gaps are read once a second, the reconcile follows a tick later


def _ifb_roots(stack: Stack) -> dict[str, str]:
    """Each IFB in the helper's namespace -> the kind of its root qdisc."""
    shown = subprocess.run(["ip", "-n", stack.pair.host_ns, "-o", "link", "show", "type", "ifb"],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    return dict(re.findall(r"^\d+: ([^:@]+)[^\n]*? qdisc (\S+)", shown, re.MULTILINE))


def test_a_replaced_root_on_the_download_ifb_is_made_again_and_the_limit_clears(
    stack: Stack,
) -> None:
    before = stack.idle_tc_state()
    with app_scope(stack.cgroup_root, own_names.desktop_id("ReplacedRoot", fresh=True)) as scope:
        stream = start_stream(stack.pair, 5893, "down", app_cgroup=scope)
        app_id = ""
        try:
            app_id = call_helper(stack.bus_address, lambda c: c.set_limit(
                f"pid:{stream.app_pid}", Direction.DOWN, LIMIT_BPS))  # fmt: skip
            ((replaced, kind),) = _ifb_roots(stack).items()
            assert kind == "htb"
            subprocess.run(["tc", "-n", stack.pair.host_ns, "qdisc", "replace", "dev", replaced, "root", "pfifo"],
                           check=True)  # fmt: skip
            eventually(lambda: (roots := _ifb_roots(stack)) and replaced not in roots
                       and set(roots.values()) == {"htb"}, MADE_AGAIN_WITHIN_S, 0.1)  # fmt: skip
            time.sleep(2.0)  # the sender's window after the switch
            received = stream.receiver.rate_bps(2.0) / WIRE
            assert 0.9 * LIMIT_BPS <= received <= 1.1 * LIMIT_BPS, f"{received / 1e6:.3f} MB/s"
            (app,) = [a for a in call_helper(stack.bus_address, lambda c: c.list_applications())
                      if a.id == app_id]  # fmt: skip
            assert (app.down_limit_problem, app.down_limit_reach) == ("", ""), app
        finally:
            stream.stop()
            if app_id:
                call_helper(stack.bus_address, lambda c: c.clear_limit(app_id))  # failed before
    assert stack.idle_tc_state() == before
