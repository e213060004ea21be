"""What the GUI needs from the helper client, and how it gets one.

The worker is written against this protocol so that the real dbus-fast client
(``chadthrottle.client.HelperClient``) can be passed in, with the bus address
chosen by whoever builds the application (tests use a private bus).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from chadthrottle.contract import (
    ApplicationInfo,
    BackendInfo,
    ConnectionInfo,
    Direction,
    LinkShapingInfo,
    ProcessTraffic,
    RuleInfo,
    ScheduleInfo,
)
from chadthrottle.helper_run_state import LastStop, read_last_stop
from chadthrottle.usage_contract import UsageResolution, UsageRow


class HelperClientLike(Protocol):
    """The asyncio helper client's methods the GUI uses."""

    async def connect(self) -> None: ...

    async def list_applications(self) -> list[ApplicationInfo]: ...

    async def list_backends(self) -> list[BackendInfo]: ...

    async def list_connections(self, app_id: str) -> list[ConnectionInfo]: ...

    async def list_processes(self, app_id: str) -> list[ProcessTraffic]: ...

    async def set_limit(
        self, app_id: str, direction: Direction, rate_bps: int, burst_bytes: int = 0
    ) -> str: ...

    async def clear_limit(self, app_id: str, direction: Direction | None = None) -> str: ...

    async def list_rules(self) -> list[RuleInfo]: ...

    async def set_limits_paused(self, paused: bool) -> None: ...

    async def get_limits_paused(self) -> bool: ...

    async def get_usage(
        self, app_id: str, since: int, until: int, resolution: UsageResolution
    ) -> list[UsageRow]: ...

    async def set_priority(self, app_id: str, priority: str) -> str: ...

    async def set_link_capacity(self, down_bps: int, up_bps: int, estimate: bool) -> None: ...

    async def get_link_shaping(self) -> LinkShapingInfo: ...

    # The rules dialog's calls (gui/rules_flow.py, the tray's block: gui/controller.py)
    async def list_schedules(self) -> list[ScheduleInfo]: ...

    async def set_schedule(
        self,
        app_id: str,
        days: str,
        start: str,
        end: str,
        down_bps: int,
        up_bps: int,
        blocked: str = "",
    ) -> str: ...

    async def clear_schedules(self, app_id: str, name: str = "") -> str: ...

    async def set_blocked(self, app_id: str, direction: Direction | None, blocked: bool) -> str: ...

    async def set_quota(
        self,
        app_id: str,
        direction: Direction | None,
        quota_bytes: int,
        period: str,
        reset_minute: int = 0,
        then_rate_bps: int = 0,
    ) -> str: ...

    async def clear_quota(self, app_id: str, direction: Direction | None = None) -> str: ...

    def close(self) -> Awaitable[None] | None: ...  # the worker awaits what a stand-in returns


ClientFactory = Callable[[], HelperClientLike]


class BusClientFactory:
    """Makes the real client of one bus (None: the system bus); and reads the
    run record of that bus's helper (chadthrottle.helper_run_state), which the
    worker asks when the helper is gone: stopped cleanly or killed."""

    def __init__(self, bus_address: str | None = None) -> None:
        self.bus_address = bus_address

    def __call__(self) -> HelperClientLike:
        from chadthrottle.client import HelperClient

        return HelperClient(bus_address=self.bus_address)  # type: ignore[return-value]

    def last_stop(self) -> LastStop:
        return read_last_stop(self.bus_address)


def default_client_factory(bus_address: str | None = None) -> ClientFactory:
    """A factory for the real client on the system bus (or ``bus_address``).

    The client is imported lazily so that widget tests never need dbus-fast.
    """
    return BusClientFactory(bus_address or None)
