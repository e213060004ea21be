"""The one thread that touches the engine.

The engine blocks on the kernel, and some of its libraries (pyroute2) refuse
to run on a thread with a running asyncio loop. So the engine is built, called
and closed on a single worker thread, one call at a time, and the event loop
only awaits the results. (The engine also locks its own state: its tick and
new-owner threads run beside this one.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

Result = TypeVar("Result")


class EngineThread:
    """Serializes every engine call onto one worker thread."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine")

    async def run(self, function: Callable[..., Result], *args: Any) -> Result:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, function, *args)

    def shutdown(self) -> None:
        """Wait for the call in progress, if any; later calls are refused."""
        self._executor.shutdown(wait=True)
