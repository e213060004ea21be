"""A deferred module is the real one as soon as it is used."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from chadthrottle.cli.deferred_imports import defer
defer("inspect", "sys")  # sys is already imported: left alone
assert "ast" not in sys.modules and sys.modules["sys"] is sys
import inspect
stand_in = inspect
assert "ast" not in sys.modules  # imported, not yet used
assert inspect.isfunction(defer) and "ast" in sys.modules  # used: the real module
import inspect as again
assert again is sys.modules["inspect"] and stand_in.signature is again.signature
from dataclasses import dataclass
@dataclass
class NoDocstring:
    x: int
assert NoDocstring.__doc__ == "NoDocstring(x: int)"
print("ok")
"""


def test_a_deferred_module_loads_on_first_use() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60
    )
    assert result.stdout == "ok\n", result.stderr
