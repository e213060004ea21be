"""How one limit holds in each network namespace of its application's
processes, as ListApplications says it (*_limit_reach; docs/backends.md,
"Every namespace: tc shapes where the traffic flows").

The same limit holds differently by path. Where the tc backend shapes every
namespace of the application, a limit over several of them is divided by what
each uses (namespace_shares.py). Where the policer holds it (the ebpf backend,
or a namespace tc could not enter or shape), the policer holds the sum, first
come first served: nothing divides it by use. SetLimit's text (LIMIT_REACH)
says both; this says which one applies to each limit now, and why.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

OWN_NAMESPACE = "the helper's own namespace"
SOCKETS_ONLY = "a namespace where it has sockets but no process"
FIRST_COME = "the policer holds the sum, first come first served, not divided by use"
# A namespace where none of the viewer's processes is, as a user sees it: an
# administrator's limit spans every user's processes, and which namespaces
# another user's programs run in (and what is wrong there) is not theirs to read.
OTHER_USERS = "another user's namespace"
THEIR_REASON = "the reason is that user's to see"


@dataclass(frozen=True)
class NamespaceHold:
    """One namespace of a limited application's processes, for one direction."""

    label: str  # "namespace ctapp-1", or OWN_NAMESPACE
    policed_why: str = ""  # why tc does not shape the limit there; "" where it does


def namespaces_of(slots: Mapping[int, int]) -> dict[int, set[int]]:
    """slot -> the network namespace inodes of its processes (pid -> slot);
    a process that exited is left out."""
    found: dict[int, set[int]] = {}
    for pid, slot in slots.items():
        try:
            inode = os.stat(f"/proc/{pid}/ns/net").st_ino
        except OSError:
            continue
        found.setdefault(slot, set()).add(inode)
    return found


def seen_by(
    holds: Iterable[tuple[int | None, NamespaceHold]], shown: Collection[int] | None
) -> list[NamespaceHold]:
    """The holds (each with its namespace's inode; None: names no namespace) as
    a viewer may read them: shown, the inodes of the viewer's own processes
    (None: an administrator, who sees all); any other is OTHER_USERS, and why
    tc does not shape there is not said, only that it does not."""
    return [
        hold
        if shown is None or inode is None or inode in shown
        else NamespaceHold(OTHER_USERS, THEIR_REASON if hold.policed_why else "")
        for inode, hold in holds
    ]


def _names(labels: Sequence[str]) -> str:
    hidden = labels.count(OTHER_USERS)
    if hidden > 1:  # one entry for them all, where the first was
        first = labels.index(OTHER_USERS)
        labels = [label for label in labels if label != OTHER_USERS]
        labels.insert(first, f"{hidden} namespaces of other users")
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]


def policed_reach(labels: Sequence[str]) -> str:
    """The policer alone holds the direction (the ebpf backend): over several
    namespaces it holds the sum; one namespace is its usual single path ("")."""
    if len(labels) < 2:
        return ""
    return f"over {_names(labels)}: {FIRST_COME} (the ebpf backend)"


def shaped_reach(holds: Sequence[NamespaceHold], guarded: bool) -> str:
    """tc holds the direction: divided by demand between the namespaces it
    shapes, policed (or, without the guard, not held) where it does not. ""
    for one namespace that tc shapes: nothing to say beyond the limit."""
    shaped = [hold.label for hold in holds if not hold.policed_why]
    policed = [hold for hold in holds if hold.policed_why]
    if not policed and len(shaped) < 2:
        return ""
    parts = []
    if len(shaped) > 1:
        parts.append(
            f"divided by demand between {_names(shaped)} (tc shapes each; the shares follow use)"
        )
    elif shaped:
        parts.append(f"shaped by tc in {shaped[0]}")
    if policed:  # once each: several other users' namespaces read alike
        parts += dict.fromkeys(
            f"policed, not shaped in {hold.label}: {hold.policed_why}" for hold in policed
        )
        parts.append(FIRST_COME if guarded else "the traffic there is not held")
    return "; ".join(parts)


def ordered(inodes: Iterable[int], own_inode: int) -> list[int]:
    """The helper's own namespace first, then by inode (a stable order)."""
    return sorted(inodes, key=lambda inode: (inode != own_inode, inode))
