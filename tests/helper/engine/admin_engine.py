"""The engine with two shorthands for tests: one administrator SetLimit or
ClearLimit at a time, its refusal raised. The product goes through
Engine.apply_changes (in batches, from the adapter); these are not its API."""

from __future__ import annotations

from chadthrottle.contract import ADMIN_OWNER, Direction
from chadthrottle.helper.engine.api import ClearLimit, LimitChange, SetLimit
from chadthrottle.helper.engine.engine import Engine
from chadthrottle.helper.errors import HelperError


class AdminEngine(Engine):
    """A real Engine; set_limit/clear_limit are apply_changes of one change."""

    def set_limit(self, app_id: str, direction: Direction, rate_bps: int, burst_bytes: int) -> str:
        """One administrator SetLimit; the resolved id, or the HelperError raised."""
        return self._apply_one(SetLimit(app_id, direction, rate_bps, burst_bytes, ADMIN_OWNER))

    def clear_limit(self, app_id: str, directions: tuple[Direction, ...]) -> str:
        """One administrator ClearLimit; the resolved id, or the HelperError raised."""
        return self._apply_one(ClearLimit(app_id, directions, ADMIN_OWNER))

    def _apply_one(self, change: LimitChange) -> str:
        (outcome,) = self.apply_changes([change])
        if isinstance(outcome, HelperError):
            raise outcome
        return outcome
