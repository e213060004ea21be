"""The tree passes ruff (lint and format, all of it) and mypy --strict (product code).

Configuration: pyproject.toml's [tool.ruff] and [tool.mypy]; the versions are
pinned in its test extra, so a new release cannot fail CI on its own. What each
covers and how to fix a finding: docs/development.md, "Code checks".
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

from tests.support.code_checks import REPO_ROOT, typecheck
from tests.support.requirements import require


def _ruff(*arguments: str) -> subprocess.CompletedProcess[str]:
    require(importlib.util.find_spec("ruff") is not None, "needs ruff (pip install -e '.[test]')")
    return subprocess.run(
        [sys.executable, "-m", "ruff", *arguments],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_ruff_check_finds_nothing() -> None:
    result = _ruff("check", "--output-format", "concise", ".")
    assert result.returncode == 0, (
        f"ruff check (fix with `.venv/bin/ruff check --fix FILES`, the rest by hand):\n"
        f"{result.stdout}{result.stderr}"
    )


def test_ruff_format_changes_nothing() -> None:
    result = _ruff("format", "--check", ".")
    assert result.returncode == 0, (
        f"ruff format would change these (run `.venv/bin/ruff format FILES`):\n"
        f"{result.stdout}{result.stderr}"
    )


def test_typecheck_gives_mypy_each_file_under_its_installed_name() -> None:
    """Under the directories' names mypy would check gui/app.py as gui.app, and
    every chadthrottle.* import would be another, unchecked module (Any)."""
    require(importlib.util.find_spec("mypy") is not None, "needs mypy (pip install -e '.[test]')")
    spec = importlib.util.spec_from_file_location(
        "typecheck", REPO_ROOT / "scripts" / "typecheck.py"
    )
    assert spec is not None and spec.loader is not None
    typecheck = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(typecheck)
    named = {source.path: source.module for source in typecheck.sources()}
    assert named["common/contract.py"] == "chadthrottle.contract"
    assert named["common/__init__.py"] == "chadthrottle"
    assert named["gui/views/app_table.py"] == "chadthrottle.gui.views.app_table"
    assert named["helper/engine/__init__.py"] == "chadthrottle.helper.engine"
    assert named["cli/ctl.py"] == "chadthrottle.cli.ctl"
    assert not [path for path in named if path.startswith(("tests/", "bench/", "scripts/"))]


def test_mypy_strict_finds_nothing_in_the_product_code() -> None:
    require(importlib.util.find_spec("mypy") is not None, "needs mypy (pip install -e '.[test]')")
    finished = typecheck()
    assert finished.returncode == 0, (
        f"mypy --strict on common/ helper/ cli/ gui/ (scripts/typecheck.py):\n{finished.output}"
    )
