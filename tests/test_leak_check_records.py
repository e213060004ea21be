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


def test_a_record_of_another_sessions_live_helper_is_not_named_and_a_dead_ones_is() -> None:
    """Another engineer's tests ran beside a session: their live helpers'
    records came and failed it (clsact34). The record's pid tells: alive and
    not of this session (its environment lacks the session's tag)."""
    import json
    import os
    import subprocess

    from tests.support import own_names

    require_root()
    STATUS_DIR.mkdir(mode=0o755, exist_ok=True)
    theirs = STATUS_DIR / f"helper-leakcheck{secrets.token_hex(4)}.json"
    env = {k: v for k, v in os.environ.items() if k != own_names.SESSION_ENV}
    other = subprocess.Popen(["sleep", "60"], env=env)
    before = snapshot()
    try:
        theirs.write_text(json.dumps({"state": "running", "pid": other.pid}) + "\n")
        assert not any(theirs.name in d for d in differences(before, snapshot()))
        other.kill()
        other.wait()
        assert any(theirs.name in d for d in differences(before, snapshot()))
    finally:
        other.kill()
        other.wait()
        theirs.unlink(missing_ok=True)
