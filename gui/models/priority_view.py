"""What a priority and the link's shaping look like to the user (issue 16).

Plain data and functions, like limit_truth, so the wording is tested without
widgets. A priority is never shown as in force when it is not: the helper
says why (no link capacity, a backend that cannot order traffic), a request
not yet confirmed says so, and while the helper is away nothing is ordered.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, replace

from chadthrottle.contract import (
    ADMIN_OWNER,
    ApplicationInfo,
    BackendInfo,
    Direction,
    LinkShapingInfo,
)
from chadthrottle.gui.ipc.state import LEFT_IN_FORCE
from chadthrottle.gui.models.limit_truth import ROOT_UID, owner_note
from chadthrottle.priority import Priority
from chadthrottle.units import UnitSystem, format_rate

LABELS: dict[str, str] = {p.value: p.value.capitalize() for p in Priority}
NORMAL = Priority.NORMAL.value
# What each priority does, in the words of the row menu's tooltips.
MEANINGS: dict[str, str] = {
    Priority.CRITICAL.value: "served first when the link is busy (calls, games)",
    Priority.HIGH.value: "served before normal and low applications when the link is busy",
    Priority.NORMAL.value: "shares the link fairly with the others (the default)",
    Priority.LOW.value: "gets what the others leave (backups, updates)",
}
PROTECTED = frozenset(
    {Priority.CRITICAL.value, Priority.HIGH.value}
)  # the detail pane's latency readout
# SetPriority above normal needs limit-any even for one's own application (contract.py, SetPriority).
ASKS_ADMIN = frozenset({Priority.CRITICAL.value, Priority.HIGH.value})
ADMIN_ASKED = "Asks for an administrator's password: it takes the link from other users."
OLD_HELPER = (
    "Priorities need a newer helper: the one running here is older than this window (API 5)."
)


@dataclass(frozen=True)
class PriorityState:
    """One application's priority as a row shows it."""

    priority: str = NORMAL
    owner_note: str = ""  # "" for the viewer's own rule, else whose it is
    read_only: bool = False  # an administrator's priority over a viewer who is not root
    problem: str = ""  # why it is not in force now; "" when it is (or normal)
    pending: bool = False  # asked for, not confirmed yet

    @property
    def in_force(self) -> bool:
        return self.priority != NORMAL and not self.problem and not self.pending

    @property
    def label(self) -> str:
        return LABELS.get(self.priority, self.priority)


def priority_state(info: ApplicationInfo, viewer_uid: int, asked: str | None = None,
                   enforcement_problem: str = "") -> PriorityState:  # fmt: skip
    """The truth about an application's priority; ``asked``: the viewer's
    request on its way; enforcement_problem: why nothing is enforced now (the
    helper is not running), which the helper's own reason outranks."""
    if asked is not None:
        return PriorityState(
            asked, pending=True, problem=enforcement_problem if asked != NORMAL else ""
        )
    if info.priority == NORMAL:
        return PriorityState()
    owner = info.priority_owner
    read_only = owner == ADMIN_OWNER and viewer_uid != ROOT_UID
    problem = info.priority_problem or enforcement_problem
    return PriorityState(info.priority, owner_note(owner, viewer_uid), read_only, problem)


def priority_word(state: PriorityState) -> str:
    """An application's priority said after its name, in the row badge's word
    ("Critical", "High", "Low"; "Critical…" while asked for), and "not in
    force" while it is not (no link capacity, another namespace, the helper
    gone): one word for one setting. Until gui36 the tray said "protected" for
    the Critical the window, the rules dialog and chadthrottle-ctl name, and
    nothing for High or Low. The tray's list and the name cell's accessible
    text say it so."""
    if state.priority == NORMAL:
        return ""
    word = f"{state.label}…" if state.pending else state.label
    if state.problem == LEFT_IN_FORCE:  # a killed helper's: the kernel keeps it
        return f"{word} left in force"
    return f"{word} not in force" if state.problem else word


def choice_hint(priority: str) -> str:
    """The tooltip of a priority offered to choose (row menu, rules dialog,
    tray): what it does, and for critical and high that polkit will ask for an
    administrator, so the password prompt is no surprise."""
    text = f"{LABELS.get(priority, priority)}: {MEANINGS.get(priority, '')}."
    return f"{text} {ADMIN_ASKED}" if priority in ASKS_ADMIN else text


def describe_priority(state: PriorityState) -> str:
    """The sentence a tooltip or the detail pane gives about a priority."""
    meaning = MEANINGS.get(state.priority, "")
    if state.pending:
        return f"Priority: {state.label} asked for, not confirmed yet."
    if state.priority == NORMAL:
        return f"Priority: Normal: {meaning}."
    whose = f", {state.owner_note}" if state.owner_note else ""
    text = f"Priority: {state.label}{whose}: {meaning}."
    if state.problem == LEFT_IN_FORCE:  # a killed helper's: the kernel keeps it (gui25)
        text += f" Left in force: {LEFT_IN_FORCE}; the kernel keeps it as last set until it starts again."
    elif state.problem:
        text += f" Not in force: {state.problem}."
    if state.read_only:
        text += " Only an administrator can change it."
    return text


def describe_latency(info: ApplicationInfo, state: PriorityState) -> str:
    """The detail pane's latency line for a protected application ("" for others)."""
    if state.priority not in PROTECTED:
        return ""
    # In a desktop user's words (until gui28: "median smoothed RTT of its TCP
    # connections"): the helper's rtt_us is the median of the kernel's smoothed
    # round trip over the application's established TCP sockets (docs/helper.md).
    if info.rtt_us <= 0:
        rtt = "not measured yet (only TCP connections can be timed, and it has none open)"
    else:
        rtt = (
            f"{format_rtt(info.rtt_us)} (typical round trip of its TCP connections, there and back)"
        )
    return f"{describe_priority(state)} Latency: {rtt}."


def format_rtt(rtt_us: int) -> str:
    """ "850 µs", "23.4 ms", "120 ms"."""
    if rtt_us < 1000:
        return f"{rtt_us} µs"
    ms = rtt_us / 1000
    return f"{ms:.1f} ms" if ms < 100 else f"{ms:.0f} ms"


@dataclass(frozen=True)
class LinkSummary:
    """The status line's link field: its text, tooltip and whether it warns."""

    text: str
    tooltip: str
    warning: bool
    short: str = ""  # the same with the unit once, for a narrow status line ("" : none shorter)
    # narrower still, at the window's least (2x on 1366x768): "Link ▼12.5 ▲5 MB/s"; the
    # short form read "Link ▼ 12.5 ▲ 5.0…" there, its unit cut away (gui30)
    least: str = ""


NOT_SET = "No link capacity is set"
# The link field then: "Link: not shaped" was a word a new user did not know (gui22's
# walk); the capacity is what they set (the ☰ menu's "Link capacity…", its dialog).
NO_CAPACITY = "Link capacity: not set"
NOT_IN_FORCE_WORDS = "not in force"
# one set, none in force: limits paused, or the helper cannot shape it (the tooltip says why)
NOT_IN_FORCE = f"Link capacity: {NOT_IN_FORCE_WORDS}"
# paused at 2x on 1366x768 the line read "Link capacity: not…" (Xvfb, review23)
NOT_IN_FORCE_SHORT = f"Link: {NOT_IN_FORCE_WORDS}"


def link_summary(shaping: LinkShapingInfo, units: UnitSystem) -> LinkSummary:
    """ "Link capacity: ▼ 50.0 Mbit/s ▲ 10.0 Mbit/s" (≈ when estimated); a direction
    the kernel does not shape now "not in force" in amber, never its rate as if it
    held, and the problem where there is one. One word for it in every state:
    "Link shaped", "partly shaped", "not shaped" beside "Link capacity: not set"
    were two words for one thing (review23)."""
    estimated = " (estimated)" if shaping.estimate else ""
    capacities = [(arrow, shaping.capacity_bps(d), shaping.shaping(d))
                  for arrow, d in (("▼", Direction.DOWN), ("▲", Direction.UP))]  # fmt: skip
    asked = shaping.estimate or any(cap for _a, cap, _s in capacities)
    kept = [f"{arrow} {format_rate(bps, units)}" for arrow, bps in
            (("▼", shaping.down_set_bps), ("▲", shaping.up_set_bps)) if bps]  # fmt: skip
    if not asked and kept:  # set, none in force (paused): not "not set"
        return LinkSummary(NOT_IN_FORCE, f"The link capacity set ({' '.join(kept)}) is not in force."
                           f"{_problem(shaping)} Click to change.", True, NOT_IN_FORCE_SHORT)  # fmt: skip
    if not asked:  # amber when the helper says priorities wait for it
        # The helper's problem then is most often that same fact: say it once.
        said = shaping.problem.casefold().startswith(NOT_SET.casefold())
        return LinkSummary(NO_CAPACITY, f"{NOT_SET}: priorities need it to take effect."
                           f"{'' if said else _problem(shaping)} Click to set it.", bool(shaping.problem))  # fmt: skip
    if not any(cap for _a, cap, _s in capacities):  # estimating, nothing measured yet
        return LinkSummary(
            "Link capacity: estimating…",
            "The helper is estimating the link's capacity; "
            f"none is in force until it has one.{_problem(shaping)} Click to change.",
            True,
        )
    on = [shaping_on for _a, cap, shaping_on in capacities if cap]
    lines = [f"{'Download' if arrow == '▼' else 'Upload'}: "
             + (f"capacity {format_rate(cap, units)}{estimated}, {'in force' if on_ else 'not in force now'}"
                if cap else "not set")
             for arrow, cap, on_ in capacities]  # fmt: skip
    if shaping.interfaces:
        # "Uplinks" was a word of ours (walk26): the dialog speaks of the network card
        many = "s" if len(shaping.interfaces) > 1 else ""
        lines.append(f"Paced on network interface{many}: {', '.join(shaping.interfaces)}")
    if shaping.problem:
        lines.append(f"Problem: {shaping.problem}")
    lines.append("Click to change.")
    tooltip = "\n".join(lines)
    if not any(on):  # the rates are in the tooltip: the line says what matters, and fits
        return LinkSummary(NOT_IN_FORCE, tooltip, True, NOT_IN_FORCE_SHORT)
    parts = [f"{arrow} {(format_rate(cap, units) if on_ else NOT_IN_FORCE_WORDS) if cap else '—'}"
             for arrow, cap, on_ in capacities]  # fmt: skip
    warning = bool(shaping.problem) or not all(on)
    about = "≈ " if shaping.estimate else ""  # estimated: the tooltip says so
    rates = [format_rate(cap, units) for _a, cap, _s in capacities if cap]
    units_of = {rate.rsplit(" ", 1)[-1] for rate in rates}
    # Short, "capacity" left to the tooltip and the unit said once: at 2x on 1366x768 in
    # the window's default size "Link capacity: ▼ 12.5 ▲ 5.00 M…" was cut (Xvfb, review23).
    short = f"Link {about}{' '.join(parts)}"
    # a direction not in force: what matters, and fits at the least (it read
    # "Link ▼ 12.5 MB/s …" there under load, gui31's walk)
    off = [f"{arrow} {NOT_IN_FORCE_WORDS}" for arrow, cap, on_ in capacities if cap and not on_]
    least = f"Link {' '.join(off)}" if off else ""
    if all(on) and len(rates) == 2 and len(units_of) == 1:  # "▼ 12.5 ▲ 5.00 MB/s"
        (down, unit), (up, _unit) = (rate.rsplit(" ", 1) for rate in rates)
        short = f"Link {about}▼ {down} ▲ {up} {unit}"
        least = f"Link {about}▼{_bare(down)} ▲{_bare(up)} {unit}"
    return LinkSummary(f"Link capacity: {about}{' '.join(parts)}", tooltip, warning, short, least)


def _bare(number: str) -> str:
    """ "5.00" as "5", "12.50" as "12.5": the least form's figures, no zeros that say nothing."""
    return number.rstrip("0").rstrip(".") if "." in number else number


# ListBackends' notes (the helper's words, tc's: helper/engine/backends.py
# shaping_notes, helper/kernel/one_way.py one_way_notes) reached only
# `chadthrottle-ctl backends` and the log; said in plain words where a user looks
# when limits or priorities misbehave: the link field's tooltip, the link dialog
# and the backend field's tooltip (gui31).
POLICED = "policed, not shaped: "
NO_ONE_WAY = "no one-way reading of the upload"


# ListBackends joins a backend's notes with "; ", which its reasons hold too
# ("... (prio 0xc7ad; another ChadThrottle helper's?); it is left untouched"):
# split only where a note begins (gui31's walk: cut at each, they read "tc: it is left untouched")
_NOTE_STARTS = re.compile(f"; (?={re.escape(POLICED)}|{re.escape(NO_ONE_WAY)})")


POLICED_WORDS = ("Some limits are policed, not shaped: traffic over them is dropped rather than "
                 "queued, so it is rougher but still held there")  # fmt: skip
NO_ONE_WAY_WORDS = ("An estimated upload capacity is judged by round trips alone: the one-way "
                    "reading of the upload's queue is off on this machine")  # fmt: skip
TOOLTIP_WIDTH = 72


def backend_notes(backends: Iterable[BackendInfo]) -> list[str]:
    """Each available backend's notes, one plain sentence each."""
    said = []
    for backend in backends:
        if not backend.available or not backend.notes:
            continue
        for note in _NOTE_STARTS.split(backend.notes):
            if note.startswith(POLICED):
                said.append(f"{POLICED_WORDS} ({note.removeprefix(POLICED)}).")
            elif note.startswith(NO_ONE_WAY):
                said.append(f"{NO_ONE_WAY_WORDS} ({note.partition('): ')[2] or note}).")
            else:
                said.append(f"{backend.name}: {note}")
    return said


def note_heads(notes: Iterable[str]) -> list[str]:
    """backend_notes without their reasons, each once: where a line must be
    short (the link dialog at 2x on 1366x768 is at its height already: the
    notes whole pushed its state past its top and bottom, gui31's walk)."""
    heads = []
    for note in notes:
        known = note.startswith((POLICED_WORDS, NO_ONE_WAY_WORDS))
        head = note.split(":", 1)[0] if known else textwrap.shorten(note, 60, placeholder="…")
        heads.append(f"{head} (point here for why)." if known else head)
    return list(dict.fromkeys(heads))


def tooltip_lines(notes: Iterable[str]) -> list[str]:
    """notes wrapped for a tooltip (plain tooltips do not wrap: a reason of
    the helper's made one as wide as the screen)."""
    return [textwrap.fill(note, TOOLTIP_WIDTH) for note in notes]


def with_notes(summary: LinkSummary, notes: Iterable[str]) -> LinkSummary:
    """summary's tooltip with the backends' notes (backend_notes) before its
    last line ("Click to change.")."""
    notes = tooltip_lines(notes)
    if not notes:
        return summary
    head, _, click = summary.tooltip.rpartition("Click to ")
    if not head:
        return replace(summary, tooltip="\n".join([summary.tooltip, *notes]))
    return replace(summary, tooltip="\n".join([head.rstrip(), *notes, f"Click to {click}"]))


def _problem(shaping: LinkShapingInfo) -> str:
    return f" Problem: {shaping.problem}." if shaping.problem else ""
