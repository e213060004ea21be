"""The engine's lock, which its close() shuts for good.

Every kernel write of the engine (a tick, a link follow, a new socket owner,
a change, a graft wait's tags) happens under the engine lock. close() takes
the lock (waiting, within a bound, for a write in progress to finish), marks
it closed and removes the kernel objects while holding it; from then on taking
it raises EngineClosed, so a thread that was late (a tick stuck in a slow
netlink or bpf call) cannot re-make a class, gate, IFB or tag after the clean-up.
Until 2026-12-06 close() joined the threads for 10 s each and removed everything
whether or not they had ended.
"""

from __future__ import annotations

import threading
from types import TracebackType

from chadthrottle.helper.errors import EngineClosed


class ClosingLock:
    """A re-entrant lock that, once closed, refuses every thread (the closer's
    only once it has let go: close() calls the engine's own steps under it)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        # The thread that closed it, which may take it again until release(); -1 after.
        self._closer: int | None = None

    def __enter__(self) -> None:
        self._lock.acquire()
        if self._closer is not None and self._closer != threading.get_ident():
            self._lock.release()
            raise EngineClosed("the engine is closed: the helper is stopping")

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:  # fmt: skip
        self._lock.release()

    @property
    def closed(self) -> bool:
        return self._closer is not None

    def close(self, timeout_s: float) -> bool:
        """Take the lock within timeout_s and close it: True, and the caller
        holds it (release()); False if another thread held it all that time
        (it is then still open)."""
        if not self._lock.acquire(timeout=max(0.0, timeout_s)):
            return False
        self._closer = threading.get_ident()
        return True

    def release(self) -> None:
        """Let go of the lock close() took: it stays closed, to the closer too."""
        self._closer = -1  # no thread's ident
        self._lock.release()
