"""Recording stand-ins for the engine's kernel ports, for the engine's unit
tests only (the real kernel path is covered by tests/helper/kernel and tests/e2e)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from chadthrottle.contract import Direction
from chadthrottle.helper.errors import BackendUnavailable, KernelError
from chadthrottle.helper.identity.index import ApplicationIndex
from chadthrottle.helper.identity.processes import ProcessInfo
from chadthrottle.helper.kernel.gates import OPEN, GateSetting
from chadthrottle.helper.kernel.htb import Classes
from chadthrottle.helper.kernel.layout import NO_CAPS, SocketCaps
from chadthrottle.helper.kernel.priority_classes import LinkShaping


@dataclass
class RecordingDatapath:
    cgroup_root: Path = Path("/nonexistent-cgroup-root")
    gates: None = None  # no blocks or quotas here: test_quotas.py and the kernel tests hold those
    process_slots: dict[int, int] = field(default_factory=dict)
    forgotten: list[int] = field(default_factory=list)
    forgotten_owners: list[int] = field(default_factory=list)
    caps: dict[int, SocketCaps] = field(default_factory=dict)
    slot_owners: dict[int, int] = field(default_factory=dict)  # slot -> uid of a user's rule
    old_window_drains: dict[int, float] = field(
        default_factory=dict
    )  # pid -> s its open downloads' old windows take
    old_window_left_answers: dict[int, list[bool | None]] = field(default_factory=dict)
    old_windows_asked: list[tuple[int, int | None]] = field(default_factory=list)  # (pid, made_by)
    between_walks: Callable[[], None] | None = None  # what the engine gave set_between_walks
    events: list[tuple[str, int, int]] = field(
        default_factory=list
    )  # ("clamp" | "tag", pid, rate | slot)
    traffic: list[object] = field(default_factory=list)
    carried: set[int] = field(default_factory=set)  # slots a socket still carries (release_ready)

    def set_between_walks(self, call: Callable[[], None]) -> None:
        self.between_walks = call

    def set_process_slot(
        self, tgid: int, app_slot: int, start: int = 0, later: bool = False
    ) -> int:
        self.events.append(("tag", tgid, app_slot))
        self.process_slots[tgid] = app_slot
        return 1

    def walk_pending(self) -> int:
        return 0  # tagged at once here: tests/helper/kernel/test_pending_walks.py

    def pending_walks(self) -> dict[int, int]:
        return {}

    def release_ready(self, slots: Iterable[int]) -> set[int]:
        """Those no socket carries (carried: a test's; tests/helper/kernel/test_slot_passed_on.py)."""
        return set(slots) - self.carried

    def tag_accepted(self) -> int:
        return 0  # no accept queues here: tests/helper/kernel/test_accept_queue_tagging.py

    def forget_process(self, tgid: int) -> None:
        self.forgotten.append(tgid)
        self.process_slots.pop(tgid, None)

    def set_cgroup_slot(self, cgroup_id: int, app_slot: int) -> None:
        pass

    def set_slot_caps(self, app_slot: int, caps: SocketCaps, later: bool = False) -> None:
        if caps != NO_CAPS:
            self.caps[app_slot] = caps
        else:
            self.caps.pop(app_slot, None)

    def set_slot_owners(self, owners: Mapping[int, int]) -> None:
        self.slot_owners = dict(owners)

    def unclamp_windows(self, tgid: int, wire_bps: int, made_by: int | None = None) -> None:
        self.events.append(("clamp", tgid, wire_bps))  # walked at once here

    def clamp_windows(self, tgid: int, wire_bps: int, made_by: int | None = None,
                      deadline: float | None = None) -> float | None:  # fmt: skip
        self.events.append(("clamp", tgid, wire_bps))
        return self.old_window_drains.get(tgid)

    def old_windows_left(
        self, tgid: int, wire_bps: int, idle_ms: int, made_by: int | None = None,
        deadline: float | None = None,
    ) -> bool | None:  # fmt: skip
        """What old_window_left_answers says next for tgid (None: the kernel
        does not say, as before it carried the window)."""
        self.old_windows_asked.append((tgid, made_by))
        answers = self.old_window_left_answers.get(tgid)
        return answers.pop(0) if answers else None

    def sends_unacked(
        self, tgid: int, marks: Mapping[int, int] | None = None
    ) -> dict[int, int] | None:
        """None: the kernel does not say (nothing to wait for)."""
        return None

    def sends_rtt_us(self, tgid: int, marks: Mapping[int, int]) -> int:
        return 0

    def forget_owner(self, tgid: int) -> None:
        self.forgotten_owners.append(tgid)

    def read_traffic(self) -> list[object]:
        return list(self.traffic)

    def forwarded_matches(self, slots: object) -> dict[int, tuple[int, int]]:
        return {}

    def retire_owners(self, samples: list[object]) -> list[object]:
        retired = [t for t in self.traffic if t in samples]
        self.traffic = [t for t in self.traffic if t not in retired]
        return retired


@dataclass
class RecordingShaper:
    wanted: dict[Direction, Classes] = field(default_factory=dict)
    refuse: bool = False
    refuse_rate_bps: int = 0  # the "kernel" refuses any class at this rate
    sent: dict[int, int] = field(default_factory=dict)
    sent_down: dict[int, int] = field(default_factory=dict)
    reconciles: int = 0
    queue_downloads: bool = True  # like tc; the ebpf policer drops
    gaps: dict[Direction, list[str]] = field(default_factory=dict)
    # tc's own gaps where the policer guards them (hidden from enforcement_gaps: the limit holds)
    tc_gaps: dict[Direction, list[str]] = field(default_factory=dict)
    uncarried: list[str] = field(default_factory=list)  # carrying_gaps'
    limited_pids: set[int] = field(
        default_factory=set
    )  # the processes shape_namespaces_of was last given
    limited_slots: dict[int, int] = field(default_factory=dict)  # ... and their slots
    restats: list[bool] = field(default_factory=list)  # each call's restat
    links: dict[Direction, LinkShaping | None] = field(
        default_factory=dict
    )  # set_link's, last per direction
    backend: str = "tc"
    reach: dict[Direction, dict[int, str]] = field(default_factory=dict)  # limit_reach's, by slot
    reach_viewers: list[set[int] | None] = field(default_factory=list)  # limit_reach's viewer_pids
    gaps_viewers: list[set[int] | None] = field(
        default_factory=list
    )  # enforcement_gaps' viewer_pids

    socket_cookies: dict[int, set[int]] = field(default_factory=dict)  # note_socket_namespaces'

    def note_socket_namespaces(self, cookies: Mapping[int, set[int]]) -> None:
        self.socket_cookies = {slot: set(found) for slot, found in cookies.items()}

    def limit_reach(
        self, direction: Direction, viewer_pids: Collection[int] | None = None
    ) -> dict[int, str]:
        self.reach_viewers.append(None if viewer_pids is None else set(viewer_pids))
        return dict(self.reach.get(direction, {}))

    def enforcement_gaps(
        self, viewer_pids: Collection[int] | None = None
    ) -> dict[Direction, list[str]]:
        self.gaps_viewers.append(None if viewer_pids is None else set(viewer_pids))
        return {direction: list(reasons) for direction, reasons in self.gaps.items()}

    def reconcile(self, wanted: dict[Direction, Classes]) -> None:
        self.reconciles += 1
        if self.refuse:
            raise BackendUnavailable("eth0 has a foreign root qdisc")
        if self.refuse_rate_bps and any(spec.rate_bps == self.refuse_rate_bps for classes in wanted.values()
                                        for spec in classes.values()):  # fmt: skip
            raise KernelError(f"tc refused {self.refuse_rate_bps} B/s")
        self.wanted = {d: dict(c) for d, c in wanted.items()}

    def lossy_grafts(self) -> int:
        return 0  # no uplink here

    def queues(self, direction: Direction) -> bool:
        return self.queue_downloads or direction is Direction.UP

    def set_link(self, direction: Direction, link: LinkShaping | None) -> None:
        self.links[direction] = link

    def linked_directions(self) -> set[Direction]:
        return {d for d, link in self.links.items() if link is not None and self.backend != "ebpf"}

    def link_interfaces(self) -> list[str]:
        return ["eth0"] if self.linked_directions() else []

    def backend_of(self, direction: Direction) -> str:
        return self.backend

    def carrying_gaps(self) -> list[str]:
        return list(self.uncarried)

    def link_gaps(self) -> dict[Direction, list[str]]:
        return {direction: [*self.gaps.get(direction, []), *self.tc_gaps.get(direction, [])]
                for direction in Direction if self.gaps.get(direction) or self.tc_gaps.get(direction)}  # fmt: skip

    def shape_namespaces_of(self, slots: Mapping[int, int], restat: bool = True) -> None:
        self.restats.append(restat)
        self.limited_pids = set(slots)
        self.limited_slots = dict(slots)

    def active_directions(self) -> set[Direction]:
        return {d for d, classes in self.wanted.items() if classes}

    def sent_bytes(self, direction: Direction) -> dict[int, int]:
        return dict(self.sent) if direction is Direction.UP else dict(self.sent_down)


@dataclass(frozen=True)
class Traffic:
    """One owner's counter sample, as Datapath.read_traffic gives it."""

    owner_tgid: int
    rx_bytes: int
    tx_bytes: int = 64
    ifindex: int = 2
    netns_cookie: int = 1
    owner_start: int = 0  # the process's start (0: not known: whichever runs under the pid)


class RecordingGates:
    """helper/kernel/gates.py as the engine sees it: the settings, and what
    the "kernel" counted since each was set (a test sets counted)."""

    def __init__(self) -> None:
        self.settings: dict[tuple[int, Direction], GateSetting] = {}
        self.counted: dict[tuple[int, Direction], int] = {}
        self.renewed = 0

    def set(self, slot: int, direction: Direction, setting: GateSetting) -> None:
        self.counted[(slot, direction)] = 0
        if setting == OPEN:
            self.settings.pop((slot, direction), None)
        else:
            self.settings[(slot, direction)] = setting

    def used_since_set(self, slot: int, direction: Direction) -> tuple[int, int] | None:
        setting = self.settings.get((slot, direction))
        if setting is None or setting.budget_bytes is None:
            return None
        return self.counted[(slot, direction)], setting.budget_bytes

    def renew(self) -> None:
        self.renewed += 1


class SettableClock:
    """A wall clock the test moves (the engine's wall_clock)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def curl_index(monkeypatch: pytest.MonkeyPatch) -> ApplicationIndex:
    """/proc as one process, pid 10, /usr/bin/curl (exe:/usr/bin/curl)."""
    processes = {10: ProcessInfo(10, 1, 1000, "/usr/bin/curl", ("curl",), "curl", "/")}
    monkeypatch.setattr("chadthrottle.helper.engine.tracking.read_process", processes.get)
    monkeypatch.setattr(
        "chadthrottle.helper.engine.tracking.process_exists", processes.__contains__
    )
    return ApplicationIndex(
        list_pids=lambda: list(processes), read=processes.get, read_exe=lambda pid: "/usr/bin/curl"
    )
