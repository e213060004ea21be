"""The run's leak check names a helper run record left behind: a private
bus's helper removes its bus's record at close (helper/standalone.py), so a
record that came during the run is a helper or a bus that was not cleaned."""

from __future__ import annotations

import secrets

from chadthrottle.helper_run_state import STATUS_DIR

from tests.support.leaks import differences, snapshot
from tests.support.requirements import require_root


def test_a_record_that_came_is_named_and_one_that_went_is_not() -> None:
    require_root()
    STATUS_DIR.mkdir(mode=0o755, exist_ok=True)
    left = STATUS_DIR / f"helper-leakcheck{secrets.token_hex(4)}.json"
    before = snapshot()
    left.write_text("{}\n")
    try:
        came = snapshot()
        assert any("helper run records" in d and left.name in d for d in differences(before, came))
    finally:
        left.unlink()
    gone = snapshot()
    assert not any(left.name in d for d in differences(came, gone))
