"""The caps a helper's slots held TCP sockets to, kept for its successor.

Pacing (SO_MAX_PACING_RATE) and the window clamp (TCP_WINDOW_CLAMP) are set
on a socket itself (socket_tagging.cap_socket, chadt_sockops), not read from
its tag. A helper that stops lifts them, also from sockets passed to another
process (Datapath.close); one killed by SIGKILL lifts none, and a socket user
A made under a limit and passed to user B's process (SCM_RIGHTS) kept A's
pacing and clamp for its life, also after the next start, which walks only
its rules' processes (review34b R4). So a helper keeps here, before it sets
them (Datapath.set_slot_caps), which slots held caps and what each set, with
the id of its socket_tags map (record_of: beside walks-INSTANCE.owed).

The next start of the same instance reads the record (validated: a bad one
is logged by name and nothing is touched), opens that map by its id, which
the dead helper's programs keep alive until the start detaches them (its fd
keeps it after), and once the walks of its restored rules ended sweeps every
process once, bounded per call (DeadCapsSweep): a TCP socket whose old tag
carries such a slot, which no restored rule retagged (its own tag carries
no slot), has each cap lifted that still equals what the slot set (pacing
exactly, for its MSS now; the clamp within the RTTs it may have been set
for), and its old tag's slot taken away, so that the dead helper's
chadt_sockops, still attached, does not clamp it again at its next packet.
An application's own pacing is left alone. What a predecessor's record
named is kept in this helper's record until swept; killed again before
then, the next start finds that map only while something still holds it
(the older programs, until a start detaches them; this helper's fd dies
with it).
"""

from __future__ import annotations

import ctypes
import logging
import os
import socket
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from chadthrottle.helper.identity.processes import all_pids, read_start
from chadthrottle.helper.kernel import bpf_maps
from chadthrottle.helper.kernel.bpf_syscalls import map_info, open_map
from chadthrottle.helper.kernel.kept_record import keep_text
from chadthrottle.helper.kernel.layout import NO_CAPS, SocketCaps, SockTag
from chadthrottle.helper.kernel.ownership import RUN_DIR
from chadthrottle.helper.kernel.socket_tagging import (
    SO_MAX_PACING_RATE,
    UNCAPPED_PACING,
    UNKNOWN_RTT_US,
    WalkCursor,
    borrowed,
    budgeted,
    cap_socket,
    carries_ipv4,
    open_inet_sockets,
    payload_pacing_bps,
    receive_window_bytes,
)

log = logging.getLogger("chadthrottle.kernel.held_caps")

BPF_MAP_TYPE_SK_STORAGE = 24
TAGS_MAP_NAME = "socket_tags"
# The values a slot set kept per cap, the newest: a rule whose rate changed
# more often since it was last let go leaves a socket passed at its oldest
# ones capped.
VALUES_PER_SLOT = 16
_MAX_SLOT = 0xFFFE
_U32 = 0xFFFFFFFF
_TCP_INFO_BYTES, _TCPI_MIN_RTT = 152, 148
# A process cut while the borrowed sockets' closer was full (socket_tagging.FdCloser)
# goes on this much later: a stop's whole sweep stopped there before.
CLOSER_WAIT_S = 0.002
_FLOOR = 4608  # the least clamp the kernel keeps (SOCK_MIN_RCVBUF / 2) is below this


def record_of(instance: str) -> Path | None:
    """Where a helper keeps the caps its slots held (None: a datapath of no helper)."""
    return RUN_DIR / f"caps-{instance}.held" if instance else None


@dataclass
class HeldSection:
    """One helper's: its socket_tags map's id, and slot -> the pacing and
    window caps (wire B/s) it set, oldest first."""

    map_id: int
    pacing: dict[int, list[int]] = field(default_factory=dict)
    window: dict[int, list[int]] = field(default_factory=dict)

    def slots(self) -> set[int]:
        return set(self.pacing) | set(self.window)


def held_text(sections: Iterable[HeldSection]) -> str:
    """Lines "map ID", then "pacing SLOT BPS" and "window SLOT BPS" of that map's slots."""
    lines = []
    for section in sections:
        lines.append(f"map {section.map_id}\n")
        for kind, values in (("pacing", section.pacing), ("window", section.window)):
            lines += [f"{kind} {slot} {bps}\n" for slot, held in values.items() for bps in held]
    return "".join(lines)


def parse_held(text: str) -> list[HeldSection]:
    """held_text back; ValueError naming the first line that is not one of
    them (a record cut short, or not ours: nothing is taken from it)."""
    sections: list[HeldSection] = []
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if not words:
            continue
        if not all(word.isdigit() for word in words[1:]):
            raise ValueError(f"line {number}: {line[:80]!r}")
        numbers = [int(word) for word in words[1:]]
        if words[0] == "map" and len(numbers) == 1 and 0 < numbers[0] <= _U32:
            sections.append(HeldSection(numbers[0]))
        elif (
            words[0] in ("pacing", "window")
            and len(numbers) == 2
            and sections
            and 0 < numbers[0] <= _MAX_SLOT
            and 0 < numbers[1] <= _U32
        ):
            held = getattr(sections[-1], words[0]).setdefault(numbers[0], [])
            if numbers[1] not in held:
                held.append(numbers[1])
        else:
            raise ValueError(f"line {number}: {line[:80]!r}")
    return sections


class HeldCapsRecord:
    """This helper's section (own) and the predecessors' not swept yet
    (inherited), kept in the record, replaced whole (kept_record.keep_text:
    in place while a page holds it), so a helper killed mid-write leaves the
    old or the new record (but for a rare torn write: keep_text says when)."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self.own: HeldSection | None = None
        self.inherited: list[HeldSection] = []
        self._saved: str | None = None

    def read(self) -> list[HeldSection]:
        """The sections a dead predecessor left ([]: none, or not valid: logged)."""
        if self._path is None:
            return []
        try:
            text = self._path.read_text()
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError) as error:
            log.warning("the held caps record %s could not be read (%s): no socket's caps "
                        "are lifted from it", self._path, error)  # fmt: skip
            return []
        try:
            return parse_held(text)
        except ValueError as error:
            log.warning("the held caps record %s is not valid (%s): no socket's caps are "
                        "lifted from it", self._path, error)  # fmt: skip
            return []

    def attach(self, map_id: int) -> None:
        """This helper's socket_tags map is map_id (a new section, empty)."""
        self.own = HeldSection(map_id)

    def note(self, slot: int, caps: SocketCaps) -> None:
        """slot sets caps from now on (kept before it does)."""
        if self.own is None:
            return
        changed = False
        for bps, values in ((caps.pacing_bps, self.own.pacing), (caps.window_bps, self.own.window)):
            held = values.setdefault(slot, []) if bps else values.get(slot, [])
            bps = min(bps, _U32)
            if bps and bps not in held:
                held.append(bps)
                del held[:-VALUES_PER_SLOT]
                changed = True
        if changed:
            self.save()

    def forget(self, slot: int) -> None:
        """slot was let go (no socket carries it): what it set is not kept."""
        if self.own is not None and slot in self.own.slots():
            self.own.pacing.pop(slot, None)
            self.own.window.pop(slot, None)
            self.save()

    def swept(self, map_ids: Iterable[int]) -> None:
        """The predecessors' sections of these maps were swept: not kept."""
        gone = set(map_ids)
        self.inherited = [section for section in self.inherited if section.map_id not in gone]
        self.save()

    def save(self) -> None:
        """Keep the sections, if changed; not kept: logged (limits go on: fail open)."""
        sections = [*self.inherited, *([self.own] if self.own and self.own.slots() else [])]
        text = held_text(sections)
        if self._path is None or text == self._saved:
            return
        try:
            keep_text(self._path, text)
            self._saved = text
        except OSError as error:
            log.warning("could not keep the held caps in %s: %s", self._path, error)

    def close_own(self) -> None:
        """This helper lifted what its slots set (a clean close): only the
        predecessors' sections not swept yet are kept."""
        if self.own is not None:
            self.own = None
            self.save()


def map_id_of(map_fd: int) -> int:
    return map_info(map_fd)[1]


def open_dead_tags(map_id: int, own_id: int) -> int | None:
    """An fd of the socket_tags map map_id a dead helper's record names, if it
    is still there and one (an sk_storage map of that name and layout, not
    this helper's); None otherwise (logged)."""
    if map_id == own_id:
        log.warning("the held caps record names this helper's own map %d: skipped", map_id)
        return None
    try:
        map_fd = open_map(map_id)
    except OSError as error:
        log.info("the dead helper's socket tags (map %d) are gone (%s): its sockets' caps "
                 "are not known", map_id, error.strerror)  # fmt: skip
        return None
    kind, _id, key_size, value_size, name = map_info(map_fd)
    if (kind, key_size, value_size, name) != (BPF_MAP_TYPE_SK_STORAGE, 4,
                                              ctypes.sizeof(SockTag), TAGS_MAP_NAME):  # fmt: skip
        log.warning("map %d is not a helper's socket tags (type %d, name %r, value %d bytes): "
                    "its sockets are left alone", map_id, kind, name, value_size)  # fmt: skip
        os.close(map_fd)
        return None
    return map_fd


def _ours(sock: socket.socket, section: HeldSection, slot: int) -> SocketCaps:
    """Which caps of the socket still equal what slot set (each: one to lift).
    Pacing exactly (chadt_sockops and cap_socket set it once, for the MSS, so
    an application's own later setting differs); the clamp for an RTT between
    its minimum now and UNKNOWN_RTT_US (chadt_sockops set it for the minimum
    at each packet it sent, cap_socket for the minimum then, UNKNOWN_RTT_US
    with no sample; the kernel keeps at least SOCK_MIN_RCVBUF / 2)."""
    pacing = int.from_bytes(sock.getsockopt(socket.SOL_SOCKET, SO_MAX_PACING_RATE, 4), "little")
    lift_pacing = 0
    if pacing < UNCAPPED_PACING:
        mss, ipv4 = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG), carries_ipv4(sock)
        for wire_bps in section.pacing.get(slot, ()):
            if pacing == min(payload_pacing_bps(wire_bps, mss, ipv4), UNCAPPED_PACING - 1):
                lift_pacing = wire_bps
    clamp = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_WINDOW_CLAMP)
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_BYTES)
    min_rtt = struct.unpack_from("I", info, _TCPI_MIN_RTT)[0] if len(info) >= _TCP_INFO_BYTES else 0
    lift_window = 0
    for wire_bps in section.window.get(slot, ()):
        low = receive_window_bytes(wire_bps, min_rtt) - wire_bps // 1000  # 1 ms of RTT
        high = max(receive_window_bytes(wire_bps, UNKNOWN_RTT_US), _FLOOR)
        if max(low, 0) <= clamp <= high:
            lift_window = wire_bps
    return SocketCaps(lift_pacing, lift_window)


def lift_dead_caps(own_fd: int, pid: int, dead: list[tuple[int, HeldSection]]) -> int:
    """Of pid's TCP sockets, those whose tag in a dead helper's map (fd,
    section) carries a slot that held caps and whose own tag (own_fd)
    carries none: the caps still equal to what that slot set lifted, and
    that old tag's slot taken away. How many were lifted."""
    lifted = 0
    for sock_fd, kind in open_inet_sockets(pid):
        if kind != socket.SOCK_STREAM:
            continue
        key, tag = ctypes.c_int(sock_fd), SockTag()
        try:
            if bpf_maps.lookup(own_fd, key, tag) and tag.app_slot:
                continue  # a restored rule's (held to its caps by its walk)
            for dead_fd, section in dead:
                if not bpf_maps.lookup(dead_fd, key, tag) or tag.app_slot not in section.slots():
                    continue
                with borrowed(sock_fd) as sock:
                    lift = _ours(sock, section, tag.app_slot)
                tag.app_slot = 0  # the dead chadt_sockops would clamp it again
                bpf_maps.update(dead_fd, key, tag)
                if lift != NO_CAPS and cap_socket(sock_fd, NO_CAPS, lift):
                    lifted += 1
        except OSError as error:
            log.debug("could not lift fd %d of pid %d: %s", sock_fd, pid, error.strerror)
    return lifted


class DeadCapsSweep:
    """One sweep of every process (listed at its first call) for the
    sockets of dead helpers' maps (fd, section), bounded per call like the
    walks (a cut process goes on from the descriptor where it stopped)."""

    def __init__(self, dead: list[tuple[int, HeldSection]]) -> None:
        self.dead = dead
        self._processes: list[tuple[int, int]] | None = None
        self._next = 0
        self._next_fd = 0
        self.lifted = 0
        self.left = 0  # processes given up on, the closer full past a stop's give_up
        self.took_s = 0.0  # the time it took, summed over its calls

    def go_on(self, own_fd: int, deadline: float, give_up: float = float("inf")) -> bool:
        """Sweep until deadline (monotonic); whether every process was swept.
        give_up (a stop's: its deadline is none): a process cut where the
        borrowed sockets' closer was full is waited for until then, later
        left (counted in left: not swept), so a stop ends."""
        began = time.monotonic()
        try:
            if self._processes is None:
                self._processes = [(pid, read_start(pid) or 0) for pid in all_pids()]
            while self._next < len(self._processes):
                if time.monotonic() >= deadline:
                    return False
                tgid, start = self._processes[self._next]
                cursor = WalkCursor(deadline, self._next_fd, start=start)
                with budgeted(cursor):
                    self.lifted += lift_dead_caps(own_fd, tgid, self.dead)
                if cursor.cut:  # at the deadline, or the borrowed sockets' closer full
                    self._next_fd = cursor.next_fd
                    now = time.monotonic()
                    if now >= deadline:
                        continue  # not done (above)
                    if now < give_up:  # the closer full: its threads close them meanwhile
                        time.sleep(CLOSER_WAIT_S)
                        continue
                    self.left += 1  # full past a stop's give_up: the rest of it not swept
                self._next, self._next_fd = self._next + 1, 0
            return not self.left
        finally:
            self.took_s += time.monotonic() - began

    @property
    def processes(self) -> int:
        return len(self._processes or ())

    def close(self) -> None:
        for map_fd, _section in self.dead:
            os.close(map_fd)
        self.dead = []
