"""Names from the kernel, escaped: UTF-8, no control characters, one string per
name, and application ids the adapter accepts."""

from __future__ import annotations

import itertools
import random
import re
import unicodedata

import pytest
from chadthrottle.contract import MAX_APP_ID_LENGTH
from chadthrottle.helper.adapter.validation import validate_app_id
from chadthrottle.helper.identity.escaping import (
    DIGEST_HEX_DIGITS,
    SHORTENED_MARK,
    bounded_app_id,
    escape_bytes,
    escape_os_name,
    escape_text,
)

_ESCAPE = re.compile(r"\\\\|\\x([0-9a-f]{2})|\\|.", re.DOTALL)


def unescape(escaped: str) -> bytes:
    """The inverse of escape_bytes, as docs/helper.md describes it: proof that
    no two names give the same string."""
    raw = bytearray()
    for match in _ESCAPE.finditer(escaped):
        token = match.group(0)
        if token == "\\\\":
            raw += b"\\"
        elif match.group(1):
            raw.append(int(match.group(1), 16))
        elif token.startswith("\\"):
            raise ValueError(f"{token!r} is no escape")
        else:
            raw += token.encode("utf-8")
    return bytes(raw)


def is_fit_for_the_bus(text: str) -> bool:
    text.encode("utf-8")  # raises on a lone surrogate, which D-Bus cannot carry
    return not any(unicodedata.category(char) in ("Cc", "Cs") for char in text)


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        (b"/usr/bin/curl", "/usr/bin/curl"),
        (b"/opt/caf\xc3\xa9/\xe5\x9c\x96", "/opt/café/圖"),
        (b"/tmp/\xff\xfe/run", "/tmp/\\xff\\xfe/run"),
        (b"/tmp/\x1b[31mred", "/tmp/\\x1b[31mred"),
        (b"a\tb\nc\rd\x7f", "a\\x09b\\x0ac\\x0dd\\x7f"),
        (b"nel\xc2\x85csi\xc2\x9b", "nel\\xc2\\x85csi\\xc2\\x9b"),  # C1 controls, valid UTF-8
        (b"half\xc3", "half\\xc3"),  # a sequence cut short
        (b"surrogate\xed\xa0\x80", "surrogate\\xed\\xa0\\x80"),  # UTF-8 may not encode surrogates
        (b"C:\\x41", "C:\\\\x41"),  # a backslash stays apart from an escape
        (b"\\\\", "\\\\\\\\"),
    ],
)
def test_examples(raw: bytes, escaped: str) -> None:
    assert escape_bytes(raw) == escaped
    assert is_fit_for_the_bus(escaped)
    assert unescape(escaped) == raw


def test_every_short_byte_string_escapes_to_its_own_string() -> None:
    alphabet = [b"\\", b"x", b"f", b"\xff", b"\x1b", b"\xc2", b"\x85", b"\xc3", b"\xa9", b"a"]
    seen: dict[str, bytes] = {}
    for length in range(4):
        for parts in itertools.product(alphabet, repeat=length):
            raw = b"".join(parts)
            escaped = escape_bytes(raw)
            assert seen.setdefault(escaped, raw) == raw, (
                f"{raw!r} and {seen[escaped]!r} give {escaped!r}"
            )
            assert is_fit_for_the_bus(escaped) and unescape(escaped) == raw


def test_random_bytes_round_trip() -> None:
    generator = random.Random(20)
    for _ in range(2000):
        raw = bytes(generator.randrange(256) for _ in range(generator.randrange(40)))
        escaped = escape_bytes(raw)
        assert is_fit_for_the_bus(escaped) and unescape(escaped) == raw


def test_names_from_the_os_are_escaped_from_their_bytes() -> None:
    # os.readlink and socket.if_nameindex keep bytes that are not UTF-8 as lone surrogates
    assert escape_os_name(b"/tmp/\xff\xfe".decode("utf-8", "surrogateescape")) == "/tmp/\\xff\\xfe"
    assert escape_text("Mail\x1b]0;owned\x07") == "Mail\\x1b]0;owned\\x07"
    assert escape_text("Café \\ Bar") == "Café \\\\ Bar"


def test_a_short_id_is_kept_whole() -> None:
    value = "/" + "a" * (MAX_APP_ID_LENGTH - len("exe:/"))
    assert bounded_app_id("exe", value) == f"exe:{value}"
    assert len(bounded_app_id("exe", value)) == MAX_APP_ID_LENGTH


@pytest.mark.parametrize("filler", [b"a", b"\xff", b"\x1b", b"\\", "é".encode()])
def test_a_long_id_is_shortened_deterministically_and_stays_valid(filler: bytes) -> None:
    raw = b"/" + b"/".join([filler * 200] * 4) + b"/end"
    app_id = bounded_app_id("exe", escape_bytes(raw))
    assert len(app_id) <= MAX_APP_ID_LENGTH and validate_app_id(app_id) == app_id
    assert app_id == bounded_app_id("exe", escape_bytes(raw))
    assert re.search(re.escape(SHORTENED_MARK) + f"[0-9a-f]{{{DIGEST_HEX_DIGITS}}}$", app_id)
    prefix = app_id[len("exe:") : -len(SHORTENED_MARK) - DIGEST_HEX_DIGITS]
    assert raw.startswith(unescape(prefix)), "the kept start is cut inside an escape"


def test_long_paths_that_differ_only_at_the_end_are_two_ids() -> None:
    base = b"/" + b"d" * 250 + b"/" + b"e" * 250 + b"/"
    ids = {
        bounded_app_id("exe", escape_bytes(base + tail))
        for tail in (b"one", b"two", b"\xff", b"\\xff")
    }
    assert len(ids) == 4
