"""Whether the program an application id names still exists on disk.

Users' rules for programs that are gone are dropped (docs/helper.md), so that
ids a user invents cost nothing for long. Only ids that name a file can be
checked: "exe:", "script:" and "appimage:" with a plain absolute path. An id whose path had
to be escaped (it holds a backslash) cannot be mapped back to the file and is
never taken for gone; nor is an "app:" id, which names no single file.
"""

from __future__ import annotations

import os

_FILE_KINDS = ("exe:", "script:", "appimage:")


def program_is_gone(app_id: str) -> bool:
    for prefix in _FILE_KINDS:
        if app_id.startswith(prefix):
            path = app_id[len(prefix):]
            if not path.startswith("/") or "\\" in path:
                return False
            return not os.path.lexists(path)
    return False
