"""Whether the program an application id names still exists on disk.

Users' rules for programs that are gone are dropped (docs/helper.md), so that
ids a user invents cost nothing for long. Only ids that name a file can be
checked: "exe:", "script:" and "appimage:" with a plain absolute path. An id
whose path had to be escaped (it holds a backslash) cannot be mapped back to
the file and is never taken for gone; nor is one the helper may not look at,
nor an "app:", "snap:" or "unit:" id, which names no single file.
"""

from __future__ import annotations

import os

_FILE_KINDS = ("exe:", "script:", "appimage:")


def program_is_gone(app_id: str) -> bool:
    for prefix in _FILE_KINDS:
        if app_id.startswith(prefix):
            path = app_id[len(prefix) :]
            if not path.startswith("/") or "\\" in path:
                return False
            return _missing(path)
    return False


def _missing(path: str) -> bool:
    """Only a path that certainly is not there: one the helper may not look
    into is not gone. The packaged unit's ProtectHome=yes hides /home from it,
    where most AppImages and a user's own programs live (EACCES, not ENOENT)."""
    try:
        os.lstat(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return False
