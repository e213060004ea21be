"""scripts/run-tests' alone phase collects only the files the lanes named as
holding machine_alone tests (tests/conftest.py, CHADTHROTTLE_ALONE_FILES),
not the whole suite again: a file left out of that list would have its
machine_alone tests run by no phase, so the list must name every such file,
whether the mark is the module's or a test's, and no other."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parents[1]
ALONE_BY_MODULE = "tests/e2e/test_flood.py"  # pytestmark
ALONE_BY_TEST = "tests/helper/kernel/test_datapath.py"  # some of its tests marked
NONE_ALONE = "tests/common/test_units.py"


def test_the_lanes_name_each_file_with_a_machine_alone_test_and_no_other(tmp_path: Path) -> None:
    listed = tmp_path / "alone-files.txt"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only",
         "-m", "not machine_alone", ALONE_BY_MODULE, ALONE_BY_TEST, NONE_ALONE],
        cwd=REPO, env={**os.environ, "CHADTHROTTLE_ALONE_FILES": str(listed)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert listed.read_text().splitlines() == sorted([ALONE_BY_MODULE, ALONE_BY_TEST])
