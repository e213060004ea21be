"""Sample applications for widget tests and screenshots (not a fake helper)."""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Iterator
from typing import Protocol
from unittest import mock

from chadthrottle.contract import ADMIN_OWNER, ApplicationInfo

MB = 1_000_000
KB = 1_000


def app(
    app_id: str,
    name: str,
    down_bps: float = 0.0,
    up_bps: float = 0.0,
    pids: tuple[int, ...] = (100,),
    down_limit_bps: int = 0,
    up_limit_bps: int = 0,
    icon: str = "",
) -> ApplicationInfo:
    return ApplicationInfo(
        id=app_id,
        name=name,
        icon=icon,
        uids=(1000,),
        pids=pids,
        down_bps=down_bps,
        up_bps=up_bps,
        rx_bytes=0,
        tx_bytes=0,
        down_limit_bps=down_limit_bps,
        up_limit_bps=up_limit_bps,
    )


def sample_applications() -> list[ApplicationInfo]:
    return [
        app("app:org.mozilla.firefox", "Firefox", 4.98 * MB, 210 * KB, (2210, 2251, 2302), 5 * MB),
        app("app:com.valvesoftware.Steam", "Steam", 3.9 * MB, 12 * KB, (4390, 4412), 4 * MB),
        app("app:com.dropbox.Client", "Dropbox", 120 * KB, 890 * KB, (3120,), 0, 1 * MB),
        app("exe:/usr/bin/curl", "curl", 0, 0, (5120,)),
        app("app:org.gnome.Fractal", "Fractal", 8 * KB, 2.1 * KB, (3300,)),
        app("exe:/usr/bin/syncthing", "syncthing", 310 * KB, 1.4 * MB, (1880, 1881)),
    ]


NO_CAPACITY = "no link capacity is set: set it to your connection's download and upload speeds"


def priority_applications(uid: int = 1000) -> list[ApplicationInfo]:
    """The samples with priorities (issue 16), seen by uid: Firefox critical and
    in force (round trip 23.4 ms), Steam low but not in force (no capacity),
    Dropbox high by the administrator."""
    changes = {"app:org.mozilla.firefox": dict(priority="critical", priority_owner=uid, rtt_us=23_400),
               "app:com.valvesoftware.Steam": dict(priority="low", priority_owner=uid, priority_problem=NO_CAPACITY),
               "app:com.dropbox.Client": dict(priority="high", priority_owner=ADMIN_OWNER)}  # fmt: skip
    return [dataclasses.replace(a, **changes.get(a.id, {})) for a in sample_applications()]  # type: ignore[arg-type]


def sample_history(apps: list[ApplicationInfo], polls: int = 90) -> Iterator[list[ApplicationInfo]]:
    """``polls`` snapshots of ``apps`` whose rates wander under their limits, so a
    screenshot's graph and activity column show a minute and a half of traffic
    (a window shown at once draws empty graphs). Seeded: the same each time."""
    wander = random.Random(1)
    for t in range(polls):
        yield [
            dataclasses.replace(
                a,
                down_bps=min(
                    a.down_limit_bps or 1e12,
                    a.down_bps * (0.75 + 0.25 * math.sin(t / 7 + i) + wander.random() * 0.1),
                ),
                up_bps=min(a.up_limit_bps or 1e12, a.up_bps * (0.7 + 0.3 * math.cos(t / 5 + i))),
            )
            for i, a in enumerate(apps)
        ]


class _Model(Protocol):
    def apply_snapshot(
        self, applications: list[ApplicationInfo], process_names: dict[int, str] | None = None
    ) -> None: ...


def apply_history(
    model: _Model, apps: list[ApplicationInfo], names: dict[int, str] | None = None
) -> None:
    """Feed ``sample_history`` as if polled once a second until now: the detail
    graph places samples by their wall-clock time, so fed at once they drew one
    spike at its right edge."""
    start = time.time()
    snapshots = list(sample_history(apps))
    for i, snapshot in enumerate(snapshots):
        with mock.patch.object(time, "time", return_value=start - len(snapshots) + 1 + i):
            model.apply_snapshot(snapshot, names)
