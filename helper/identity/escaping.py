"""Names from the kernel made fit for the bus and for people's terminals.

Paths, cgroup names and interface names are bytes to the kernel: they need not
be UTF-8 and may hold control characters. D-Bus strings must be UTF-8, and a
control character reaching a terminal can rewrite it, so every such name is
escaped before it leaves the helper (docs/helper.md, "Names from the kernel"):

- a byte that is not part of valid UTF-8 becomes ``\\xNN`` (two lowercase hex
  digits);
- a control character (C0, DEL, C1) becomes its UTF-8 bytes as ``\\xNN`` each;
- a backslash becomes ``\\\\``; everything else is kept as it is.

Since every backslash in the result starts an escape, the original bytes can be
read back from it: different names never give the same string. An application
id longer than contract.MAX_APP_ID_LENGTH keeps its beginning and ends in
``\\#`` and 32 hex digits of the SHA-256 of the whole escaped id, so that two
long paths that differ only near their end stay two applications.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata

from chadthrottle.contract import MAX_APP_ID_LENGTH

SHORTENED_MARK = "\\#"
DIGEST_HEX_DIGITS = 32  # 128 bits: no collision can be searched for
# One unit of escaped text: an escape, or one character kept as it is.
_TOKEN = re.compile(r"\\\\|\\x[0-9a-f]{2}|.", re.DOTALL)


def _escaped_char(char: str) -> str:
    if char == "\\":
        return "\\\\"
    if "\udc80" <= char <= "\udcff":  # a byte that was not UTF-8, as os.fsdecode keeps it
        return f"\\x{ord(char) - 0xDC00:02x}"
    if unicodedata.category(char) in ("Cc", "Cs"):
        return "".join(f"\\x{byte:02x}" for byte in char.encode("utf-8", "surrogatepass"))
    return char


def escape_bytes(raw: bytes) -> str:
    """Raw bytes from the kernel as UTF-8 with no control characters."""
    text = raw.decode("utf-8", "surrogateescape")
    if text.isprintable() and "\\" not in text:
        return text  # most names: nothing to escape (controls and surrogates are not printable)
    return "".join(_escaped_char(char) for char in text)


def escape_os_name(name: str) -> str:
    """A name as os.readlink, os.listdir or socket.if_nameindex return it:
    escaped from the bytes the kernel has (os.fsencode gives them back, in
    whatever locale the helper runs)."""
    return escape_bytes(os.fsencode(name))


def escape_text(text: str) -> str:
    """Text that is already characters (a .desktop file's Name=): only its
    control characters and backslashes are escaped."""
    return "".join(_escaped_char(char) for char in text)


def bounded_app_id(kind: str, escaped_value: str) -> str:
    """The id <kind>:<escaped value>, shortened to MAX_APP_ID_LENGTH characters
    when longer: its start (never cut inside an escape), the mark, the digest."""
    app_id = f"{kind}:{escaped_value}"
    if len(app_id) <= MAX_APP_ID_LENGTH:
        return app_id
    digest = hashlib.sha256(app_id.encode("utf-8")).hexdigest()[:DIGEST_HEX_DIGITS]
    budget = MAX_APP_ID_LENGTH - len(SHORTENED_MARK) - DIGEST_HEX_DIGITS
    kept: list[str] = []
    length = 0
    for token in _TOKEN.findall(app_id):
        if length + len(token) > budget:
            break
        kept.append(token)
        length += len(token)
    return "".join(kept) + SHORTENED_MARK + digest
