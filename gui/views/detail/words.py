"""The detail pane's words: the rates line, the notes under it, the
connections' caption, and what stands in the graph's place while nothing is shown."""

from __future__ import annotations

from collections.abc import Callable

from chadthrottle.contract import ConnectionInfo, Direction
from chadthrottle.gui.models.block_choice import unblock_hint, unblock_retried
from chadthrottle.gui.models.connection_table import MEASURING
from chadthrottle.gui.models.limit_truth import (
    LIMITED_RATE,
    LimitState,
    describe_kept_limit,
    describe_limit,
    describe_problem,
    describe_quota,
)
from chadthrottle.units import UnitSystem, format_rate

MEASURED_OVER_SAMPLES = 5
NO_SELECTION = "Select an application to see its traffic."
# In the graph's place while no application is shown, so the pane under the
# list reads as waiting for one, not as a blank half of the window.
EMPTY_GRAPH_SELECT = (
    "Select an application in the list to see its download and upload over time, "
    "its limits and its open connections here."
)
EMPTY_GRAPH_NOTHING_LISTED = (
    "Once applications are listed, the one you select shows here: its download and "
    "upload over time, its limits and its open connections."
)
# The connections caption while the helper is away: an empty table would say "none".
CONNECTIONS_UNKNOWN = "Connections not known while the helper is away"


def describe_rates(
    name: str,
    down: float | None,
    up: float | None,
    limits: tuple[int, int],
    measured: tuple[float | None, float | None],
    units: UnitSystem,
    rate_text: Callable[[float, UnitSystem], str] = format_rate,
    unmeasured: str = MEASURING,
) -> str:
    """ "Firefox: down 8.1 MB/s (limit 5 MB/s, avg 4.98 MB/s), up 210 KB/s":
    beside a limit, the mean of the last MEASURED_OVER_SAMPLES polls it is
    judged by (both figures are measured: "measured" told them apart not; the
    line's tooltip, average_tooltip, says over how long). Short: at 2x on a
    1366x768 screen the line fills the window's width.
    rate_text other than format_rate: the line's widest form (steady_text.py).
    A rate None is being measured (MEASURING: its rules just changed, the row says so too),
    or, the helper away since, not known (unmeasured NO_VALUE, as the row)."""
    parts = []
    for word, rate, limit, mean in (
        ("down", down, limits[0], measured[0]),
        ("up", up, limits[1], measured[1]),
    ):
        text = f"{word} {unmeasured if rate is None else rate_text(rate, units)}"
        if limit:
            average = "…" if mean is None else rate_text(mean, units)  # no poll under it yet
            text += f" (limit {rate_text(limit, units)}, avg {average})"
        parts.append(text)
    return f"{name}: " + ", ".join(parts)


def average_tooltip(average_s: float) -> str:
    """What "avg" beside a limit is."""
    return (
        f"The first rate is the last poll's; avg is the mean of the last {average_s:g} s,"
        " which a limit is judged by, counting only seconds measured under the limit shown"
        " (… until the first). A rate under a limit is " + LIMITED_RATE
    )


def describe_limit_notes(
    states: dict[Direction, LimitState],
    units: UnitSystem,
    own: dict[Direction, int] | None = None,
) -> str:
    """Only what the numbers above do not say: whose limit it is when not the
    viewer's, why a limit or a block is not enforced, how a limit holds over
    several namespaces, a quota's use, and a limit of one's own kept beneath a
    block (own: the viewer's stored limits, ListRules)."""
    notes = []
    for direction, state in states.items():
        note = ""
        if state.held and (state.owner_note or state.problem or state.reach):
            note = describe_limit(state, direction, units)  # with the quota, if any
        elif state.quota_bytes:
            word = "Download" if direction is Direction.DOWN else "Upload"
            # paused, or a used-up one with the helper away: the quota's words say it
            said = (
                state.problem
                and not state.quota_paused
                and not (state.quota_helper_off and state.quota_spent)
            )
            problem = f" {describe_problem(state.problem, units)}." if said else ""
            note = f"{word} quota: {describe_quota(state, units)}.{problem}"
        kept = describe_kept_limit(state, direction, (own or {}).get(direction, 0), units)
        # held on after a refused unblock: how to ask again, as the cell's tooltip says
        retry = unblock_hint(state, direction) if unblock_retried(state) else ""
        note = " ".join(filter(None, [note, kept, retry]))
        if note:
            notes.append(note)
    return "\n".join(notes)


def describe_connection_count(connections: list[ConnectionInfo]) -> str:
    """The table's caption: "3 open connections", "No open connections."."""
    if not connections:
        return "No open connections."
    return f"{len(connections)} open connection{'s' if len(connections) != 1 else ''}"
