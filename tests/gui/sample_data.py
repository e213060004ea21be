"""Sample applications for widget tests and screenshots (not a fake helper)."""

from __future__ import annotations

import dataclasses

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


NO_CAPACITY = "no link capacity is set"


def priority_applications(uid: int = 1000) -> list[ApplicationInfo]:
    """The samples with priorities (issue 16), seen by uid: Firefox critical and
    in force (round trip 23.4 ms), Steam low but not in force (no capacity),
    Dropbox high by the administrator."""
    changes = {"app:org.mozilla.firefox": dict(priority="critical", priority_owner=uid, rtt_us=23_400),
               "app:com.valvesoftware.Steam": dict(priority="low", priority_owner=uid, priority_problem=NO_CAPACITY),
               "app:com.dropbox.Client": dict(priority="high", priority_owner=ADMIN_OWNER)}  # fmt: skip
    return [dataclasses.replace(a, **changes.get(a.id, {})) for a in sample_applications()]  # type: ignore[arg-type]
