"""What the D-Bus adapter may ask of the engine.

The adapter calls these methods from one worker thread, one call at a time, so
implementations need no locking of their own; they may block on the kernel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from chadthrottle.contract import ApplicationInfo, BackendInfo, ConnectionInfo, Direction, InterfaceInfo


@dataclass(frozen=True)
class ResolvedApplication:
    """An application id as the helper knows it, with the uids owning its processes
    (empty when it has no running process: a stored rule only)."""

    app_id: str
    owner_uids: frozenset[int]


class EngineApi(Protocol):
    def list_applications(self) -> list[ApplicationInfo]:
        """Every application with an open socket or recent traffic, with rates."""

    def list_connections(self, app_id: str) -> list[ConnectionInfo]:
        """The open sockets of a resolved application's processes."""

    def list_interfaces(self) -> list[InterfaceInfo]:
        """Traffic per interface index, from every socket's counters."""

    def list_backends(self) -> list[BackendInfo]:
        """Every enforcement backend, available or not, with the reason."""

    def resolve_application(self, app_id: str) -> ResolvedApplication:
        """Map "pid:N" or an application id to the stable id; raise
        NoSuchApplication when nothing matches."""

    def set_limit(self, app_id: str, direction: Direction, rate_bps: int, burst_bytes: int) -> str:
        """Limit one direction of an application (burst_bytes 0: default).
        Returns the resolved application id. Takes effect on open connections."""

    def clear_limit(self, app_id: str, directions: tuple[Direction, ...]) -> str:
        """Remove the limits of those directions. Returns the resolved id."""

    def set_limits_paused(self, paused: bool) -> None:
        """Keep every limit but enforce none (True), or enforce them again (False)."""

    def limits_paused(self) -> bool:
        """Whether limits are paused."""
