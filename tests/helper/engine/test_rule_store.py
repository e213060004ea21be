"""The rules file: round trips, atomic replacement, and distrust of anything odd."""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest
from chadthrottle.contract import (
    ADMIN_OWNER,
    MAX_BURST_BYTES,
    MAX_RATE_BPS,
    MAX_RULES_PER_USER,
    MIN_BURST_BYTES,
    MIN_RATE_BPS,
    Direction,
)
from chadthrottle.helper.engine.limits import Limit, LimitTable
from chadthrottle.helper.engine.rule_codec import (
    FORMAT_VERSION,
    LEGACY_VERSION,
    decode_rules,
    encode_rules,
)
from chadthrottle.helper.engine.rule_store import (
    RULES_FILE,
    BackgroundSaver,
    RuleStore,
    StateFileError,
)
from hypothesis import given, settings
from hypothesis import strategies as st

FIREFOX = "app:org.mozilla.firefox"
CURL = "exe:/usr/bin/curl"


def _table(*rules: tuple[str, Direction, int, int]) -> LimitTable:
    table = LimitTable()
    for app_id, direction, rate_bps, burst_bytes in rules:
        table.set((app_id, ADMIN_OWNER), direction, Limit(rate_bps, burst_bytes))
    return table


def _document(applications: Any, version: Any = LEGACY_VERSION) -> bytes:
    """A version-1 file: rules by application, no owners."""
    return json.dumps({"version": version, "applications": applications}).encode()


def _rules(*rules: Any) -> bytes:
    return json.dumps({"version": FORMAT_VERSION, "rules": list(rules)}).encode()


def _rule(app_id: Any = CURL, owner: Any = "all", **limits: Any) -> dict[str, Any]:
    return {"app_id": app_id, "owner": owner, **(limits or {"up": _good_limit()})}


def _good_limit(rate_bps: int = 125_000) -> dict[str, int]:
    return {"rate_bps": rate_bps, "burst_bytes": MIN_BURST_BYTES}


def test_a_missing_file_is_no_rules(tmp_path: Path) -> None:
    store = RuleStore(tmp_path / "state")
    assert store.load().items() == []
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700


def test_saved_rules_load_back_and_the_file_is_private(tmp_path: Path) -> None:
    store = RuleStore(tmp_path / "state")
    table = _table(
        (FIREFOX, Direction.DOWN, 1_000_000, 200_000), (CURL, Direction.UP, 5_000, MIN_BURST_BYTES)
    )
    store.save(table)
    assert RuleStore(tmp_path / "state").load().items() == table.items()
    info = store.path.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == os.geteuid()
    assert stat.S_IMODE(store.state_dir.stat().st_mode) == 0o700
    assert sorted(p.name for p in store.state_dir.iterdir()) == [RULES_FILE]  # no temporary left


def test_the_format_is_versioned_and_readable(tmp_path: Path) -> None:
    store = RuleStore(tmp_path)
    store.save(_table((FIREFOX, Direction.UP, 2_000, MIN_BURST_BYTES)))
    table = _table((FIREFOX, Direction.UP, 2_000, MIN_BURST_BYTES))
    table.set((CURL, 1000), Direction.DOWN, Limit(5_000, MIN_BURST_BYTES))
    store.save(table)
    assert (
        json.loads(store.path.read_text())
        == {
            "version": 3,  # no priority and no link: a helper from before them still reads it (4 with them)
            "rules": [
                {
                    "app_id": FIREFOX,
                    "owner": "all",
                    "up": {"rate_bps": 2_000, "burst_bytes": MIN_BURST_BYTES},
                },
                {
                    "app_id": CURL,
                    "owner": 1000,
                    "down": {"rate_bps": 5_000, "burst_bytes": MIN_BURST_BYTES},
                },
            ],
        }
    )


def test_a_version_1_file_becomes_administrator_rules(tmp_path: Path) -> None:
    """Rules without an owner applied to everyone: they stay the administrator's."""
    store = RuleStore(tmp_path)
    store.path.write_bytes(json.dumps({"version": 1, "paused": True, "applications": {
        CURL: {"up": _good_limit(5_000)}, FIREFOX: {"down": _good_limit(7_000)}}}).encode())  # fmt: skip
    store.path.chmod(0o600)
    loaded = store.load()
    assert loaded.paused
    assert sorted(loaded.items()) == [
        ((FIREFOX, ADMIN_OWNER), {Direction.DOWN: Limit(7_000, MIN_BURST_BYTES)}),
        ((CURL, ADMIN_OWNER), {Direction.UP: Limit(5_000, MIN_BURST_BYTES)}),
    ]


def test_the_paused_flag_is_stored_only_when_set(tmp_path: Path) -> None:
    store = RuleStore(tmp_path)
    table = _table((FIREFOX, Direction.UP, 2_000, MIN_BURST_BYTES))
    table.set_paused(True)
    store.save(table)
    assert json.loads(store.path.read_text())["paused"] is True
    loaded = store.load()
    assert loaded.paused and loaded.items() == table.items()
    table.set_paused(False)
    store.save(table)
    assert "paused" not in json.loads(store.path.read_text())  # as an unpaused file always was
    assert not store.load().paused


def test_an_empty_table_is_stored_too(tmp_path: Path) -> None:
    store = RuleStore(tmp_path)
    store.save(_table((FIREFOX, Direction.UP, 2_000, MIN_BURST_BYTES)))
    store.save(LimitTable())
    assert store.load().items() == []


def test_a_save_that_cannot_write_raises_and_keeps_the_old_file(tmp_path: Path) -> None:
    store = RuleStore(tmp_path)
    old = _table((FIREFOX, Direction.UP, 2_000, MIN_BURST_BYTES))
    store.save(old)
    os.mkdir(tmp_path / f".{RULES_FILE}.{os.getpid()}.tmp")  # the temporary cannot be created
    with pytest.raises(StateFileError, match="could not store"):
        store.save(_table((CURL, Direction.UP, 9_000, MIN_BURST_BYTES)))
    assert store.load().items() == old.items()


_CORRUPT: list[tuple[str, bytes]] = [
    ("not json", b'{"version": 1, "applications": {'),
    ("not utf-8", b"\xff\xfe"),
    ("a list", b"[]"),
    ("future version", _document({}, version=FORMAT_VERSION + 1)),
    ("version as text", _document({}, version="1")),
    ("extra key", json.dumps({"version": 1, "applications": {}, "x": 1}).encode()),
    ("extra key v2", json.dumps({"version": 2, "rules": [], "x": 1}).encode()),
    ("v2 without rules", json.dumps({"version": 2, "applications": {}}).encode()),
    ("rules an object", json.dumps({"version": 2, "rules": {}}).encode()),
    ("applications a list", _document([])),
    ("deep nesting", b"[" * 100_000 + b"]" * 100_000),
    ("paused a number", json.dumps({"version": 1, "applications": {}, "paused": 1}).encode()),
    ("paused a string", json.dumps({"version": 2, "rules": [], "paused": "yes"}).encode()),
]

# One bad rule beside a good one: the bad one alone is left out (a user who
# could store one bad id must not cost everyone their limits at the next start).
_BAD_RULES: list[tuple[str, bytes]] = [
    ("pid id", _document({"pid:42": {"up": _good_limit()}})),
    ("unknown kind", _document({"cgroup:/x": {"up": _good_limit()}})),
    ("control char", _document({"exe:/usr/bin/a\nb": {"up": _good_limit()}})),
    ("empty id", _document({"": {"up": _good_limit()}})),
    ("no limits", _document({CURL: {}})),
    ("unknown direction", _document({CURL: {"both": _good_limit()}})),
    ("rate too low", _document({CURL: {"up": _good_limit(MIN_RATE_BPS - 1)}})),
    ("rate too high", _document({CURL: {"up": _good_limit(MAX_RATE_BPS + 1)}})),
    (
        "rate a float",
        _document({CURL: {"up": {"rate_bps": 5000.0, "burst_bytes": MIN_BURST_BYTES}}}),
    ),
    ("rate a bool", _document({CURL: {"up": {"rate_bps": True, "burst_bytes": MIN_BURST_BYTES}}})),
    (
        "burst too small",
        _document({CURL: {"up": {"rate_bps": 5000, "burst_bytes": MIN_BURST_BYTES - 1}}}),
    ),
    (
        "burst too big",
        _document({CURL: {"up": {"rate_bps": 5000, "burst_bytes": MAX_BURST_BYTES + 1}}}),
    ),
    ("missing burst", _document({CURL: {"up": {"rate_bps": 5000}}})),
    ("extra field", _document({CURL: {"up": {**_good_limit(), "ceil": 1}}})),
    ("v2 rule not an object", _rules("x")),
    ("v2 rule without owner", _rules({"app_id": CURL, "up": _good_limit()})),
    ("v2 owner negative", _rules(_rule(owner=-1))),
    ("v2 owner text", _rules(_rule(owner="root"))),
    ("v2 owner a bool", _rules(_rule(owner=True))),
    ("v2 owner too big", _rules(_rule(owner=2**32))),
    ("v2 control char id", _rules(_rule(app_id="exe:/a\x1b[31m"))),
    ("v2 long id", _rules(_rule(app_id="exe:/" + "a" * 600))),
    ("v2 duplicate rule", _rules(_rule(app_id=FIREFOX, owner=7), _rule(app_id=FIREFOX, owner=7))),
]
GOOD_NEIGHBOUR = "exe:/usr/bin/good-neighbour"


def _with_good_neighbour(content: bytes) -> bytes:
    document = json.loads(content)
    if document["version"] == 1:
        document["applications"][GOOD_NEIGHBOUR] = {"down": _good_limit(9_000)}
    else:
        document["rules"].append(_rule(app_id=GOOD_NEIGHBOUR, down=_good_limit(9_000)))
    return json.dumps(document).encode()


@pytest.mark.parametrize("content", [c for _, c in _BAD_RULES], ids=[n for n, _ in _BAD_RULES])
def test_a_bad_rule_is_left_out_and_the_others_kept(
    content: bytes, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = RuleStore(tmp_path)
    store.path.write_bytes(_with_good_neighbour(content))
    store.path.chmod(0o600)
    with caplog.at_level(logging.ERROR, logger="chadthrottle.engine.rule_store"):
        loaded = store.load()
    assert loaded.get((GOOD_NEIGHBOUR, ADMIN_OWNER)) == {
        Direction.DOWN: Limit(9_000, MIN_BURST_BYTES)
    }
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "left out one rule" in errors[0].getMessage()
    assert store.path.exists() and not list(tmp_path.glob(f"{RULES_FILE}.corrupt-*"))


def test_rules_beyond_a_users_bound_are_left_out(tmp_path: Path) -> None:
    store = RuleStore(tmp_path)
    many = [_rule(app_id=f"exe:/opt/app{n}", owner=1000) for n in range(MAX_RULES_PER_USER + 3)]
    store.path.write_bytes(_rules(*many, _rule(app_id=CURL, owner=1001)))
    store.path.chmod(0o600)
    loaded = store.load()
    assert loaded.count_of_owner(1000) == MAX_RULES_PER_USER
    assert (CURL, 1001) in loaded


def test_a_state_directory_owned_by_another_user_is_not_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give the directory away")
    store = RuleStore(tmp_path / "state")
    store.save(_table((CURL, Direction.UP, 5_000, MIN_BURST_BYTES)))
    os.chown(store.state_dir, 65534, 65534)
    with caplog.at_level(logging.ERROR):
        assert store.load().items() == []
    assert "owned by uid 65534" in caplog.text
    with pytest.raises(StateFileError, match="owned by uid 65534"):
        store.save(_table((CURL, Direction.UP, 6_000, MIN_BURST_BYTES)))
    assert store.path.exists()  # nothing in it was moved or replaced


@pytest.mark.parametrize("content", [c for _, c in _CORRUPT], ids=[n for n, _ in _CORRUPT])
def test_a_corrupt_file_is_set_aside_with_one_error(
    content: bytes, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = RuleStore(tmp_path)
    store.path.write_bytes(content)
    store.path.chmod(0o600)
    with caplog.at_level(logging.ERROR, logger="chadthrottle.engine.rule_store"):
        assert store.load().items() == []
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "kept it as" in errors[0].getMessage()
    assert not store.path.exists()
    (aside,) = tmp_path.glob(f"{RULES_FILE}.corrupt-*")
    assert aside.read_bytes() == content  # kept for a person to look at
    # and the next change writes a fresh file
    store.save(_table((CURL, Direction.UP, 5_000, MIN_BURST_BYTES)))
    assert store.load().items() == _table((CURL, Direction.UP, 5_000, MIN_BURST_BYTES)).items()


def test_a_file_others_can_write_is_not_trusted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = RuleStore(tmp_path)
    store.save(_table((CURL, Direction.UP, 5_000, MIN_BURST_BYTES)))
    store.path.chmod(0o666)
    with caplog.at_level(logging.ERROR):
        assert store.load().items() == []
    assert "not trusted" in caplog.text


def test_a_file_owned_by_someone_else_is_not_trusted(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give the file away")
    store = RuleStore(tmp_path)
    store.save(_table((CURL, Direction.UP, 5_000, MIN_BURST_BYTES)))
    os.chown(store.path, 65534, 65534)
    assert store.load().items() == []


def test_a_symlink_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    target.write_bytes(encode_rules(_table((CURL, Direction.UP, 5_000, MIN_BURST_BYTES))))
    store = RuleStore(tmp_path / "state")
    store.state_dir.mkdir(mode=0o700)
    store.path.symlink_to(target)
    assert store.load().items() == []
    assert target.exists()  # the link was set aside, not what it pointed to
    store.save(LimitTable())
    assert not store.path.is_symlink()


def test_an_application_that_no_longer_exists_is_kept(tmp_path: Path) -> None:
    """A rule waits for its application; the store knows nothing of processes."""
    store = RuleStore(tmp_path)
    store.path.write_bytes(_document({"exe:/opt/uninstalled/app": {"down": _good_limit()}}))
    store.path.chmod(0o600)
    assert [key for key, _ in store.load().items()] == [("exe:/opt/uninstalled/app", ADMIN_OWNER)]


_app_ids = st.builds(
    lambda kind, value: f"{kind}:{value}",
    st.sampled_from(["app", "flatpak", "snap", "script", "exe"]),
    st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40).filter(
        str.strip
    ),
)
_limits = st.builds(
    Limit, st.integers(MIN_RATE_BPS, MAX_RATE_BPS), st.integers(MIN_BURST_BYTES, MAX_BURST_BYTES)
)


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        _app_ids, st.dictionaries(st.sampled_from(list(Direction)), _limits, min_size=1), max_size=8
    )
)
def test_any_valid_table_round_trips(rules: dict[str, dict[Direction, Limit]]) -> None:
    table = LimitTable()
    for app_id, limits in rules.items():
        for direction, limit in limits.items():
            table.set((app_id, ADMIN_OWNER), direction, limit)
    assert sorted(decode_rules(encode_rules(table)).items()) == sorted(table.items())


class SlowStore(RuleStore):
    """Counts writes, each taking a while, like an fsync on a busy disk."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir)
        self.writes = 0

    def save(self, table: LimitTable) -> None:
        time.sleep(0.05)
        self.writes += 1
        super().save(table)


def test_the_background_saver_folds_a_burst_into_few_writes(tmp_path: Path) -> None:
    store = SlowStore(tmp_path)
    saver = BackgroundSaver(store)
    try:
        for rate_bps in range(10_000, 10_100):
            saver.save(_table((CURL, Direction.UP, rate_bps, MIN_BURST_BYTES)))
        assert saver.flush()
        assert store.load().get((CURL, ADMIN_OWNER)) == {
            Direction.UP: Limit(10_099, MIN_BURST_BYTES)
        }  # the last one
        assert 1 <= store.writes <= 3
    finally:
        saver.close()


def test_closing_the_saver_writes_what_is_pending(tmp_path: Path) -> None:
    store = SlowStore(tmp_path)
    saver = BackgroundSaver(store)
    saver.save(_table((CURL, Direction.UP, 5_000, MIN_BURST_BYTES)))
    saver.save(_table((FIREFOX, Direction.DOWN, 7_000, MIN_BURST_BYTES)))
    saver.close()
    assert [key for key, _ in RuleStore(tmp_path).load().items()] == [(FIREFOX, ADMIN_OWNER)]


def test_a_failed_background_write_is_logged_and_the_next_one_retries(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = RuleStore(tmp_path)
    saver = BackgroundSaver(store)
    try:
        blocker = tmp_path / f".{RULES_FILE}.{os.getpid()}.tmp"
        blocker.mkdir()
        with caplog.at_level(logging.ERROR):
            saver.save(_table((CURL, Direction.UP, 5_000, MIN_BURST_BYTES)))
            assert saver.flush()
        assert "will not survive a restart" in caplog.text
        blocker.rmdir()
        saver.save(_table((CURL, Direction.UP, 6_000, MIN_BURST_BYTES)))
        assert saver.flush()
        assert store.load().get((CURL, ADMIN_OWNER)) == {
            Direction.UP: Limit(6_000, MIN_BURST_BYTES)
        }
    finally:
        saver.close()


def test_priorities_and_the_link_load_and_an_older_file_with_them_is_refused() -> None:
    from chadthrottle.helper.engine.limits import LinkSetting
    from chadthrottle.helper.engine.rule_codec import CorruptStateFile
    from chadthrottle.priority import Priority

    priority_only = {"rate_bps": 0, "burst_bytes": 0, "priority": "critical"}
    document = {"version": FORMAT_VERSION, "rules": [_rule(down=priority_only, up=dict(_good_limit(), priority="critical"))],
                "link": {"down_bps": 6_000_000, "up_bps": 0, "estimate": True}}  # fmt: skip
    table = decode_rules(json.dumps(document).encode())
    assert table.link == LinkSetting(6_000_000, 0, True)
    limits = table.get((CURL, ADMIN_OWNER))
    assert (limits[Direction.DOWN].priority, limits[Direction.UP].rate_bps) == (
        Priority.CRITICAL,
        125_000,
    )
    assert json.loads(encode_rules(table)) == document
    skipped: list[str] = []
    bad = dict(document, rules=[_rule(down={"rate_bps": 0, "burst_bytes": 0, "priority": "urgent"})],
               link={"down_bps": 5, "up_bps": 0, "estimate": False})  # fmt: skip
    table = decode_rules(json.dumps(bad).encode(), skipped)
    assert len(table) == 0 and "priority 'urgent'" in skipped[0] and table.link == LinkSetting()
    with pytest.raises(CorruptStateFile, match="version-3 file with priorities"):
        decode_rules(json.dumps(dict(document, version=3)).encode())
    assert len(decode_rules(json.dumps({"version": 3, "rules": [_rule()]}).encode())) == 1
    linked = LimitTable()
    linked.link = LinkSetting(0, 0, True)  # a link alone is written as version 4 too
    assert json.loads(encode_rules(linked)) == {
        "version": 4,
        "rules": [],
        "link": {"down_bps": 0, "up_bps": 0, "estimate": True},
    }
