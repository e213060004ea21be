"""The priority tree through the real helper: the "helper" case of
bench/priorities.py, which proves the product rather than its kernel layer.

The helper (tc backend, on the bench's private system bus, in the host
namespace) is asked over D-Bus what a user would ask: the link's capacity
(SetLinkCapacity) and the call's application critical (SetPriority, by the
pid of a process in the call's app scope, as the GUI names a running
application). The bulk applications have no rule: the helper's catch-all
puts them into the default class. Everything asked is taken back when the
block ends (the call's priority normal again, the capacity 0: shaping off).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from chadthrottle.helper.standalone import PrivateSystemBus
from chadthrottle.priority import Priority

from tests.support.helper_calls import call_helper
from tests.support.netns import NetnsPair, nsenter_argv, spawn

ETHERNET_L2_TO_L3 = 1500 / 1514  # the modem counts frames; a capacity is at L3, as limits are
SHAPING_TIMEOUT_S = 20.0  # the engine's next ticks: the tree on the IFBs, the call's class


@contextlib.contextmanager
def shaped_by_the_helper(bus: PrivateSystemBus, pair: NetnsPair, down_bps: int, up_bps: int,
                         call_scope: Path, priority: Priority = Priority.CRITICAL) -> Iterator[str]:  # fmt: skip
    """The link's capacity (the modem's L2 rates, given at L3) and the call
    scope's application at `priority`, through the helper, until the block
    ends; yields the call's application id once the helper says both are in
    force (GetLinkShaping's down/up_shaping, the application's empty
    priority_problem)."""
    holder = spawn(
        nsenter_argv(pair.host_ns, [sys.executable, "-c", "import time; time.sleep(600)"]),
        call_scope,
    )
    app_id = ""
    try:
        call_helper(bus.address, lambda c: c.set_link_capacity(round(down_bps * ETHERNET_L2_TO_L3),
                                                                round(up_bps * ETHERNET_L2_TO_L3), False))  # fmt: skip
        app_id = call_helper(bus.address, lambda c: c.set_priority(f"pid:{holder.pid}", priority))
        _wait_in_force(bus, app_id, priority)
        yield app_id
    finally:
        with contextlib.suppress(Exception):
            if app_id:
                call_helper(bus.address, lambda c: c.set_priority(app_id, Priority.NORMAL))
        with contextlib.suppress(Exception):
            call_helper(bus.address, lambda c: c.set_link_capacity(0, 0, False))
        holder.kill()
        holder.wait(timeout=10)
        if holder.stdout is not None:
            holder.stdout.close()


def _wait_in_force(bus: PrivateSystemBus, app_id: str, priority: Priority) -> None:
    """Until the helper reports the link shaped both ways and the priority in force."""
    deadline = time.monotonic() + SHAPING_TIMEOUT_S
    seen = ""
    while time.monotonic() < deadline:
        shaping = call_helper(bus.address, lambda c: c.get_link_shaping())
        apps = call_helper(bus.address, lambda c: c.list_applications())
        app = next((a for a in apps if a.id == app_id), None)
        seen = f"shaping {shaping}, application {app}"
        if shaping.down_shaping and shaping.up_shaping and app is not None \
                and app.priority == priority.value and not app.priority_problem:  # fmt: skip
            return
        time.sleep(0.2)
    raise RuntimeError(
        f"the helper did not put the priority in force within {SHAPING_TIMEOUT_S:.0f} s: {seen}"
    )
