"""The record of the caps a helper's slots held (held_caps.py), without the
kernel: what a SIGKILLed helper's successor reads, and what it refuses."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from chadthrottle.helper.kernel.held_caps import (
    VALUES_PER_SLOT,
    HeldCapsRecord,
    HeldSection,
    held_text,
    parse_held,
)
from chadthrottle.helper.kernel.layout import SocketCaps


def test_a_record_reads_back_as_written() -> None:
    sections = [HeldSection(7, {3: [125_000, 250_000]}, {3: [125_000]}),
                HeldSection(9, {}, {12: [1_000]})]  # fmt: skip
    assert parse_held(held_text(sections)) == sections


@pytest.mark.parametrize(
    "text",
    [
        "pacing 3 125000\n",  # no map before it
        "map 7\npacing 3 125000\nwindow 3\n",  # cut short
        "map 7\npacing 0 125000\n",  # slot 0 is none's
        "map 7\npacing 3 -5\n",
        "map 7\npacing 70000 5\n",  # past the slots
        "map 7\nspeed 3 5\n",
        "map 0\n",
        "map 7\npacing 3 4294967296\n",  # past 32 bits
    ],
)
def test_a_record_not_of_ours_is_refused_whole(text: str) -> None:
    with pytest.raises(ValueError, match="line"):
        parse_held(text)


def test_a_bad_record_is_named_in_the_log_and_nothing_is_taken(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "caps-ab.held"
    path.write_text("map 7\npacing 3 125000\nwindow 3 x\n")
    with caplog.at_level(logging.WARNING):
        assert HeldCapsRecord(path).read() == []
    assert f"the held caps record {path} is not valid (line 3" in caplog.text


def test_the_record_keeps_each_value_a_slot_set_the_newest_bounded(tmp_path: Path) -> None:
    path = tmp_path / "caps-ab.held"
    record = HeldCapsRecord(path)
    record.attach(5)
    record.note(3, SocketCaps(pacing_bps=125_000))
    assert parse_held(path.read_text()) == [HeldSection(5, {3: [125_000]})]
    for rate in range(1, VALUES_PER_SLOT + 3):
        record.note(3, SocketCaps(pacing_bps=rate, window_bps=rate))
    (section,) = parse_held(path.read_text())
    assert section.pacing[3] == list(range(3, VALUES_PER_SLOT + 3))
    assert section.window[3] == list(range(3, VALUES_PER_SLOT + 3))
    record.forget(3)  # let go: no socket carries it
    assert not path.exists()


def test_a_predecessors_part_is_kept_until_swept(tmp_path: Path) -> None:
    """A helper killed before its sweep ended leaves its predecessor's part
    to the next start."""
    path = tmp_path / "caps-ab.held"
    dead = HeldSection(4, {2: [1_000]})
    path.write_text(held_text([dead]))
    record = HeldCapsRecord(path)
    record.inherited = record.read()
    record.attach(5)
    record.note(3, SocketCaps(window_bps=9_000))
    assert parse_held(path.read_text()) == [dead, HeldSection(5, {}, {3: [9_000]})]
    record.close_own()  # a clean stop lifted its own
    assert parse_held(path.read_text()) == [dead]
    record.swept([4])
    assert not path.exists()
