"""The helper's systemd unit, as `chadthrottle-helper install` and the Debian
package write it, scores at most 3.5 in `systemd-analyze security` (6.3 before
issue 18). The unit is verified on an installed system, where its ExecStart=
and dbus.socket exist: tests/packaging/test_debian_package.py."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from chadthrottle.helper.install import SYSTEMD_UNIT, plan

from tests.support.requirements import require_program

MAX_EXPOSURE = 3.5


def test_unit_exposure_is_at_most_3_5(tmp_path: Path) -> None:
    systemd_analyze = require_program("systemd-analyze")
    unit = next(
        f
        for f in plan(Path("/usr/bin/chadthrottle-helper"), systemd=True)
        if f.target.name == SYSTEMD_UNIT
    )
    path = tmp_path / SYSTEMD_UNIT
    path.write_bytes(unit.content)
    result = subprocess.run([systemd_analyze, "security", "--offline=yes", "--no-pager", str(path)],
                            capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    match = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match[1]) <= MAX_EXPOSURE, result.stdout
