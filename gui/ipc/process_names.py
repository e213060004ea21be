"""Process names for the child rows, read from /proc by the worker thread.

The helper reports only pids; the GUI runs on the same host and may read
/proc/PID/comm itself. Cached per pid and pruned to the pids still reported,
so a reused pid gets its name read again.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


class ProcessNames:
    """Pid -> short command name, cached between polls."""

    def __init__(self, proc_root: Path = Path("/proc")) -> None:
        self._proc_root = proc_root
        self._names: dict[int, str] = {}

    def resolve(self, pids: Iterable[int]) -> dict[int, str]:
        """Names for exactly these pids ("" when the process is not visible)."""
        current = set(pids)
        for gone in self._names.keys() - current:
            del self._names[gone]
        for pid in current - self._names.keys():
            self._names[pid] = self._read_comm(pid)
        return dict(self._names)

    def _read_comm(self, pid: int) -> str:
        """The kernel keeps a name's bytes as the program gave them, UTF-8 or
        not: read as text, one that was not (0xff under Xvfb, another session's
        programs at hostile paths) raised out of the poll, and the window said
        the helper was not running. Bad bytes read as U+FFFD."""
        try:
            raw = (self._proc_root / str(pid) / "comm").read_bytes()
        except OSError:
            return ""
        return raw.decode("utf-8", errors="replace").strip()
