"""A blocking client of the helper for chadthrottle-ctl: the same calls,
answers and errors as chadthrottle.client.HelperClient, without asyncio or
dbus-fast, so that a command-line call costs little more than the interpreter
itself (docs/benchmarks.md, "CLI start-up"). It talks over
chadthrottle.dbus_wire; signatures and the order of arguments come from
contract.METHODS and replies
are decoded by chadthrottle.record_codec, as the asyncio client's are.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from types import TracebackType

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
from chadthrottle.dbus_wire import (
    DEFAULT_SYSTEM_BUS_ADDRESS,
    ERROR,
    FLAG_ALLOW_INTERACTIVE_AUTHORIZATION,
    INVALID_MESSAGE,
    Connection,
    WireError,
)
from chadthrottle.helper_errors import (
    DEFAULT_INTERACTIVE_TIMEOUT_S,
    DEFAULT_TIMEOUT_S,
    DISCONNECTED,
    NO_REPLY,
    NO_SERVER,
    HelperClientError,
)
from chadthrottle.record_codec import (
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

TYPE_CHECKING = (
    False  # not typing's: importing typing costs a CLI call ~2 ms (mypy reads this name alike)
)
if TYPE_CHECKING:
    from typing import Any, TypeVar

    from chadthrottle.priority import Priority
    from chadthrottle.usage_contract import UsageResolution, UsageRow

    T = TypeVar("T")


def system_bus_address() -> str:
    """DBUS_SYSTEM_BUS_ADDRESS, or the system bus's well-known socket."""
    return os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or DEFAULT_SYSTEM_BUS_ADDRESS


class BlockingHelperClient:
    """Calls to io.github.chadthrottle.Helper1 over one connection; use ``with``."""

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
        self._connection: Connection | None = None

    def __enter__(self) -> BlockingHelperClient:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def connect(self) -> None:
        if self._connection is not None and self._connection.connected:
            return
        try:
            self._connection = Connection(
                self._bus_address or system_bus_address(), self._timeout_s
            )
        except WireError as error:
            raise HelperClientError(
                NO_SERVER, f"cannot connect to the system bus: {error.message}"
            ) from None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def get_api_version(self) -> int:
        version: int = self._call("GetApiVersion")[0]
        return version

    def list_applications(self) -> list[ApplicationInfo]:
        return self._records("ListApplications", decode_application)

    def list_backends(self) -> list[BackendInfo]:
        return self._records("ListBackends", decode_backend)

    def list_connections(self, app_id: str) -> list[ConnectionInfo]:
        return self._records("ListConnections", decode_connection, app_id=app_id)

    def list_processes(self, app_id: str) -> list[ProcessTraffic]:
        return self._records("ListProcesses", decode_process, app_id=app_id)

    def list_interfaces(self) -> list[InterfaceInfo]:
        return self._records("ListInterfaces", decode_interface)

    def list_rules(self) -> list[RuleInfo]:
        return self._records("ListRules", decode_rule)

    def set_limit(self, app_id: str, direction: Direction, rate_bps: int, burst_bytes: int = 0, *,
                  scope: RuleScope = RuleScope.DEFAULT, interactive: bool = True) -> str:  # fmt: skip
        """As HelperClient.set_limit: returns the resolved application id."""
        resolved: str = self._call("SetLimit", interactive=interactive, app_id=app_id, direction=direction.value,
                                   rate_bps=rate_bps, burst_bytes=burst_bytes, scope=scope.value)[0]  # fmt: skip
        return resolved

    def clear_limit(self, app_id: str, direction: Direction | None = None, *,
                    scope: RuleScope = RuleScope.DEFAULT, interactive: bool = True) -> str:  # fmt: skip
        """As HelperClient.clear_limit: one direction, or both when None."""
        directions = BOTH_DIRECTIONS if direction is None else direction.value
        resolved: str = self._call("ClearLimit", interactive=interactive, app_id=app_id, direction=directions,
                                   scope=scope.value)[0]  # fmt: skip
        return resolved

    def set_schedule(self, app_id: str, days: str, start: str, end: str, down_bps: int, up_bps: int,
                     blocked: str = "", *, scope: RuleScope = RuleScope.DEFAULT, interactive: bool = True) -> str:  # fmt: skip
        """As HelperClient.set_schedule: returns the resolved application id."""
        resolved: str = self._call("SetSchedule", interactive=interactive, app_id=app_id, days=days, start=start,
                                   end=end, down_bps=down_bps, up_bps=up_bps, blocked=blocked,
                                   scope=scope.value)[0]  # fmt: skip
        return resolved

    def clear_schedules(self, app_id: str, name: str = "", *, scope: RuleScope = RuleScope.DEFAULT,
                        interactive: bool = True) -> str:  # fmt: skip
        """As HelperClient.clear_schedules: one schedule by name, or all ("")."""
        resolved: str = self._call("ClearSchedules", interactive=interactive, app_id=app_id, name=name,
                                   scope=scope.value)[0]  # fmt: skip
        return resolved

    def list_schedules(self) -> list[ScheduleInfo]:
        return self._records("ListSchedules", decode_schedule)

    def set_blocked(self, app_id: str, direction: Direction | None, blocked: bool, *,
                    scope: RuleScope = RuleScope.DEFAULT, interactive: bool = True) -> str:  # fmt: skip
        """As HelperClient.set_blocked: returns the resolved application id."""
        directions = BOTH_DIRECTIONS if direction is None else direction.value
        resolved: str = self._call("SetBlocked", interactive=interactive, app_id=app_id, direction=directions,
                                   blocked=blocked, scope=scope.value)[0]  # fmt: skip
        return resolved

    def set_quota(self, app_id: str, direction: Direction | None, quota_bytes: int, period: str,
                  reset_minute: int = 0, then_rate_bps: int = 0, *, scope: RuleScope = RuleScope.DEFAULT,
                  interactive: bool = True) -> str:  # fmt: skip
        """As HelperClient.set_quota: returns the resolved application id."""
        directions = BOTH_DIRECTIONS if direction is None else direction.value
        resolved: str = self._call("SetQuota", interactive=interactive, app_id=app_id, direction=directions,
                                   quota_bytes=quota_bytes, period=period, reset_minute=reset_minute,
                                   then_rate_bps=then_rate_bps, scope=scope.value)[0]  # fmt: skip
        return resolved

    def clear_quota(self, app_id: str, direction: Direction | None = None, *,
                    scope: RuleScope = RuleScope.DEFAULT, interactive: bool = True) -> str:  # fmt: skip
        directions = BOTH_DIRECTIONS if direction is None else direction.value
        resolved: str = self._call("ClearQuota", interactive=interactive, app_id=app_id, direction=directions,
                                   scope=scope.value)[0]  # fmt: skip
        return resolved

    def set_priority(self, app_id: str, priority: Priority | str, *, scope: RuleScope = RuleScope.DEFAULT,
                     interactive: bool = True) -> str:  # fmt: skip
        """As HelperClient.set_priority: returns the resolved application id."""
        value = getattr(priority, "value", priority)  # a Priority, or its word
        resolved: str = self._call("SetPriority", interactive=interactive, app_id=app_id, priority=value,
                                   scope=scope.value)[0]  # fmt: skip
        return resolved

    def set_link_capacity(
        self, down_bps: int, up_bps: int, estimate: bool, *, interactive: bool = True
    ) -> None:
        """As HelperClient.set_link_capacity."""
        self._call(
            "SetLinkCapacity",
            interactive=interactive,
            down_bps=down_bps,
            up_bps=up_bps,
            estimate=estimate,
        )

    def get_link_shaping(self) -> LinkShapingInfo:
        shaping = self._call("GetLinkShaping")[0]
        try:
            return decode_link_shaping(shaping)
        except CodecError as error:
            raise HelperClientError(ErrorName.FAILED.value, f"malformed reply: {error}") from None

    def set_limits_paused(self, paused: bool, *, interactive: bool = True) -> None:
        self._call("SetLimitsPaused", interactive=interactive, paused=paused)

    def get_limits_paused(self) -> bool:
        paused: bool = self._call("GetLimitsPaused")[0]
        return paused

    def get_usage(
        self, app_id: str, since: int, until: int, resolution: UsageResolution
    ) -> list[UsageRow]:
        """Bytes per application ("" = every one you may see) and period, of
        periods beginning in [since, until) (until 0 = now)."""
        return self._records("GetUsage", decode_usage, app_id=app_id, since_unix=since, until_unix=until,
                             resolution=resolution.value)  # fmt: skip

    def _records(
        self, member: str, decode: Callable[[Mapping[str, Any]], T], **args: Any
    ) -> list[T]:
        entries = self._call(member, **args)[0]
        try:
            return [decode(entry) for entry in entries]
        except CodecError as error:
            raise HelperClientError(ErrorName.FAILED.value, f"malformed reply: {error}") from None

    def _call(self, member: str, body: list[Any] | None = None, *, interactive: bool = False,
              **args: Any) -> list[Any]:  # fmt: skip
        """One method call, its arguments by name (contract.METHODS orders
        them) or as the body; every failure becomes a HelperClientError."""
        spec = METHODS[member]
        if body is None:
            body = spec.body(**args)
        self.connect()
        assert self._connection is not None
        timeout_s = self._interactive_timeout_s if interactive else self._timeout_s
        try:
            reply = self._connection.call(
                BUS_NAME, OBJECT_PATH, INTERFACE, member, spec.in_signature, body, timeout_s=timeout_s,
                flags=FLAG_ALLOW_INTERACTIVE_AUTHORIZATION if interactive else 0,
            )  # fmt: skip
        except WireError as error:
            if error.name == NO_REPLY:
                raise HelperClientError(
                    NO_REPLY, f"the helper did not answer within {timeout_s:.0f} s"
                ) from None
            self.close()  # the stream may be out of step: never read on after a failure
            if error.name == INVALID_MESSAGE:
                raise HelperClientError(
                    ErrorName.FAILED.value, f"malformed message from the bus: {error.message}"
                ) from None
            raise HelperClientError(
                DISCONNECTED, f"lost the bus connection: {error.message}"
            ) from None
        if reply.message_type == ERROR:
            text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
            raise HelperClientError(reply.error_name or ErrorName.FAILED.value, text)
        if reply.signature != spec.out_signature:
            raise HelperClientError(
                ErrorName.FAILED.value,
                f"{member} answered {reply.signature!r}, expected {spec.out_signature!r}",
            )
        return list(reply.body)
