"""What killed shapers left, removed as the next helper's start removes it."""

from __future__ import annotations

from chadthrottle.helper.kernel.tc_shaper import remove_unadopted
from pyroute2 import IPRoute

from tests.support.own_names import JOURNAL_INSTANCE


def remove_own_unadopted(ipr: IPRoute) -> int:
    """remove_unadopted of this session's instance (own_names.JOURNAL_INSTANCE,
    the one its shapers are made with): how many objects it removed. One
    call: another session's scan no longer opens this session's journals
    (ownership.take_over_dead), so it never holds one's lock for the moment
    this call comes to it, which made it skip that journal as a live owner's
    (CI h2, two lanes: 0 of 2; until 2026-12-06 this was called again until
    all went)."""
    return remove_unadopted(ipr, JOURNAL_INSTANCE)
