"""In a split run (pytest-xdist, --dist loadfile) the Debian package module
goes to one lane known from the start, so that lane can begin its slow
preparation when it has collected, as a single session does.

Every lane collects every test, but which lane runs a file is decided as the
run goes: so each lane waited to start the package build, the clean root and
`apt install` until the module began, and then waited for them (56 s of CI's
185 s module on 2026-12-07: unpacking 6 s, `apt install` 49-56 s, beside the
build), with its other tests done. Now the module goes to PACKAGE_LANE, which
starts the preparation at collection (tests/packaging/conftest.py, at nice 19
while it runs other tests), and only once half the other files went out, by
when it is made. If that lane is gone (it crashed), any lane takes the module
and prepares it then, as before.
"""

from __future__ import annotations

from typing import Any

PACKAGE_MODULE = "tests/packaging/test_debian_package.py"
PACKAGE_LANE = "gw0"  # pytest-xdist's name of the first worker


def scheduler(config: Any, log: Any) -> Any:
    """A --dist loadfile scheduler that keeps PACKAGE_MODULE for PACKAGE_LANE."""
    from xdist.scheduler import LoadFileScheduling

    class PackageOnItsLane(LoadFileScheduling):  # type: ignore[misc]
        _files = 0  # how many files were queued when the first went out

        def _assign_work_unit(self, node: Any) -> None:
            queue = self.workqueue
            self._files = self._files or len(queue)
            if PACKAGE_MODULE in queue and self._lane_is_up():
                others = len(queue) - 1
                if node.gateway.id == PACKAGE_LANE and others <= self._files // 2:
                    queue.move_to_end(PACKAGE_MODULE, last=False)
                elif others:
                    queue.move_to_end(PACKAGE_MODULE)
                else:
                    return  # only the module is left: its lane takes it
            super()._assign_work_unit(node)

        def _lane_is_up(self) -> bool:
            return any(
                node.gateway.id == PACKAGE_LANE and not node.shutting_down for node in self.nodes
            )

    return PackageOnItsLane(config, log)
