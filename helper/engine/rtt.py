"""The latency readout of protected applications: the median smoothed
round-trip time (tcp_info's srtt) of an application's established TCP sockets.

Measured only for applications whose priority is not normal, at most every
EVERY_S, off the engine's lock: one listing of each process's open files and
one sock_diag dump per network namespace (bench: docs/benchmarks.md,
"Priorities: the helper's side"). Also notes where an application's sockets
live in another network namespace than the helper's: the link tree is in the
helper's only, so that traffic is not ordered. Both per application and per
(application, uid): a viewer who may not see every user's processes is shown
only what its own processes' sockets say (the listing narrows rates likewise).
"""

from __future__ import annotations

import functools
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
    """rtt_us and elsewhere per application, from the last measure(); also
    per user of it (seen_by), since a user is shown only their own processes."""

    def __init__(
        self, every_s: float = EVERY_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._every_s, self._clock = every_s, clock
        self._measured_at = float("-inf")
        self.rtt_us: dict[str, int] = {}  # app id -> median srtt, us (absent: unknown)
        self.elsewhere: dict[
            str, str
        ] = {}  # app id -> another network namespace its sockets are in
        self.measured: frozenset[str] = frozenset()  # the app ids the last measure was given
        self._by_user: dict[
            tuple[str, int], tuple[int, str]
        ] = {}  # (app id, uid) -> (rtt_us, elsewhere)

    def due(self) -> bool:
        return self._clock() - self._measured_at >= self._every_s

    def seen_by(self, app_id: str, uid: int | None) -> tuple[int, str]:
        """(rtt_us, elsewhere) over every process of the application (uid
        None), or over one user's processes of it only."""
        if uid is None:
            return self.rtt_us.get(app_id, 0), self.elsewhere.get(app_id, "")
        return self._by_user.get((app_id, uid), (0, ""))

    def measure(
        self,
        apps: Mapping[str, list[int]],
        rtt: bool = True,
        uids: Mapping[int, int] | None = None,
        progress: Callable[[], None] = lambda: None,
    ) -> None:
        """apps: application id -> its pids (those whose priority is not normal).
        rtt False: only where their sockets are (no sock_diag dump); rtt_us is
        forgotten rather than kept stale. uids: pid -> its user, for seen_by.
        progress: called after each process's descriptors and each
        namespace's dump (a user sizes both: the engine keeps the gates'
        leases while it is called, EngineCore._tick_working)."""
        self._measured_at = self._clock()
        self.measured = frozenset(apps)
        uids = uids or {}
        own = _netns(os.getpid())
        inodes: dict[
            str, dict[tuple[str, int | None], set[int]]
        ] = {}  # netns -> (app id, uid) -> socket inodes
        readers: dict[str, int] = {}  # netns -> a pid in it
        elsewhere: dict[tuple[str, int | None], str] = {}
        for app_id, pids in apps.items():
            for pid in pids:
                netns = _netns(pid)
                found = socket_inodes(pid) if netns else []
                progress()
                if not found:
                    continue
                key = (app_id, uids.get(pid))
                readers.setdefault(netns, pid)
                inodes.setdefault(netns, {}).setdefault(key, set()).update(found)
                if netns != own:
                    elsewhere.setdefault(key, netns)
        self.elsewhere = {}
        for (app_id, _uid), netns in elsewhere.items():
            self.elsewhere.setdefault(app_id, netns)
        samples: dict[tuple[str, int | None], list[int]] = {}
        for netns, by_key in inodes.items() if rtt else ():
            wanted = frozenset().union(*by_key.values())
            try:
                dump = functools.partial(tcp_rtt_here, wanted)
                rtts = (
                    dump()
                    if netns == own
                    else in_netns(f"/proc/{readers[netns]}/ns/net", dump) or {}
                )
            except OSError:
                continue
            finally:
                progress()
            for key, key_inodes in by_key.items():
                samples.setdefault(key, []).extend(
                    rtts[inode] for inode in key_inodes if inode in rtts
                )
        by_app: dict[str, list[int]] = {}
        for (app_id, _uid), values in samples.items():
            by_app.setdefault(app_id, []).extend(values)
        self.rtt_us = {
            app_id: int(statistics.median(values)) for app_id, values in by_app.items() if values
        }
        users = {(app_id, uid) for app_id, uid in [*samples, *elsewhere] if uid is not None}
        self._by_user = {
            key: (
                int(statistics.median(samples[key])) if samples.get(key) else 0,
                elsewhere.get(key, ""),
            )
            for key in users
        }
