"""The Block / Unblock choice of one direction, as the row menu, the tray and
the blocked cell's tooltip and the detail pane all say it.

For the seconds a block is held on after the kernel refused a change to it
(LimitState.held_on: an unblock refused, the gate keeps the old block until
its lease lapses), choosing Unblock asks for it again: the row menu offered a
plain "Unblock upload" and the tray "Blocked", as if nothing had been asked.
"""

from __future__ import annotations

from chadthrottle.contract import Direction
from chadthrottle.gui.models.limit_truth import LimitState, block_lifts, describe_problem
from chadthrottle.units import UnitSystem

# What choosing Block / Unblock does, said by the tray and the row menu alike.
BLOCK_TIP = "Let no data through, open connections included (a limit beneath stays for later)."
UNBLOCK_TIP = "Unblock: traffic flows again, connections that survived go on."
RETRY_UNBLOCK = "Retry unblock"
BLOCK_WORDS = {Direction.DOWN: "download", Direction.UP: "upload"}
# Under Xvfb an unblocked download read 0 B/s for 25 s and more: an open TCP
# connection goes on at its sender's next retry, and TCP waits twice as long
# after each (measured, walk26: 3.2 s after a 10 s block, 24.8 s after 30 s,
# 47.6 s after 60 s). Said where an unblock is done (the status line after the
# row menu's or the tray's, the rules dialog's line after its Block box's) and
# on that box, so an unblock is not taken for one that did nothing.
RESUME_AFTER_UNBLOCK = (
    "An open connection goes on when its sender next tries: "
    "seconds after a short block, up to a minute or two after a long one."
)


def unblocked_words(name: str, direction: Direction) -> str:
    """What is said once the helper has done an unblock."""
    return f"{name}: {BLOCK_WORDS[direction]} unblocked. {RESUME_AFTER_UNBLOCK}"


def unblocked_short(name: str, direction: Direction) -> str:
    """The same where the whole does not fit (the status line)."""
    return f"{name}: {BLOCK_WORDS[direction]} unblocked; open connections go on at their next try"


def unblock_retried(state: LimitState) -> bool:
    """Whether choosing Unblock asks again for an unblock (or other change of
    the block) the kernel refused: the block it held before holds on for now."""
    return block_lifts(state) and state.held_on


def unblock_label(state: LimitState) -> str:
    """ "Unblock", or "Retry unblock" while a refused change is held on."""
    return RETRY_UNBLOCK if unblock_retried(state) else "Unblock"


def unblock_tip(state: LimitState, units: UnitSystem) -> str:
    """What choosing Unblock does; held on, why the last one was refused."""
    if unblock_retried(state):
        return f"{describe_problem(state.problem, units)}. Choose to ask for the unblock again."
    return UNBLOCK_TIP


def unblock_hint(state: LimitState, direction: Direction) -> str:
    """Where a blocked cell's tooltip (and, held on, the pane) sends the user."""
    action = f"right-click the row, {unblock_label(state)} {BLOCK_WORDS[direction]}."
    if unblock_retried(state):
        return f"To ask for the unblock again: {action}"
    return f"To limit it instead, unblock it first: {action}"
