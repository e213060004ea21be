"""The package test's machine-wide cache of the Debian base root and apt's .debs
(tests/support/fresh_debian_root.py) is used only where no one else may write:
its tarball is unpacked, and its .debs installed, as root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.fresh_debian_root import trusted_cache_dir


def test_a_missing_cache_is_made_and_used(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    cache = tmp_path / "fresh-root"
    assert trusted_cache_dir(cache) == cache
    assert cache.is_dir()
    assert cache.stat().st_mode & 0o022 == 0


@pytest.mark.parametrize("mode", [0o775, 0o757, 0o1777])
def test_a_cache_others_may_write_is_refused(tmp_path: Path, mode: int) -> None:
    tmp_path.chmod(0o755)
    cache = tmp_path / "fresh-root"
    cache.mkdir()
    cache.chmod(mode)
    with pytest.raises(RuntimeError, match="only uid"):
        trusted_cache_dir(cache)


def test_a_cache_in_a_directory_others_may_write_is_refused(tmp_path: Path) -> None:
    tmp_path.chmod(0o777)
    with pytest.raises(RuntimeError, match="only uid"):
        trusted_cache_dir(tmp_path / "fresh-root")


def test_a_cache_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o755)
    (tmp_path / "fresh-root").symlink_to(elsewhere)
    with pytest.raises(RuntimeError, match="only uid"):
        trusted_cache_dir(tmp_path / "fresh-root")


def test_a_cache_made_under_a_group_writable_umask_is_used(tmp_path: Path) -> None:
    """The parents it makes are only this user's too: mkdir(parents=True)
    gives them the umask's mode, and under umask 002 every run was refused
    for the parent it had made itself (review33b)."""
    tmp_path.chmod(0o755)
    cache = tmp_path / "chadthrottle-tests" / "fresh-root"
    was = os.umask(0o002)
    try:
        assert trusted_cache_dir(cache) == cache
    finally:
        os.umask(was)
    assert cache.parent.stat().st_mode & 0o022 == 0
