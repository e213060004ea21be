"""An asyncio client of the helper, on dbus-fast: the GUI's, and the tests'.

Every failure, from "no bus" to a polkit denial, comes out as one exception
type, HelperClientError (chadthrottle.helper_errors), carrying the D-Bus error
name, so callers map names to words in one table. The GUI runs it on an event
loop in a worker thread; one HelperClient belongs to one event loop. The CLI
uses chadthrottle.blocking_client instead, which starts in a fraction of the time.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

from chadthrottle.bus_connection import connect_system_bus
from chadthrottle.contract import (
    BOTH_DIRECTIONS,
    BUS_NAME,
    INTERFACE,
    METHODS,
    OBJECT_PATH,
    ApplicationInfo,
    BackendInfo,
    ConnectionInfo,
    Direction,
    ErrorName,
    InterfaceInfo,
    LinkShapingInfo,
    ProcessTraffic,
    RuleInfo,
    RuleScope,
    ScheduleInfo,
)
from chadthrottle.dbus_codec import (
    CodecError,
    decode_application,
    decode_backend,
    decode_connection,
    decode_interface,
    decode_link_shaping,
    decode_process,
    decode_rule,
    decode_schedule,
    decode_usage,
)
from chadthrottle.helper_errors import (  # re-exported: the GUI and tests name them from here
    DEFAULT_INTERACTIVE_TIMEOUT_S,
    DEFAULT_TIMEOUT_S,
    DISCONNECTED,
    HELPER_MISSING_NAMES,
    NAME_HAS_NO_OWNER,
    NO_REPLY,
    NO_SERVER,
    SERVICE_UNKNOWN,
    HelperClientError,
)
from chadthrottle.priority import Priority
from chadthrottle.usage_contract import UsageResolution, UsageRow
from dbus_fast import Message, MessageFlag, MessageType
from dbus_fast.aio import MessageBus

__all__ = [
    "DEFAULT_INTERACTIVE_TIMEOUT_S", "DEFAULT_TIMEOUT_S", "DISCONNECTED", "HELPER_MISSING_NAMES",
    "NAME_HAS_NO_OWNER", "NO_REPLY", "NO_SERVER", "SERVICE_UNKNOWN", "HelperClient", "HelperClientError",
]  # fmt: skip


class HelperClient:
    """Calls to io.github.chadthrottle.Helper1; use ``async with`` or connect()/close()."""

    def __init__(
        self,
        bus_address: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        interactive_timeout_s: float = DEFAULT_INTERACTIVE_TIMEOUT_S,
    ) -> None:
        """bus_address None is the system bus (DBUS_SYSTEM_BUS_ADDRESS honoured)."""
        self._bus_address = bus_address
        self._timeout_s = timeout_s
        self._interactive_timeout_s = interactive_timeout_s
        self._bus: MessageBus | None = None

    async def __aenter__(self) -> HelperClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    async def connect(self) -> None:
        if self._bus is not None and self._bus.connected:
            return
        try:
            self._bus = await asyncio.wait_for(
                connect_system_bus(self._bus_address), self._timeout_s
            )
        except Exception as error:
            raise HelperClientError(
                NO_SERVER, f"cannot connect to the system bus: {error}"
            ) from None

    def close(self) -> None:
        if self._bus is not None:
            self._bus.disconnect()
            self._bus = None

    async def get_api_version(self) -> int:
        version: int = (await self._call("GetApiVersion"))[0]
        return version

    async def list_applications(self) -> list[ApplicationInfo]:
        entries = (await self._call("ListApplications"))[0]
        try:
            return [decode_application(entry) for entry in entries]
        except CodecError as error:
            raise HelperClientError(ErrorName.FAILED.value, f"malformed reply: {error}") from None

    async def list_backends(self) -> list[BackendInfo]:
        entries = (await self._call("ListBackends"))[0]
        try:
            return [decode_backend(entry) for entry in entries]
        except CodecError as error:
            raise HelperClientError(ErrorName.FAILED.value, f"malformed reply: {error}") from None

    async def list_connections(self, app_id: str) -> list[ConnectionInfo]:
        entries = (await self._call("ListConnections", app_id=app_id))[0]
        try:
            return [decode_connection(entry) for entry in entries]
        except CodecError as error:
            raise HelperClientError(ErrorName.FAILED.value, f"malformed reply: {error}") from None

    async def list_processes(self, app_id: str) -> list[ProcessTraffic]:
        """Each running process of the application with its own rates (API 6)."""
        entries = (await self._call("ListProcesses", app_id=app_id))[0]
        try:
            return [decode_process(entry) for entry in entries]
        except CodecError as error:
            raise HelperClientError(ErrorName.FAILED.value, f"malformed reply: {error}") from None

    async def list_interfaces(self) -> list[InterfaceInfo]:
        entries = (await self._call("ListInterfaces"))[0]
        try:
            return [decode_interface(entry) for entry in entries]
        except CodecError as error:
            raise HelperClientError(ErrorName.FAILED.value, f"malformed reply: {error}") from None

    async def set_limit(
        self,
        app_id: str,
        direction: Direction,
        rate_bps: int,
        burst_bytes: int = 0,
        *,
        scope: RuleScope = RuleScope.DEFAULT,
        interactive: bool = True,
    ) -> str:
        """Limit one direction (burst_bytes 0: the helper's default) of the
        caller's own processes of the application (RuleScope.OWN) or of every
        user's (ALL; the default is ALL for root, OWN for others). Returns the
        resolved application id. interactive lets polkit ask for a password."""
        resolved: str = (await self._call("SetLimit", interactive=interactive, app_id=app_id, direction=direction.value,
                                          rate_bps=rate_bps, burst_bytes=burst_bytes, scope=scope.value))[0]  # fmt: skip
        return resolved

    async def clear_limit(
        self,
        app_id: str,
        direction: Direction | None = None,
        *,
        scope: RuleScope = RuleScope.DEFAULT,
        interactive: bool = True,
    ) -> str:
        """Remove one direction's limit, or both when direction is None, from
        the caller's own rule (OWN) or the administrator's (ALL)."""
        directions = BOTH_DIRECTIONS if direction is None else direction.value
        resolved: str = (await self._call("ClearLimit", interactive=interactive, app_id=app_id, direction=directions,
                                          scope=scope.value))[0]  # fmt: skip
        return resolved

    async def list_rules(self) -> list[RuleInfo]:
        """The stored rules this caller may see (its own and the administrator's,
        or all of them for a caller who may limit any application)."""
        entries = (await self._call("ListRules"))[0]
        try:
            return [decode_rule(entry) for entry in entries]
        except CodecError as error:
            raise HelperClientError(ErrorName.FAILED.value, f"malformed reply: {error}") from None

    async def set_schedule(
        self,
        app_id: str,
        days: str,
        start: str,
        end: str,
        down_bps: int,
        up_bps: int,
        blocked: str = "",
        *,
        scope: RuleScope = RuleScope.DEFAULT,
        interactive: bool = True,
    ) -> str:
        """Limit (or block: "down", "up", "both") the application only on days
        between start and end (HH:MM, the helper's local time); a rate of 0
        leaves that direction alone."""
        resolved: str = (await self._call("SetSchedule", interactive=interactive, app_id=app_id, days=days,
                                          start=start, end=end, down_bps=down_bps, up_bps=up_bps, blocked=blocked,
                                          scope=scope.value))[0]  # fmt: skip
        return resolved

    async def clear_schedules(
        self,
        app_id: str,
        name: str = "",
        *,
        scope: RuleScope = RuleScope.DEFAULT,
        interactive: bool = True,
    ) -> str:
        """Remove one schedule by its name ("mon-fri 09:00-17:00"), or all ("")."""
        resolved: str = (await self._call("ClearSchedules", interactive=interactive, app_id=app_id, name=name,
                                          scope=scope.value))[0]  # fmt: skip
        return resolved

    async def list_schedules(self) -> list[ScheduleInfo]:
        entries = (await self._call("ListSchedules"))[0]
        try:
            return [decode_schedule(entry) for entry in entries]
        except CodecError as error:
            raise HelperClientError(ErrorName.FAILED.value, f"malformed reply: {error}") from None

    async def set_blocked(self, app_id: str, direction: Direction | None, blocked: bool, *,
                          scope: RuleScope = RuleScope.DEFAULT, interactive: bool = True) -> str:  # fmt: skip
        """Block (or unblock) one direction, or both when direction is None:
        no packet passes, open connections included. Returns the resolved id."""
        directions = BOTH_DIRECTIONS if direction is None else direction.value
        resolved: str = (await self._call("SetBlocked", interactive=interactive, app_id=app_id, direction=directions,
                                          blocked=blocked, scope=scope.value))[0]  # fmt: skip
        return resolved

    async def set_quota(self, app_id: str, direction: Direction | None, quota_bytes: int, period: str,
                        reset_minute: int = 0, then_rate_bps: int = 0, *, scope: RuleScope = RuleScope.DEFAULT,
                        interactive: bool = True) -> str:  # fmt: skip
        """A budget of quota_bytes per period (day, week, month) for one
        direction, or each of both when None; spent, the direction is blocked
        (then_rate_bps 0) or limited to then_rate_bps until the next period."""
        directions = BOTH_DIRECTIONS if direction is None else direction.value
        resolved: str = (await self._call(
            "SetQuota", interactive=interactive, app_id=app_id, direction=directions, quota_bytes=quota_bytes,
            period=period, reset_minute=reset_minute, then_rate_bps=then_rate_bps, scope=scope.value))[0]  # fmt: skip
        return resolved

    async def clear_quota(self, app_id: str, direction: Direction | None = None, *,
                          scope: RuleScope = RuleScope.DEFAULT, interactive: bool = True) -> str:  # fmt: skip
        directions = BOTH_DIRECTIONS if direction is None else direction.value
        resolved: str = (await self._call("ClearQuota", interactive=interactive, app_id=app_id, direction=directions,
                                          scope=scope.value))[0]  # fmt: skip
        return resolved

    async def set_priority(self, app_id: str, priority: Priority | str, *, scope: RuleScope = RuleScope.DEFAULT,
                           interactive: bool = True) -> str:  # fmt: skip
        """critical, high, normal (removes it) or low for the application; served
        in that order under load while a link capacity is set. Returns the resolved id."""
        value = priority.value if isinstance(priority, Priority) else priority
        resolved: str = (await self._call("SetPriority", interactive=interactive, app_id=app_id, priority=value,
                                          scope=scope.value))[0]  # fmt: skip
        return resolved

    async def set_link_capacity(
        self, down_bps: int, up_bps: int, estimate: bool, *, interactive: bool = True
    ) -> None:
        """The bottleneck's rate per direction (0: not shaped), or estimate it;
        all 0 and False: link shaping off. Needs the configure action."""
        await self._call("SetLinkCapacity", interactive=interactive, down_bps=down_bps, up_bps=up_bps,
                         estimate=estimate)  # fmt: skip

    async def get_link_shaping(self) -> LinkShapingInfo:
        shaping = (await self._call("GetLinkShaping"))[0]
        try:
            return decode_link_shaping(shaping)
        except CodecError as error:
            raise HelperClientError(ErrorName.FAILED.value, f"malformed reply: {error}") from None

    async def set_limits_paused(self, paused: bool, *, interactive: bool = True) -> None:
        """Pause every limit (kept, not enforced) or resume them; needs limit-any."""
        await self._call("SetLimitsPaused", interactive=interactive, paused=paused)

    async def get_limits_paused(self) -> bool:
        paused: bool = (await self._call("GetLimitsPaused"))[0]
        return paused

    async def get_usage(
        self, app_id: str, since: int, until: int, resolution: UsageResolution
    ) -> list[UsageRow]:
        """Bytes per application ("" = every one this caller may see) and
        period of resolution, of periods beginning in [since, until) (until 0 =
        now). A caller who may not limit any application sees only the usage
        of their own processes."""
        entries = (await self._call("GetUsage", app_id=app_id, since_unix=since, until_unix=until,
                                    resolution=resolution.value))[0]  # fmt: skip
        try:
            return [decode_usage(entry) for entry in entries]
        except CodecError as error:
            raise HelperClientError(ErrorName.FAILED.value, f"malformed reply: {error}") from None

    async def _call(
        self, member: str, body: list[Any] | None = None, *, interactive: bool = False, **args: Any
    ) -> list[Any]:
        """One method call, its arguments by name (contract.METHODS orders
        them) or as the body; every failure becomes a HelperClientError."""
        spec = METHODS[member]
        if body is None:
            body = spec.body(**args)
        await self.connect()
        assert self._bus is not None
        message = Message(
            destination=BUS_NAME,
            path=OBJECT_PATH,
            interface=INTERFACE,
            member=member,
            signature=spec.in_signature,
            body=body,
            flags=MessageFlag.ALLOW_INTERACTIVE_AUTHORIZATION if interactive else MessageFlag.NONE,
        )
        timeout_s = self._interactive_timeout_s if interactive else self._timeout_s
        try:
            reply = await asyncio.wait_for(self._bus.call(message), timeout_s)
        except TimeoutError:
            raise HelperClientError(
                NO_REPLY, f"the helper did not answer within {timeout_s:.0f} s"
            ) from None
        except Exception as error:
            self.close()
            raise HelperClientError(DISCONNECTED, f"lost the bus connection: {error}") from None
        if reply.message_type is MessageType.ERROR:
            text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
            raise HelperClientError(reply.error_name or ErrorName.FAILED.value, text)
        if reply.signature != spec.out_signature:
            raise HelperClientError(
                ErrorName.FAILED.value,
                f"{member} answered {reply.signature!r}, expected {spec.out_signature!r}",
            )
        return list(reply.body)
