"""A record under the run directory, replaced whole.

The helper's crash records (the walks' owed caps, the caps its slots held) are
read by the next start after a SIGKILL: written aside and renamed into place,
so that start reads the old text or the new, never half of one."""

from __future__ import annotations

import os
from pathlib import Path


def keep_text(path: Path, text: str) -> None:
    """Put text in place of path whole; empty text removes the record.
    Raises OSError (the callers log it and go on: traffic fails open)."""
    if not text:
        path.unlink(missing_ok=True)
        return
    making = path.with_suffix(".new")
    making.write_text(text)
    os.replace(making, path)
