"""The crash records' writes (kept_record.keep_text): whole, and in place while
a page holds them, so that the engine lock never waits for a rename on a /run
that is a disk file system (flake33: 72 ms at p99, 1.2 s at worst here)."""

from __future__ import annotations

from pathlib import Path

from chadthrottle.helper.kernel.held_caps import HeldSection, held_text, parse_held
from chadthrottle.helper.kernel.kept_record import IN_PLACE_MAX, keep_text
from chadthrottle.helper.kernel.layout import SocketCaps
from chadthrottle.helper.kernel.pending_walks import owed_text, parse_owed


def _held(values: list[int]) -> list[HeldSection]:
    return [HeldSection(7, {3: values}, {4: [9_000]})]


def test_a_record_is_rewritten_in_place_not_renamed(tmp_path: Path) -> None:
    path = tmp_path / "caps-x.held"
    keep_text(path, held_text(_held([125_000])))
    inode = path.stat().st_ino
    for rate in range(1, 40):
        keep_text(path, held_text(_held([125_000 + rate])))
    assert path.stat().st_ino == inode, "written aside and renamed: a new file each time"
    assert not path.with_suffix(".new").exists()
    assert parse_held(path.read_text()) == _held([125_039])


def test_a_shorter_record_leaves_nothing_of_the_longer_one(tmp_path: Path) -> None:
    held, owed = tmp_path / "caps-x.held", tmp_path / "walks-x.owed"
    keep_text(held, held_text(_held(list(range(100_000, 100_016)))))
    keep_text(held, held_text(_held([5_000])))
    assert parse_held(held.read_text()) == _held([5_000])
    walks = [(pid, 10 * pid, SocketCaps(1_000, 2_000), None) for pid in range(100, 140)]
    keep_text(owed, owed_text(walks))
    keep_text(owed, owed_text(walks[:1]))
    assert parse_owed(owed.read_text()) == walks[:1]


def test_a_record_over_a_page_is_replaced_whole_and_then_in_place_again(tmp_path: Path) -> None:
    path = tmp_path / "caps-x.held"
    long = _held(list(range(100_000, 100_000 + IN_PLACE_MAX // 10)))
    assert len(held_text(long)) > IN_PLACE_MAX
    keep_text(path, held_text(long))
    assert parse_held(path.read_text()) == long
    keep_text(path, held_text(_held([1_000])))  # the long file is not written over: renamed
    assert path.stat().st_size <= IN_PLACE_MAX
    inode = path.stat().st_ino
    keep_text(path, held_text(_held([2_000])))
    assert path.stat().st_ino == inode
    assert parse_held(path.read_text()) == _held([2_000])


def test_an_empty_record_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "caps-x.held"
    keep_text(path, held_text(_held([1_000])))
    keep_text(path, "")
    assert not path.exists()
