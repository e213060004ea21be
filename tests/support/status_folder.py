"""A private folder for helper run records (helper/run_state.py), made as the
helper makes /run/chadthrottle-status: root's, 0755, so the reader trusts it."""

from __future__ import annotations

from pathlib import Path

from tests.support.requirements import require_root


def status_folder(tmp_path: Path) -> Path:
    """The record's directory under tmp_path; the reader refuses one not root's alone."""
    require_root()
    made = tmp_path / "status"
    made.mkdir(mode=0o755)
    made.chmod(0o755)  # mkdir's mode is masked by the umask
    return made
