"""What the engine needs from the world around it: the kernel ports (datapath,
shaper), the fork lineage, the network namespaces and the usage history.

One neutral module so the engine's parts (plan.py, kernel_hold.py,
tracking.py, core.py) and its stand-ins in tests name the same interfaces
without importing one another or the kernel code that implements them
(helper/kernel/, helper/usage/).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from chadthrottle.contract import Direction
from chadthrottle.helper.engine.api import Viewer
from chadthrottle.helper.engine.gating import GatePort
from chadthrottle.helper.engine.rates import CounterSample
from chadthrottle.helper.kernel.htb import Classes
from chadthrottle.helper.kernel.layout import SocketCaps
from chadthrottle.helper.kernel.namespaces import NetnsView
from chadthrottle.helper.kernel.priority_classes import LinkShaping
from chadthrottle.usage_contract import UsageResolution, UsageRow


class DatapathPort(Protocol):
    @property
    def cgroup_root(self) -> Path: ...
    @property
    def gates(self) -> GatePort | None: ...  # blocks and quotas; None: a datapath without them

    def set_process_slot(
        self, tgid: int, app_slot: int, start: int = 0, later: bool = False
    ) -> int: ...  # start: the process meant; later: a first tag's walk waits (walk_pending)
    def forget_process(self, tgid: int) -> None: ...
    # the walks of open sockets (tags, untags, caps), for a bounded time a call: how many still wait
    def walk_pending(self) -> int: ...
    def pending_walks(self) -> dict[int, int]: ...  # tgid -> slot its open sockets wait for
    # of slots to give to other rules, those no socket carries: a walk's open sockets
    # until it ends, a socket passed on (the rest vetted meanwhile, bounded per call)
    def release_ready(self, slots: Iterable[int]) -> set[int]: ...
    def tag_accepted(self) -> int: ...  # accepted since waiting at a walk: walks made
    def forget_owner(self, tgid: int) -> None: ...
    def set_cgroup_slot(self, cgroup_id: int, app_slot: int) -> None: ...
    # later: the open sockets' walks wait for walk_pending
    def set_slot_caps(self, app_slot: int, caps: SocketCaps, later: bool = False) -> None: ...
    def set_slot_owners(self, owners: Mapping[int, int]) -> None: ...  # slot -> uid of users' rules
    # windows clamped ahead of a refused change back to wire_bps (0: none), by walk_pending
    def unclamp_windows(self, tgid: int, wire_bps: int, made_by: int | None = None) -> None: ...
    def clamp_windows(
        self, tgid: int, wire_bps: int, made_by: int | None = None, deadline: float | None = None
    ) -> float | None: ...  # deadline (monotonic): the walk stops there
    def old_windows_left(
        self, tgid: int, wire_bps: int, idle_ms: int, made_by: int | None = None,
        deadline: float | None = None,
    ) -> bool | None: ...  # fmt: skip
    def sends_unacked(
        self, tgid: int, marks: Mapping[int, int] | None = None
    ) -> dict[int, int] | None: ...
    def sends_rtt_us(self, tgid: int, marks: Mapping[int, int]) -> int: ...  # 0: not read
    def read_traffic(self) -> Sequence[CounterSample]: ...
    # slot -> (upload, download) packets of its forwarded flows classed at the uplinks
    def forwarded_matches(self, slots: Iterable[int]) -> Mapping[int, tuple[int, int]]: ...
    def retire_owners(self, samples: list[CounterSample]) -> Sequence[CounterSample]: ...
    # called after each process's descriptors walked (tags, caps, clamps), under the engine lock
    def set_between_walks(self, call: Callable[[], None]) -> None: ...


class UsagePort(Protocol):
    """The usage history (helper/usage/recorder.py): fed each tick under the
    engine lock, read from any thread."""

    def retire(
        self,
        final_samples: Iterable[CounterSample],
        owner_of: Callable[[CounterSample], tuple[str, int | None] | None],
    ) -> None: ...
    def update(
        self,
        samples: Iterable[CounterSample],
        owner_of: Callable[[CounterSample], tuple[str, int | None] | None],
    ) -> None: ...
    def query(
        self, app_id: str, since: int, until: int, resolution: UsageResolution, viewer: Viewer
    ) -> list[UsageRow]: ...


class LineagePort(Protocol):
    # The parent whose program a process still runs (no exec), or None and why,
    # in a few words for the log, from one look; start: the process's start in
    # clock ticks (0: not known), matched to its fork.
    def parent_or_why(self, tgid: int, start: int = 0) -> tuple[int | None, str]: ...


class NamespacePort(Protocol):
    own_cookie: int  # the helper's own network namespace's

    def views(self, cookies: Iterable[int]) -> dict[int, NetnsView]: ...


class ShaperPort(Protocol):
    def reconcile(self, wanted: dict[Direction, Classes]) -> None: ...
    def lossy_grafts(self) -> int: ...  # clsacts added since last asked that dropped packets
    def active_directions(self) -> set[Direction]: ...
    def sent_bytes(self, direction: Direction) -> dict[int, int]: ...  # what limits let through
    def queues(self, direction: Direction) -> bool: ...
    def enforcement_gaps(
        self, viewer_pids: Collection[int] | None = None
    ) -> dict[Direction, list[str]]: ...  # viewer_pids: a user's; others' namespaces unnamed
    def limit_reach(
        self, direction: Direction, viewer_pids: Collection[int] | None = None
    ) -> dict[int, str]: ...  # slot -> how its limit holds per namespace (limit_reach.py);
    # viewer_pids: a user's processes, whose namespaces alone are named (None: all)
    def note_socket_namespaces(
        self, cookies: Mapping[int, set[int]]
    ) -> None: ...  # slot -> netns cookies its sockets moved bytes in (plan.socket_namespaces)
    def shape_namespaces_of(
        self, slots: Mapping[int, int], restat: bool = True
    ) -> None: ...  # pid -> slot: the network namespaces to shape in; restat: read all again
    def set_link(
        self, direction: Direction, link: LinkShaping | None
    ) -> None: ...  # at the next reconcile
    def linked_directions(self) -> set[Direction]: ...  # the link tree is on the kernel
    def link_interfaces(self) -> list[str]: ...  # the uplinks it holds
    def backend_of(self, direction: Direction) -> str: ...  # "tc" or "ebpf"
    def link_gaps(
        self,
    ) -> dict[Direction, list[str]]: ...  # where traffic can pass the link tree, guarded or not
    def carrying_gaps(
        self,
    ) -> list[str]: ...  # why a container's priority is not carried by some device
