"""A record under the run directory, replaced whole.

The helper's crash records (the walks' owed caps, the caps its slots held) are
read by the next start after a SIGKILL, which must find the old text or the
new, never half of one. They are written under the engine lock, the held caps
at every rate change, so the write must not wait for the disk.

A record of one page or less is rewritten in place: one pwrite at offset 0,
padded with blanks (which both parsers skip) to the file's length, so nothing
of a longer old text is left. The kernel's buffered write looks for a fatal
signal only between pages (generic_perform_write), so a SIGKILL practically
leaves the page old or new; not always: a copy from the helper's buffer that
faults midway (its page reclaimed) is taken short into a page already cached,
and the signal then ends the write there: the new text's start, the old's
end. What still parses of it is taken (a number half old, half new names a
map, a cap or a pid and start that is there only by chance: an owed pid is
walked only with its start), what does not is refused (parse_held then takes
nothing: a dead helper's caps stay). A longer record is written aside and
renamed into place.
Until flake33 (2026-12-07) every record was: on a /run on ext4 (this machine,
CI) a rename over the old file waits for the journal and writeback, and under
others' disk writes took 72 ms at p99 and up to 1.2 s, while a write in place
took 1.2 ms at p99 (docs/benchmarks/helper-calls.md); root's SetLimit waited
behind it (tests/e2e/test_flood.py)."""

from __future__ import annotations

import mmap
import os
from pathlib import Path

# One page: the most one write keeps whole against a SIGKILL, but for a short copy (above).
IN_PLACE_MAX = mmap.PAGESIZE


def keep_text(path: Path, text: str) -> None:
    """Put text in place of path whole; empty text removes the record.
    Raises OSError (the callers log it and go on: traffic fails open)."""
    if not text:
        path.unlink(missing_ok=True)
        return
    data = text.encode()
    if len(data) <= IN_PLACE_MAX and _rewrite_in_place(path, data):
        return
    making = path.with_suffix(".new")
    making.write_bytes(data)
    os.replace(making, path)


def _rewrite_in_place(path: Path, data: bytes) -> bool:
    """Overwrite path with data in one write of a page at most; False (nothing
    written) if the file is longer than a page (an old long record)."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        size = os.fstat(descriptor).st_size
        if size > IN_PLACE_MAX:
            return False
        if size > len(data):  # blanks over the rest of the old text: one line of spaces
            data += b" " * (size - len(data) - 1) + b"\n"
        if os.pwrite(descriptor, data, 0) != len(data):
            raise OSError(f"{path}: a short write")
        return True
    finally:
        os.close(descriptor)
