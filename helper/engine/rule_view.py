"""Which rule a listing shows for an application, as one viewer sees it.

Pure logic. Several rules can name one application (an administrator's and
one per user); a row has room for one limit per direction. A viewer is shown
the rule in force for their own processes: the administrator's if there is
one (it outranks user rules), else their own. A viewer who may see every
user's applications is also shown the rule of the application's one user.
"""

from __future__ import annotations

from collections.abc import Mapping

from chadthrottle.contract import ADMIN_OWNER, Direction
from chadthrottle.helper.engine.api import Viewer
from chadthrottle.helper.engine.limits import Limit

OwnedLimits = tuple[int, dict[Direction, Limit]]


def shown_rule(
    rules: Mapping[int, dict[Direction, Limit]], viewer: Viewer, process_uids: frozenset[int]
) -> OwnedLimits | None:
    """(owner, limits) of the rule the viewer's row shows, or None."""
    if ADMIN_OWNER in rules:
        return ADMIN_OWNER, rules[ADMIN_OWNER]
    if viewer.uid in rules:
        return viewer.uid, rules[viewer.uid]
    if not viewer.sees_all:
        return None
    if len(process_uids) == 1:
        (uid,) = process_uids
        if uid in rules:
            return uid, rules[uid]
    if len(rules) == 1:
        ((owner, limits),) = rules.items()
        return owner, limits
    return None
