"""Which enforcement backends this kernel supports, why not when it doesn't,
and which one enforces each direction.

Both backends share the datapath (socket tags in the cgroup_skb programs):
- tc: HTB on an IFB per namespace and direction, behind a cls_bpf + mirred
  redirect on every uplink. Shapes: queues instead of dropping, no retransmits.
- ebpf: the policer compiled into the cgroup_skb programs (bpf/policer.h).
  Needs only what the datapath needs; refuses packets over the limit.

"auto" prefers tc in each direction where the kernel has what it needs, and
falls back to ebpf per direction. Measured on the development machine
(bench/policer_probe.py, docs/backends.md): both are within a few percent for
TCP, but tc gets there with no drops and no retransmissions and holds the
rate smoothly. With either, uploads are paced at the socket (plan.py,
UPLOAD_PACING_SHARE) and come out smooth; ebpf downloads are policed: in
bursts, through the sender's retransmissions.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

from chadthrottle.contract import BackendInfo, Direction
from chadthrottle.helper.engine.sent_counts import ContinuousCounts
from chadthrottle.helper.errors import BackendUnavailable
from chadthrottle.helper.kernel.htb import Classes
from chadthrottle.helper.kernel.limit_reach import (
    OTHER_USERS,
    OWN_NAMESPACE,
    namespaces_of,
    ordered,
    policed_reach,
)
from chadthrottle.helper.kernel.namespace_shapers import namespace_label
from chadthrottle.helper.kernel.priority_classes import LinkShaping

TC, EBPF = "tc", "ebpf"
BACKEND_CHOICES = ("auto", TC, EBPF)

# Both directions: HTB on an IFB per namespace, fed by a cls_bpf + mirred
# redirect on each uplink's ingress (downloads) or clsact egress (uploads).
TC_DOWNLOAD_CONFIG = {
    "CONFIG_NET_SCH_HTB": "HTB qdisc",
    "CONFIG_NET_SCH_FIFO": "bfifo qdisc",
    "CONFIG_NET_SCH_INGRESS": "ingress/clsact qdisc",
    "CONFIG_IFB": "IFB device",
    "CONFIG_NET_CLS_BPF": "cls_bpf classifier",
    "CONFIG_NET_ACT_MIRRED": "mirred action",
}
TC_UPLOAD_CONFIG = TC_DOWNLOAD_CONFIG
TC_CONFIG = TC_DOWNLOAD_CONFIG
EBPF_CONFIG = {
    "CONFIG_BPF_SYSCALL": "BPF system call",
    "CONFIG_CGROUP_BPF": "BPF programs on cgroups",
}


def kernel_config(path: Path = Path("/proc/config.gz")) -> dict[str, str] | None:
    """The running kernel's config, or None when the kernel does not expose it."""
    try:
        text = gzip.decompress(path.read_bytes()).decode()
    except OSError:
        return None
    config = {}
    for line in text.splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            key, value = line.split("=", 1)
            config[key] = value
    return config


def _missing(config: dict[str, str] | None, wanted: Mapping[str, str]) -> list[str]:
    if config is None:
        return []  # unknown: try, and report the kernel's refusal if it comes
    return [
        f"{name} ({option})"
        for option, name in wanted.items()
        if config.get(option) not in ("y", "m")
    ]


def tc_missing(config: dict[str, str] | None, direction: Direction | None = None) -> list[str]:
    """Kernel features the tc backend needs (for one direction, or both) and this kernel lacks."""
    return _missing(config, TC_UPLOAD_CONFIG if direction is Direction.UP else TC_DOWNLOAD_CONFIG)


def ebpf_missing(config: dict[str, str] | None) -> list[str]:
    return _missing(config, EBPF_CONFIG)


def choose_backends(requested: str, config: dict[str, str] | None) -> dict[Direction, str]:
    """The backend for each direction, or BackendUnavailable saying what is missing."""
    if requested not in BACKEND_CHOICES:
        raise BackendUnavailable(
            f"unknown backend {requested!r}; choose one of {', '.join(BACKEND_CHOICES)}"
        )
    choice = {}
    for direction in (Direction.UP, Direction.DOWN):
        tc_gaps, ebpf_gaps = tc_missing(config, direction), ebpf_missing(config)
        if requested == TC and tc_gaps:
            raise BackendUnavailable(
                f"the tc backend needs kernel features this kernel lacks: {', '.join(tc_gaps)}"
            )
        if requested == EBPF and ebpf_gaps:
            raise BackendUnavailable(
                f"the ebpf backend needs kernel features this kernel lacks: {', '.join(ebpf_gaps)}"
            )
        if requested == "auto":
            if tc_gaps and ebpf_gaps:
                raise BackendUnavailable(
                    f"no backend can limit {direction.value}loads: tc lacks {', '.join(tc_gaps)}; "
                    f"ebpf lacks {', '.join(ebpf_gaps)}"
                )
            choice[direction] = EBPF if tc_gaps else TC
        else:
            choice[direction] = requested
    return choice


def describe_backends(
    choice: Mapping[Direction, str],
    active: Mapping[str, set[Direction]],
    config: dict[str, str] | None,
    tc_notes: list[str] | None = None,
) -> list[BackendInfo]:
    """Both backends: available, why not, which directions each enforces now,
    and where tc is held back (tc_notes: BackendRouter.shaping_notes())."""
    infos = []
    for name, missing in ((TC, tc_missing(config)), (EBPF, ebpf_missing(config))):
        chosen = sorted(d.value for d, backend in choice.items() if backend == name)
        if missing:
            reason = "kernel lacks: " + ", ".join(missing)
        elif not chosen:
            reason = (
                "available; not selected (the helper's --backend setting, or auto preferring tc)"
            )
        else:
            reason = ""
        infos.append(BackendInfo(
            name=name, available=not missing, reason=reason,
            active_directions=tuple(sorted(d.value for d in active.get(name, set()))),
            notes="; ".join(tc_notes or []) if name == TC else "",
        ))  # fmt: skip
    return infos


class Enforcer(Protocol):
    """What TcShaper and EbpfPolicer both offer."""

    def reconcile(self, wanted: dict[Direction, Classes]) -> None: ...
    def active_directions(self) -> set[Direction]: ...
    def close(self) -> None: ...
    def sent_bytes(self, direction: Direction) -> dict[int, int]: ...
    def enforcement_gaps(self) -> dict[Direction, list[str]]: ...
    @property
    def queues(self) -> bool: ...  # over the limit, packets wait in a queue (else they are dropped)


@runtime_checkable
class NamespaceFollower(Protocol):
    """An enforcer that works in the network namespaces of the processes it is given."""

    def shape_namespaces_of(
        self, slots: Mapping[int, int], restat: bool = True
    ) -> None: ...  # pid -> its slot; restat: every process's namespace read again


@runtime_checkable
class SocketFollower(Protocol):
    """An enforcer that needs the namespaces each slot's sockets send from
    (NamespaceShapers: a divided upload is held by its classes only when they
    are all namespaces of its processes)."""

    def note_socket_namespaces(self, cookies: Mapping[int, set[int]]) -> None: ...


@runtime_checkable
class GuardPlanner(Protocol):
    """An enforcer that holds some limits' sum itself and needs the guard's
    rates for them raised (NamespaceShapers: an upload limit it divides
    between namespaces; see guard_plan there)."""

    def guard_plan(self, wanted: dict[Direction, Classes]) -> dict[Direction, Classes]: ...


@runtime_checkable
class ReachReporter(Protocol):
    """An enforcer that knows how each limit holds in each namespace of its
    processes (NamespaceShapers.limit_reach)."""

    def limit_reach(
        self, direction: Direction, guarded: bool, viewer_pids: Collection[int] | None = None
    ) -> dict[int, str]: ...

    def enforcement_gaps(
        self, viewer_pids: Collection[int] | None = None
    ) -> dict[Direction, list[str]]: ...


def _gaps(enforcer: Enforcer, viewer_pids: Collection[int] | None) -> dict[Direction, list[str]]:
    """An enforcer's gaps as a viewer may read them (viewer_pids: a user's
    processes; None: all): per namespace where it knows namespaces."""
    if viewer_pids is not None and isinstance(enforcer, ReachReporter):
        return enforcer.enforcement_gaps(viewer_pids)
    return enforcer.enforcement_gaps()


@runtime_checkable
class PartlyShaped(Protocol):
    """An enforcer that knows which slots' traffic of a direction it shapes
    only in part (NamespaceShapers: a namespace it cannot shape in)."""

    def policed_slots(self, direction: Direction) -> set[int]: ...


@runtime_checkable
class GraftCounter(Protocol):
    """An enforcer that adds qdiscs on uplinks (tc's clsact), whose graft
    drops what the uplink sends for a moment (KernelHold.tags waits it out)."""

    def lossy_grafts(self) -> int: ...  # grafts that dropped packets, since last asked


@runtime_checkable
class LinkShaper(Protocol):
    """An enforcer that can shape a direction under a link capacity, by priority (tc)."""

    def set_link(self, direction: Direction, link: LinkShaping | None) -> None: ...
    def linked_directions(self) -> set[Direction]: ...
    def linked_interfaces(self) -> list[str]: ...
    def link_gaps(self) -> dict[Direction, list[str]]: ...
    def carrying_gaps(self) -> list[str]: ...


def _label(inode: int, own_inode: int) -> str:
    return OWN_NAMESPACE if inode == own_inode else f"namespace {namespace_label(inode)}"


def _rated(wanted: Mapping[Direction, Classes]) -> dict[Direction, Classes]:
    """Without the classes for a priority alone (rate 0): the policer has no link to order under."""
    return {direction: {slot: spec for slot, spec in classes.items() if spec.rate_bps}
            for direction, classes in wanted.items()}  # fmt: skip


class BackendRouter:
    """One enforcer per direction, behind the engine's single shaper port, and
    the policer as the guard of every direction tc shapes.

    HTB holds a limit only on the device it sits on: an application using two
    uplinks got the limit on each, and one whose sockets live in another
    network namespace (a container, `ip netns exec`) was not held at all. The
    policer sits in the cgroup programs, which see every socket of the
    machine, and holds the sum of all its paths. Where HTB shapes, the
    traffic reaches the policer already within the limit (downloads after the
    IFB; uploads paced below it), so it passes; elsewhere the policer holds it.
    """

    def __init__(
        self,
        by_direction: Mapping[Direction, tuple[str, Enforcer]],
        guard: tuple[str, Enforcer] | None = None,
    ) -> None:
        self._by_direction = dict(by_direction)
        self._guard = guard
        self._limited: dict[int, int] = {}  # pid -> slot, the processes limits reach now
        self._counts = {direction: ContinuousCounts() for direction in Direction}  # sent_bytes'

    def _enforcers(self) -> dict[str, Enforcer]:
        enforcers = {name: enforcer for name, enforcer in self._by_direction.values()}
        if self._guard is not None:
            enforcers.setdefault(*self._guard)
        return enforcers

    def guarded(self, direction: Direction) -> bool:
        """Whether the sum of every path of this direction is held (by the
        policer, as the backend itself or as the guard of tc)."""
        return self._guard is not None or self._by_direction[direction][0] == EBPF

    def reconcile(self, wanted: dict[Direction, Classes]) -> None:
        plans: dict[str, dict[Direction, Classes]] = {name: {} for name in self._enforcers()}
        for direction, (name, _) in self._by_direction.items():
            plans[name][direction] = wanted.get(direction, {})
        if self._guard is not None:
            for direction in Direction:
                plans[self._guard[0]].setdefault(direction, wanted.get(direction, {}))
        enforcers = self._enforcers()
        for name, plan in plans.items():  # the shapers first: the guard follows what they hold
            if self._guard is None or name != self._guard[0]:
                enforcers[name].reconcile(
                    plan if isinstance(enforcers[name], LinkShaper) else _rated(plan)
                )
        if self._guard is not None:
            guard_plan = _rated(plans[self._guard[0]])
            for name, enforcer in enforcers.items():
                if name != self._guard[0] and isinstance(enforcer, GuardPlanner):
                    guard_plan = enforcer.guard_plan(guard_plan)
            enforcers[self._guard[0]].reconcile(guard_plan)

    def lossy_grafts(self) -> int:
        """Clsacts the enforcers added since last asked whose graft dropped packets."""
        return sum(enforcer.lossy_grafts() for enforcer in self._enforcers().values()
                   if isinstance(enforcer, GraftCounter))  # fmt: skip

    def set_link(self, direction: Direction, link: LinkShaping | None) -> None:
        """A direction's link capacity, to its enforcer if it can order traffic
        (tc); the policer cannot, and the engine reports that (backend_of)."""
        _, enforcer = self._by_direction[direction]
        if isinstance(enforcer, LinkShaper):
            enforcer.set_link(direction, link)

    def linked_directions(self) -> set[Direction]:
        return {
            d
            for d, (_, e) in self._by_direction.items()
            if isinstance(e, LinkShaper) and d in e.linked_directions()
        }

    def link_interfaces(self) -> list[str]:
        """The uplinks the link tree holds, by name, in either direction."""
        names: set[str] = set()
        for _, enforcer in self._by_direction.values():
            if isinstance(enforcer, LinkShaper):
                names.update(enforcer.linked_interfaces())
        return sorted(names)

    def backend_of(self, direction: Direction) -> str:
        return self._by_direction[direction][0]

    def link_gaps(self) -> dict[Direction, list[str]]:
        """Per direction, where traffic can pass the link tree: its tc
        enforcer's own gaps, also those the policer guards (enforcement_gaps
        leaves them out because the limits hold; the order does not)."""
        gaps: dict[Direction, list[str]] = {}
        for direction, (_, enforcer) in self._by_direction.items():
            if isinstance(enforcer, LinkShaper) and (
                reasons := enforcer.link_gaps().get(direction)
            ):
                gaps[direction] = list(reasons)
        return gaps

    def carrying_gaps(self) -> list[str]:
        """Why a container's priority is not ordered through some device (its
        upload's tc enforcer cannot trust what its hook there carries)."""
        _, enforcer = self._by_direction[Direction.UP]
        return enforcer.carrying_gaps() if isinstance(enforcer, LinkShaper) else []

    def shape_namespaces_of(self, slots: Mapping[int, int], restat: bool = True) -> None:
        """The processes limits reach, and their slots: an enforcer that shapes
        per network namespace (NamespaceShapers) shapes where they are
        (restat: read every process's namespace again, else the new ones')."""
        self._limited = dict(slots)
        for enforcer in self._enforcers().values():
            if isinstance(enforcer, NamespaceFollower):
                enforcer.shape_namespaces_of(slots, restat)

    def limit_reach(
        self, direction: Direction, viewer_pids: Collection[int] | None = None
    ) -> dict[int, str]:
        """slot -> how its limit of this direction holds in each network
        namespace of its processes, where that is more than one shaped path
        (limit_reach.py): tc says per namespace; the policer, as the backend,
        holds the sum over all of them. viewer_pids: a user's processes (None:
        an administrator's view); a namespace none of them is in is not named."""
        _, enforcer = self._by_direction[direction]
        if isinstance(enforcer, ReachReporter):
            return enforcer.limit_reach(direction, self.guarded(direction), viewer_pids)
        own = os.stat("/proc/thread-self/ns/net").st_ino
        shown = None
        if viewer_pids is not None:
            mine = {pid: slot for pid, slot in self._limited.items() if pid in viewer_pids}
            shown = set().union({own}, *namespaces_of(mine).values())

        def label(inode: int) -> str:
            return _label(inode, own) if shown is None or inode in shown else OTHER_USERS

        return {
            slot: text
            for slot, inodes in namespaces_of(self._limited).items()
            if (text := policed_reach([label(inode) for inode in ordered(inodes, own)]))
        }

    def note_socket_namespaces(self, cookies: Mapping[int, set[int]]) -> None:
        """slot -> the netns cookies its sockets moved bytes in, to an enforcer that
        divides limits between namespaces (NamespaceShapers)."""
        for enforcer in self._enforcers().values():
            if isinstance(enforcer, SocketFollower):
                enforcer.note_socket_namespaces(cookies)

    def active_directions(self) -> set[Direction]:
        return set().union(*(e.active_directions() for e in self._enforcers().values()))

    def sent_bytes(self, direction: Direction) -> dict[int, int]:
        """L3 bytes per slot that limits let through. Downloads: the policer's
        count where it guards tc, as it runs last (at the socket, after the
        IFB) and sees every path; uploads: the shaper's output, as the guard
        runs before it (docs/backends.md, "Every path"), and the guard's count
        for a slot tc does not shape (its uplink policed, not shaped): without
        it the listed rate fell back to the socket counters, whose pure ACKs
        read as a limit not met beside a fast download; and the guard's count
        for a slot tc shapes only in part (PartlyShaped: some of its uploads
        leave from a namespace tc cannot shape in), whose class missed that
        part. Each slot's count goes on smoothly when the counter it is read
        from changes (sent_counts.py): a switch from the class's count to the
        policer's read as a spike."""
        guard = self._guard[1] if self._guard is not None else None
        _name, enforcer = self._by_direction.get(direction, ("", None))  # type: ignore[arg-type]
        readings: dict[int, dict[str, int]] = {}
        for source, counted in (("guard", guard), ("shaper", enforcer)):
            if counted is not None and (source == "guard" or counted is not guard):
                for slot, sent in counted.sent_bytes(direction).items():
                    readings.setdefault(slot, {})[source] = sent
        if direction is Direction.DOWN and guard is not None:
            chosen = {slot: "guard" for slot, read in readings.items() if "guard" in read}
        else:
            partly: set[int] = (
                enforcer.policed_slots(direction)
                if guard is not None and isinstance(enforcer, PartlyShaped)
                else set()
            )
            chosen = {
                slot: "shaper" if "shaper" in read and not ("guard" in read and slot in partly)
                else "guard"
                for slot, read in readings.items()
            }  # fmt: skip
        return self._counts[direction].read(readings, chosen)

    def enforcement_gaps(
        self, viewer_pids: Collection[int] | None = None
    ) -> dict[Direction, list[str]]:
        """Per direction, where limits do not hold now, and why: where its
        enforcer has a gap and the policer does not guard it. (Where it does,
        the limit holds, policed instead of shaped: shaping_notes().)
        viewer_pids: a user's processes; other users' namespaces unnamed."""
        gaps: dict[Direction, list[str]] = {}
        for direction, (_, enforcer) in self._by_direction.items():
            reasons = _gaps(enforcer, viewer_pids).get(direction, [])
            if reasons and not (self._guard is not None and enforcer is not self._guard[1]):
                gaps[direction] = list(reasons)
        return gaps

    def shaping_notes(self, viewer_pids: Collection[int] | None = None) -> list[str]:
        """Where tc cannot shape a direction it is chosen for, and the policer
        holds the limits there instead (smoothness lost, the limit kept).
        viewer_pids: a user's processes; other users' namespaces unnamed."""
        if self._guard is None:
            return []
        notes = []
        for direction, (_, enforcer) in self._by_direction.items():
            if enforcer is not self._guard[1]:
                notes += [
                    f"policed, not shaped: {reason}"
                    for reason in _gaps(enforcer, viewer_pids).get(direction, [])
                ]
        return notes

    def queues(self, direction: Direction) -> bool:
        """Whether the direction's enforcer holds packets over the limit in a queue."""
        _, enforcer = self._by_direction[direction]
        return enforcer.queues

    def active_by_backend(self) -> dict[str, set[Direction]]:
        """Which directions each backend enforces as the chosen one (the
        guard's directions count only where it was chosen)."""
        chosen = {
            name: {d for d, (owner, _) in self._by_direction.items() if owner == name}
            for name in self._enforcers()
        }
        return {
            name: enforcer.active_directions() & chosen[name]
            for name, enforcer in self._enforcers().items()
        }

    def close(self) -> None:
        errors = []
        for enforcer in self._enforcers().values():
            try:
                enforcer.close()
            except Exception as error:  # close the others all the same
                errors.append(error)
        if errors:
            raise errors[0]
