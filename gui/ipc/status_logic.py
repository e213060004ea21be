"""Deriving the helper's state from what the last calls said.

Pure functions, so the rules (which error means which state, what stays usable)
are testable without a bus or a thread.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from chadthrottle.contract import PAUSED_PROBLEM, BackendInfo, ErrorName
from chadthrottle.gui.ipc.error_text import describe_error
from chadthrottle.gui.ipc.state import (
    LEFT_IN_FORCE,
    NOT_INSTALLED_PROBLEM,
    NOT_RUNNING_PROBLEM,
    STOPPED_PROBLEM,
    HelperState,
    HelperStatus,
)
from chadthrottle.helper_run_state import (
    STOPPED_CLEAN,
    STOPPED_KILLED,
    STOPPED_KILLED_PAUSED,
    LastStop,
)


@dataclass(frozen=True)
class Observations:
    """Everything the GUI thread has learnt from the worker so far."""

    poll_error_name: str | None = None  # None: the last poll succeeded (or none yet)
    has_polled_ok: bool = False  # at least one ListApplications answered, this session
    backends: tuple[BackendInfo, ...] = ()
    limit_denied: bool = False  # a SetLimit/ClearLimit was refused by polkit
    last_stop: LastStop = LastStop.UNKNOWN  # the helper's run record, read at the failed poll


def backend_problem(backends: tuple[BackendInfo, ...]) -> str:
    """Why nothing can be enforced, or "" when some backend works."""
    if not backends or any(backend.available for backend in backends):
        return ""
    reasons = "; ".join(f"{b.name}: {b.reason or 'unavailable'}" for b in backends)
    return f"No backend can enforce limits on this kernel ({reasons}). Monitoring still works."


# A helper that answered earlier in this session and is gone from the bus now.
STOPPED = "The helper stopped."

ARROWS = {"down": "▼", "up": "▲"}  # as the window's totals and the link field say them


def backend_field(backends: tuple[BackendInfo, ...], gated: Iterable[str] = ()) -> str:
    """ "Enforcing ▼ ▲" for the status bar: which ways what is set (limits, blocks,
    quotas, the link's shaping) holds in the kernel, arrows as the window's totals;
    "Ready to enforce" where none holds anything (nothing set), "Cannot enforce"
    where none is available. The backends (tc, ebpf) are named in the tooltip
    only (StatusLine.set_backends): "Backends ready: tc, ebpf" and "Backend: tc ▲"
    were words a new user did not know (gui22, under Xvfb). "Ready", not the
    backends available: "Backend: tc, ebpf" read as both holding limits that
    nobody had set (gui18). gated: the ways a block or quota holds (the kernel's
    gates, which no backend lists as active: LimitTally.gated)."""
    held = {d for b in backends if b.available for d in b.active_directions} | set(gated)
    if held:
        return "Enforcing " + " ".join(arrow for d, arrow in ARROWS.items() if d in held)
    if any(backend.available for backend in backends):
        return READY
    return "Cannot enforce"


# The backend field where nothing holds: the helper away, limits paused, none set.
READY, NOT_ENFORCING, PAUSED_FIELD = "Ready to enforce", "Not enforcing", "Enforcing paused"


# How the helper ended, as its run record says (chadthrottle.helper_run_state).
ENDED_WORDS = {LastStop.STOPPED: STOPPED_CLEAN, LastStop.KILLED: STOPPED_KILLED,
               LastStop.KILLED_PAUSED: STOPPED_KILLED_PAUSED}  # fmt: skip


def last_stop_seen(seen: Observations, found: LastStop) -> LastStop:
    """How the helper that is away ended, with what its record says now: a new
    helper starting (RUNNING: its process, not yet on the bus) does not undo
    what the last one left, which holds until the new one answers (a killed
    helper's limits until its successor has taken them over: they read "No
    limits are enforced: the helper is not running" for the 0.4-13 s of its start)."""
    if (
        found is LastStop.RUNNING
        and seen.poll_error_name is not None
        and seen.last_stop in ENDED_WORDS
    ):
        return seen.last_stop
    return found


WATCH_REFUSED = (
    "Watching traffic was refused for your account. Your administrator's polkit rules "
    "decide who may watch traffic and set limits: ask them, or press Ask again."
)


def derive_status(seen: Observations) -> HelperStatus:
    """The one place that decides the helper state shown everywhere."""
    if seen.poll_error_name is not None:
        text = describe_error(seen.poll_error_name)
        state = text.state or HelperState.NOT_RUNNING
        unknown_service = seen.poll_error_name.endswith("ServiceUnknown")
        gone = state is HelperState.NOT_RUNNING or (
            state is HelperState.NOT_INSTALLED and unknown_service
        )
        if gone and seen.last_stop in ENDED_WORDS:
            # A helper ran on this bus (its record says so), and how it ended
            # decides what holds: not one "not running" for both (gui25).
            words = ENDED_WORDS[seen.last_stop]
            return HelperStatus(HelperState.NOT_RUNNING, words, last_stop=seen.last_stop)
        if state is HelperState.NOT_INSTALLED and seen.has_polled_ok and unknown_service:
            # It answered earlier in this session, so it is installed: it stopped.
            # Whether it is restarting or was stopped for good the bus does not say
            # ("restarting" was shown for one simply stopped).
            return HelperStatus(HelperState.NOT_RUNNING, STOPPED, last_stop=seen.last_stop)
        if state is HelperState.KERNEL_FEATURE_MISSING:
            return HelperStatus(state, text.words, can_monitor=True, can_limit=False)
        if state is HelperState.NOT_AUTHORIZED:
            # the poll refused: watching (it read "You are not allowed to do this.", of a
            # window the user had only opened: gui34)
            return HelperStatus(state, WATCH_REFUSED)
        # RUNNING (its process lives: stopping, or starting) is kept: the alert waits for how it ends
        return HelperStatus(
            state, text.words, last_stop=seen.last_stop if gone else LastStop.UNKNOWN
        )
    if not seen.has_polled_ok:
        return HelperStatus(HelperState.CONNECTING, "Connecting to the helper…")
    problem = backend_problem(seen.backends)
    if problem:
        return HelperStatus(HelperState.KERNEL_FEATURE_MISSING, problem, True, False)
    if seen.limit_denied:
        words = describe_error(ErrorName.NOT_AUTHORIZED.value).words
        return HelperStatus(
            HelperState.NOT_AUTHORIZED,
            f"Setting limits was refused. {words} Monitoring still works.",
            can_monitor=True,
            can_limit=False,
        )
    return HelperStatus(HelperState.CONNECTED, "", can_monitor=True, can_limit=True)


# What stands in the list of applications while it is empty, by state: the
# window's list and the tray's menu say the same (the tray said "No
# applications using the network" while the helper was away: walk26).
EMPTY_TEXT: dict[HelperState, str] = {
    HelperState.CONNECTING: "Waiting for the helper…",
    HelperState.CONNECTED: "No application is using the network.",
    HelperState.NOT_RUNNING: "Reconnecting…",
    HelperState.NOT_AUTHORIZED: "Traffic is not shown: watching it was not authorized.",
    HelperState.NOT_INSTALLED: "Install the helper to see traffic here.",
    HelperState.KERNEL_FEATURE_MISSING: "No application is using the network.",
}
_NOTHING_ENFORCED: dict[HelperState, str] = {
    HelperState.NOT_RUNNING: NOT_RUNNING_PROBLEM,
    HelperState.NOT_INSTALLED: NOT_INSTALLED_PROBLEM,
    HelperState.KERNEL_FEATURE_MISSING: "no backend can enforce limits on this kernel",
}


def helper_gone_words(status: HelperStatus) -> str:
    """ "The helper stopped — its limits are off" (or killed, its limits stay):
    the tray's one line, "" where the run record did not tell."""
    return status.detail.removesuffix(".") if status.ended_known else ""


def nothing_enforced_reason(status: HelperStatus, paused: bool) -> str:
    """Why no limit at all is enforced now, or "" when limits may be.

    The window and the tray say this instead of counting limits as active: with
    the helper gone, or limits paused, every limit shown is only remembered.
    A helper that stopped cleanly took them off ("the helper stopped"); one
    killed left them in force, unwatched: LEFT_IN_FORCE, which the views say
    apart (status_line, the tray), never "No limits are enforced"."""
    if status.stopped_clean:
        return STOPPED_PROBLEM
    if status.left_in_force:
        return LEFT_IN_FORCE
    if status.killed_paused:  # the kernel held none of them when it was killed
        return PAUSED_PROBLEM
    return _NOTHING_ENFORCED.get(status.state, "") or (PAUSED_PROBLEM if paused else "")
