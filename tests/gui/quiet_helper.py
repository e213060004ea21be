"""A stand-in for the worker's helper connection that answers at once with
nothing: tests subclass it and hold back the one call they are about."""

from __future__ import annotations


class QuietHelper:
    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def list_backends(self) -> list[object]:
        return []

    async def list_applications(self) -> list[object]:
        return []

    async def get_limits_paused(self) -> bool:
        return False

    async def list_rules(self) -> list[object]:
        return []
