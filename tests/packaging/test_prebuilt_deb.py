"""The package scripts/run-tests builds beside install-deps is taken only once
its build ended well; one that failed is built again by the module, so a
failure there is the build's own (tests/support/package_preparation.py)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.support import package_preparation
from tests.support.package_preparation import PREBUILT_VARIABLE


def _ended(folder: Path, status: str, said: str) -> None:
    """As scripts/run-tests ends its prebuild: the status written whole, then
    renamed into place (a poll between its creation and its write would read
    an empty status, a failed build)."""
    (folder / "path").write_text(said)
    (folder / "status.partial").write_text(status + "\n")
    (folder / "status.partial").rename(folder / "status")


def test_a_prebuild_that_ended_well_is_taken_once_it_ended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deb = tmp_path / "out" / "chadthrottle_0.1.0-1_amd64.deb"
    deb.parent.mkdir()
    deb.write_bytes(b"!<arch>\n")
    monkeypatch.setenv(PREBUILT_VARIABLE, str(tmp_path))
    ending = threading.Timer(0.5, _ended, (tmp_path, "0", f"build-deb: noise\n{deb}\n"))
    ending.start()
    try:
        assert package_preparation._prebuilt() == deb
    finally:
        ending.cancel()
    assert (tmp_path / "status").exists(), "taken before the build ended"


@pytest.mark.parametrize(
    ("status", "said"),
    [("1", "{deb}"), ("0", ""), ("0", "{deb}.missing")],
    ids=["failed", "silent", "gone"],
)
def test_a_prebuild_that_failed_is_built_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, status: str, said: str
) -> None:
    deb = tmp_path / "chadthrottle_0.1.0-1_amd64.deb"
    deb.write_bytes(b"!<arch>\n")
    _ended(tmp_path, status, said.format(deb=deb))
    monkeypatch.setenv(PREBUILT_VARIABLE, str(tmp_path))
    assert package_preparation._prebuilt() is None


def test_without_a_prebuild_the_module_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PREBUILT_VARIABLE, raising=False)
    assert package_preparation._prebuilt() is None
