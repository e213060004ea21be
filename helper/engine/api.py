"""What the D-Bus adapter may ask of the engine.

The adapter calls these methods from one worker thread (adapter/engine_thread.py),
one call at a time, except usage(), published() and looking(), which it calls
from any thread. They may block on the kernel. The running engine has threads of its own too (its tick and
new-owner watch, engine/factory.py), so it guards its state with one lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeAlias

from chadthrottle.contract import (
    ADMIN_OWNER,
    ApplicationInfo,
    BackendInfo,
    ConnectionInfo,
    Direction,
    InterfaceInfo,
    LinkShapingInfo,
    ProcessTraffic,
    RuleInfo,
    ScheduleInfo,
)  # fmt: skip
from chadthrottle.helper.engine.quotas import Quota
from chadthrottle.helper.errors import HelperError
from chadthrottle.priority import Priority
from chadthrottle.usage_contract import UsageResolution, UsageRow

if TYPE_CHECKING:  # snapshot.py names Viewer from here
    from chadthrottle.helper.engine.snapshot import Looked, Snapshot


@dataclass(frozen=True)
class ResolvedApplication:
    """An application id as the helper knows it, with the uids owning its processes
    (empty when it has no running process: a stored rule only), the owners of
    its stored rules, and for "pid:N" the uid of process N."""

    app_id: str
    owner_uids: frozenset[int]
    rule_owners: frozenset[int] = frozenset()
    pid_uid: int | None = None


@dataclass(frozen=True)
class Viewer:
    """Who asks for a listing: their uid, and whether they may see (and limit)
    every user's applications."""

    uid: int
    sees_all: bool


# Root's view: every application and rule.
ADMIN_VIEWER = Viewer(0, sees_all=True)


@dataclass(frozen=True)
class SetLimit:
    """Limit one direction of an application (burst_bytes 0: the default burst)."""

    app_id: str
    direction: Direction
    rate_bps: int
    burst_bytes: int
    owner: int = ADMIN_OWNER  # or the uid the rule is for; the adapter always says which


@dataclass(frozen=True)
class ClearLimit:
    """Remove the limits of some directions of an application."""

    app_id: str
    directions: tuple[Direction, ...]
    owner: int = ADMIN_OWNER


@dataclass(frozen=True)
class AddSchedule:
    """Limit or block an application only on some days between two local
    times (helper/engine/schedules.py); a rate of 0 leaves that direction alone."""

    app_id: str
    days: frozenset[int]  # 0 = Monday
    start: int  # minute of the day
    end: int  # minute of the day; end <= start runs past midnight
    down_bps: int
    up_bps: int
    owner: int = ADMIN_OWNER
    blocked: tuple[Direction, ...] = ()  # the directions it blocks while active


@dataclass(frozen=True)
class RemoveSchedules:
    """Remove one schedule of an application by its name ("mon-fri 09:00-17:00"), or all ("")."""

    app_id: str
    name: str
    owner: int = ADMIN_OWNER


@dataclass(frozen=True)
class SetBlocked:
    """Block (or unblock) some directions of an application: no packet passes.
    A rate limit beneath is kept for when the block is lifted."""

    app_id: str
    directions: tuple[Direction, ...]
    blocked: bool
    owner: int = ADMIN_OWNER


@dataclass(frozen=True)
class SetQuota:
    """A budget per period for each of some directions (helper/engine/quotas.py)."""

    app_id: str
    directions: tuple[Direction, ...]
    quota: Quota
    owner: int = ADMIN_OWNER


@dataclass(frozen=True)
class ClearQuota:
    app_id: str
    directions: tuple[Direction, ...]
    owner: int = ADMIN_OWNER


@dataclass(frozen=True)
class SetPriority:
    """An application's priority under load (NORMAL removes it from the rule)."""

    app_id: str
    priority: Priority
    owner: int = ADMIN_OWNER


LimitChange: TypeAlias = (
    SetLimit
    | ClearLimit
    | AddSchedule
    | RemoveSchedules
    | SetBlocked
    | SetQuota
    | ClearQuota
    | SetPriority
)
# Per change: the resolved application id, or why that change was refused.
ChangeOutcome: TypeAlias = str | HelperError


class EngineApi(Protocol):
    def published(self) -> Snapshot | None:
        """The read calls' answers as of the engine's last tick or change,
        from any thread without waiting (snapshot.py); None before the first.
        A write call's changes are in it once the call returned."""

    def looking(self, kind: Looked, viewer: Viewer) -> None:
        """viewer asks for a read of kind: made at each publish while they
        keep asking (from any thread, without waiting)."""

    def list_applications(self, viewer: Viewer) -> list[ApplicationInfo]:
        """Every application with an open socket or recent traffic, with rates,
        and the limit that applies to it as this viewer sees it."""

    def list_rules(self) -> list[RuleInfo]:
        """Every stored rule, of every owner."""

    def list_connections(self, app_id: str, uid: int | None = None) -> list[ConnectionInfo]:
        """The open sockets of a resolved application's processes (with uid:
        of that user's processes only)."""

    def list_processes(self, app_id: str, uid: int | None = None) -> list[ProcessTraffic]:
        """The running processes of a resolved application (with uid: that
        user's only), each with its own rates and totals."""

    def list_interfaces(self) -> list[InterfaceInfo]:
        """Traffic per interface index, from every socket's counters."""

    def list_backends(self, viewer: Viewer = ADMIN_VIEWER) -> list[BackendInfo]:
        """Every enforcement backend, available or not, with the reason."""

    def resolve_application(self, app_id: str) -> ResolvedApplication:
        """Map "pid:N" or an application id to the stable id; raise
        NoSuchApplication when no process and no rule matches."""

    def apply_changes(self, changes: Sequence[LimitChange]) -> list[ChangeOutcome]:
        """Apply the changes in order, as one update of the kernel where they all
        succeed; one outcome per change. Takes effect on open connections."""

    def list_schedules(self) -> list[ScheduleInfo]:
        """Every stored schedule, of every owner, and whether it is active now."""

    def set_limits_paused(self, paused: bool) -> None:
        """Keep every limit but enforce none (True), or enforce them again (False)."""

    def limits_paused(self) -> bool:
        """Whether limits are paused."""

    def set_link_capacity(self, down_bps: int, up_bps: int, estimate: bool) -> None:
        """The bottleneck's rate per direction (0: not shaped), or estimate it;
        stored with the rules. All 0 and False: link shaping off."""

    def link_shaping(self) -> LinkShapingInfo:
        """The link shaping asked for and in force now, and what keeps it from being done."""

    def usage(
        self, app_id: str, since: int, until: int, resolution: UsageResolution, viewer: Viewer
    ) -> list[UsageRow]:
        """Bytes per application ("" = every one the viewer may see) and period
        of resolution, of stored periods beginning in [since, until). Unlike the
        others, safe to call from any thread (the adapter calls it off the
        engine thread)."""
