"""An application that is listed but sends nothing: one loopback connection
that carried one byte, then idle, in an app scope. For tests and benches of
what a client prints, where traffic would only add load and noise."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.support.helper_calls import call_helper
from tests.support.netns import app_scope, nsenter_argv, spawn, wait_for_line
from tests.support.waiting import eventually

_PROGRAM = (
    "import json, socket, time; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); "
    "c = socket.create_connection(s.getsockname()); c.sendall(b'x'); peer = s.accept()[0]; "
    "print(json.dumps({'listening': 1}), flush=True); time.sleep(3600)"
)


@contextlib.contextmanager
def idle_app(
    cgroup_root: Path, netns: str, desktop_id: str, listed_on: str | None = None
) -> Iterator[str]:
    """Run it in netns, in an app scope for desktop_id; yields its application
    id, once the helper on bus address listed_on (if given) lists it."""
    with app_scope(cgroup_root, desktop_id) as scope:
        process = spawn(nsenter_argv(netns, [sys.executable, "-c", _PROGRAM]), scope)
        try:
            wait_for_line(process, "listening")
            app_id = f"app:{desktop_id}"
            if listed_on is not None:
                assert eventually(lambda: _listed(listed_on, app_id), 15.0, 0.1), (
                    f"{app_id} not listed"
                )
            yield app_id
        finally:
            process.kill()
            process.wait(10)
            if process.stdout is not None:
                process.stdout.close()


def _listed(bus_address: str, app_id: str) -> bool:
    return app_id in {app.id for app in call_helper(bus_address, lambda c: c.list_applications())}
