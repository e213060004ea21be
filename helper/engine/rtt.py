"""The latency readout of protected applications: the median smoothed
round-trip time (tcp_info's srtt) of an application's established TCP sockets.

Measured only for applications whose priority is not normal, at most every
EVERY_S, off the engine's lock: one listing of each process's open files and
one sock_diag dump per network namespace (bench: docs/benchmarks.md,
"Priorities: the helper's side"). Also notes where an application's sockets
live in another network namespace than the helper's: the link tree is in the
helper's only, so that traffic is not ordered.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterable, Mapping

from chadthrottle.helper.identity.connections import socket_inodes
from chadthrottle.helper.kernel.namespaces import in_netns
from chadthrottle.helper.kernel.socket_diag import tcp_rtt_here

EVERY_S = 2.0


def _netns(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return ""


def elsewhere_of(pids: Iterable[int]) -> str:
    """The first network namespace other than the helper's in which one of
    these processes has sockets ("" when none): for an application given a
    priority since the last measure, read on the spot."""
    own = _netns(os.getpid())
    for pid in pids:
        netns = _netns(pid)
        if netns and netns != own and socket_inodes(pid):
            return netns
    return ""


class RttWatch:
    """rtt_us and elsewhere per application, from the last measure()."""

    def __init__(self, every_s: float = EVERY_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._every_s, self._clock = every_s, clock
        self._measured_at = float("-inf")
        self.rtt_us: dict[str, int] = {}  # app id -> median srtt, us (absent: unknown)
        self.elsewhere: dict[str, str] = {}  # app id -> another network namespace its sockets are in
        self.measured: frozenset[str] = frozenset()  # the app ids the last measure was given

    def due(self) -> bool:
        return self._clock() - self._measured_at >= self._every_s

    def measure(self, apps: Mapping[str, list[int]], rtt: bool = True) -> None:
        """apps: application id -> its pids (those whose priority is not normal).
        rtt False: only where their sockets are (no sock_diag dump); rtt_us is
        forgotten rather than kept stale."""
        self._measured_at = self._clock()
        self.measured = frozenset(apps)
        own = _netns(os.getpid())
        inodes: dict[str, dict[str, set[int]]] = {}  # netns -> app id -> socket inodes
        readers: dict[str, int] = {}  # netns -> a pid in it
        elsewhere: dict[str, str] = {}
        for app_id, pids in apps.items():
            for pid in pids:
                netns = _netns(pid)
                found = socket_inodes(pid) if netns else []
                if not found:
                    continue
                readers.setdefault(netns, pid)
                inodes.setdefault(netns, {}).setdefault(app_id, set()).update(found)
                if netns != own:
                    elsewhere.setdefault(app_id, netns)
        self.elsewhere = elsewhere
        if not rtt:
            self.rtt_us = {}
            return
        samples: dict[str, list[int]] = {}
        for netns, by_app in inodes.items():
            wanted = frozenset().union(*by_app.values())
            try:
                dump = lambda: tcp_rtt_here(wanted)  # noqa: E731
                rtts = dump() if netns == own else in_netns(f"/proc/{readers[netns]}/ns/net", dump) or {}
            except OSError:
                continue
            for app_id, app_inodes in by_app.items():
                samples.setdefault(app_id, []).extend(rtts[inode] for inode in app_inodes if inode in rtts)
        self.rtt_us = {app_id: int(statistics.median(values)) for app_id, values in samples.items() if values}
