"""pyproject.toml names the packages a wheel (and so the Debian package) carries.

An editable install finds a new subpackage without it, so only a built package
would miss one: the packaged GUI failed to start when gui/alerts/ was added and
not listed. This checks the list against the tree.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _setuptools() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _packages_in_the_tree(package_dir: dict[str, str]) -> set[str]:
    found = set()
    for package, folder in package_dir.items():
        root = REPO_ROOT / folder
        for init in root.rglob("__init__.py"):
            relative = init.parent.relative_to(root).parts
            if "__pycache__" not in relative:
                found.add(".".join((package, *relative)))
    return found


def test_every_package_directory_is_listed_once() -> None:
    setuptools = _setuptools()
    listed = setuptools["packages"]
    assert len(listed) == len(set(listed)), "a package is listed twice"
    missing = _packages_in_the_tree(setuptools["package-dir"]) - set(listed)
    assert not missing, (
        f"not in pyproject.toml's packages (a built package would lack them): {sorted(missing)}"
    )


def test_every_listed_package_exists() -> None:
    setuptools = _setuptools()
    stale = set(setuptools["packages"]) - _packages_in_the_tree(setuptools["package-dir"])
    assert not stale, f"listed in pyproject.toml but not in the tree: {sorted(stale)}"
