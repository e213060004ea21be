"""The Flatpak manifest parses with flatpak-builder and pins every source.

Flathub's runtimes cannot be reached here, so the manifest is not built in CI
(its top comment says how to build it where Flathub is reachable); what can be
checked without a runtime is: flatpak-builder reads it, every downloaded
source has a sha256 (or a git commit), and the wheels it carries cover what the
GUI and chadthrottle-ctl import.
"""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.requirements import require_program

REPO_ROOT = Path(__file__).resolve().parents[2]
MANIFEST = REPO_ROOT / "packaging" / "flatpak" / "io.github.chadthrottle.yml"
# pyproject.toml dependencies the Flatpak does not carry as wheels, and why.
NOT_CARRIED = {
    "pyside6-essentials": "PySide6 comes from the io.qt.PySide.BaseApp base",
    "pyroute2": "the helper's, which stays on the host",
}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    flatpak_builder = require_program("flatpak-builder")
    # flatpak-builder keeps a .flatpak-builder/ state directory in its working directory.
    result = subprocess.run([flatpak_builder, "--show-manifest", str(MANIFEST)], cwd=tmp_path_factory.mktemp("flatpak"),
                            capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0, f"flatpak-builder cannot read the manifest:\n{result.stderr}"
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def _modules(modules: list[Any]) -> Iterator[dict[str, Any]]:
    for module in modules:
        assert isinstance(module, dict), f"module given as a file name: {module!r}"
        yield module
        yield from _modules(module.get("modules", []))


def test_manifest_is_the_app_and_builds_modules(manifest: dict[str, Any]) -> None:
    assert manifest["id"] == "io.github.chadthrottle"
    assert manifest["command"] == "chadthrottle"
    assert [m["name"] for m in _modules(manifest["modules"])][-1] == "chadthrottle"


def test_every_source_is_pinned(manifest: dict[str, Any]) -> None:
    for module in _modules(manifest["modules"]):
        for source in module.get("sources", []):
            kind = source["type"]
            where = f"{module['name']}: {source.get('url') or source.get('path')}"
            if kind in ("file", "archive", "extra-data"):
                assert source["url"].startswith("https://"), where
                assert re.fullmatch(r"[0-9a-f]{64}", source.get("sha256", "")), (
                    f"no sha256: {where}"
                )
            elif kind == "git":
                assert re.fullmatch(r"[0-9a-f]{40}", source.get("commit", "")), (
                    f"no commit: {where}"
                )
            elif kind == "dir":
                # The project's own tree, the one being built: nothing to pin.
                assert (MANIFEST.parent / source["path"]).resolve() == REPO_ROOT, where
            else:
                pytest.fail(f"a {kind} source cannot be checked for pinning: {where}")


def test_wheels_cover_what_the_gui_and_the_cli_import(manifest: dict[str, Any]) -> None:
    wheels = {
        Path(source["url"]).name.split("-")[0].lower().replace("_", "-")
        for module in _modules(manifest["modules"])
        for source in module.get("sources", [])
        if source.get("url", "").endswith(".whl")
    }
    dependencies = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"][
        "dependencies"
    ]
    for requirement in dependencies:
        name = re.split(r"[=<>!\[ ]", requirement)[0].lower().replace("_", "-")
        assert name in wheels or name in NOT_CARRIED, f"{name} is neither carried nor accounted for"


def test_the_window_may_read_the_helpers_run_records_and_nothing_more(
    manifest: dict[str, Any],
) -> None:
    """The run records tell a helper stopped cleanly from one killed (its limits
    stay), by a lock that needs no host pid (chadthrottle.helper_run_state):
    read-only, and not a path Flatpak reserves (flatpak-exports.c refuses
    /run itself, /run/host, /run/flatpak, /usr, /etc, ...). Asserted by
    tests/common/test_run_record_lock.py's flatpak-like reader."""
    from chadthrottle.helper_run_state import STATUS_DIR

    run_args = [a for a in manifest["finish-args"] if a.startswith("--filesystem=/run")]
    assert run_args == [f"--filesystem={STATUS_DIR}:ro"], run_args
