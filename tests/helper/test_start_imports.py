"""What the helper's start imports is CPU it spends before it can answer
(docs/benchmarks.md, *Helper warm start*): modules it never uses stay out."""

from __future__ import annotations

import subprocess
import sys
from xml.sax.saxutils import quoteattr as standard_quoteattr

import pytest
from chadthrottle.helper.adapter.introspection import quoteattr

UNUSED = ("urllib.request", "http.client", "email.parser")


def test_the_helpers_start_imports_no_http_or_email() -> None:
    """xml.sax.saxutils (for quoteattr) imported urllib.request, and with it
    http.client and email: 9 ms of every start."""
    code = (
        "import sys, chadthrottle.helper.main, chadthrottle.helper.engine.factory\n"
        f"print(sorted(name for name in {UNUSED!r} if name in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout


@pytest.mark.parametrize("text", ["plain", 'a"b', "a'b", "a\"b'c", "<&>\n\r\t", "", "&quot;"])
def test_quoteattr_gives_the_standard_librarys_text(text: str) -> None:
    assert quoteattr(text) == standard_quoteattr(text)
