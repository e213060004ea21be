"""When identity rules change, stored rules and usage history follow the
application to its new id where that is certain, and nowhere else."""

from __future__ import annotations

import os
from pathlib import Path

from chadthrottle.contract import ADMIN_OWNER, Direction
from chadthrottle.helper.engine.limits import Limit, LimitTable
from chadthrottle.helper.engine.rule_codec import rename_rules
from chadthrottle.helper.engine.rule_store import RuleStore
from chadthrottle.helper.identity.desktop_catalog import DesktopCatalog
from chadthrottle.helper.identity.renames import certain_rename
from chadthrottle.helper.usage.buckets import Level, bucket_start
from chadthrottle.helper.usage.store import UsageEntry, UsageStore

FIREFOX_1234 = "exe:/snap/firefox/1234/usr/lib/firefox/firefox"
FIREFOX_1240 = "exe:/snap/firefox/1240/usr/lib/firefox/firefox"
NOW = 1_795_000_000


def _catalog(
    tmp_path: Path, uid_files: dict[int, str] | None = None
) -> tuple[DesktopCatalog, Path]:
    """A system entry "org.example.Mail" running <tmp>/mailer; per uid, a
    user entry "mine" running <tmp>/tool."""
    mailer, tool = tmp_path / "mailer", tmp_path / "tool"
    for program in (mailer, tool):
        program.write_bytes(b"\x7fELF" + b"\0" * 60)
        program.chmod(0o755)
    (tmp_path / "apps").mkdir()
    (tmp_path / "apps" / "org.example.Mail.desktop").write_text(
        f"[Desktop Entry]\nName=Mail\nExec={mailer} %U\n"
    )
    homes: dict[int, str] = {}
    for uid in uid_files or {}:
        applications = tmp_path / f"home{uid}" / ".local/share/applications"
        applications.mkdir(parents=True)
        (applications / "mine.desktop").write_text(f"[Desktop Entry]\nName=Mine\nExec={tool}\n")
        for path in [applications / "mine.desktop", applications, *list(applications.parents)[:3]]:
            os.chown(path, uid, uid)
        homes[uid] = str(tmp_path / f"home{uid}")
    return DesktopCatalog(system_dirs=lambda: [tmp_path / "apps"], home_of=homes.get), tmp_path


def test_certain_renames(tmp_path: Path) -> None:
    catalog, root = _catalog(tmp_path, {1000: "mine"})
    assert certain_rename(FIREFOX_1234, ADMIN_OWNER, catalog) == "snap:firefox"
    assert certain_rename("script:/snap/tool/x3/bin/run.py", 1000, catalog) == "snap:tool"
    assert certain_rename(f"exe:{root}/mailer", ADMIN_OWNER, catalog) == "app:org.example.Mail"
    assert certain_rename(f"exe:{root}/tool", 1000, catalog) == "app:mine"  # that user's own file
    assert certain_rename(f"exe:{root}/tool", ADMIN_OWNER, catalog) is None  # not the system's
    assert certain_rename(f"exe:{root}/tool", 1001, catalog) is None


def test_what_is_never_renamed(tmp_path: Path) -> None:
    catalog, _root = _catalog(tmp_path)
    for app_id in ("app:org.mozilla.firefox", "snap:firefox", "unit:nginx.service", "exe:/usr/bin/curl",
                   "exe:/tmp/.mount_AbCd12/app",  # an AppImage's old id: which image, nothing says
                   "exe:/snap/fire\\x1bfox/12/x", "exe:relative/snap/firefox/1/x", "pid:12"):  # fmt: skip
        assert certain_rename(app_id, 1000, catalog) is None, app_id


def _rule(table: LimitTable, app_id: str, owner: int, rate: int) -> None:
    table.set((app_id, owner), Direction.DOWN, Limit(rate, 200_000))


def test_rules_move_to_the_new_id_and_an_existing_rule_there_wins(tmp_path: Path) -> None:
    catalog, _root = _catalog(tmp_path)
    table = LimitTable()
    _rule(table, FIREFOX_1234, ADMIN_OWNER, 1_000_000)
    _rule(table, FIREFOX_1234, 1000, 2_000_000)
    _rule(
        table, FIREFOX_1240, 1000, 3_000_000
    )  # the same user, after a refresh: one of the two survives
    _rule(table, "snap:firefox", 1001, 4_000_000)
    _rule(
        table, FIREFOX_1234, 1001, 5_000_000
    )  # uid 1001 has a rule on the new id already: that one stays
    _rule(table, "exe:/usr/bin/curl", 1000, 6_000_000)
    done = rename_rules(table, lambda app_id, owner: certain_rename(app_id, owner, catalog))
    rates = {key: limits[Direction.DOWN].rate_bps for key, limits in table.items()}
    assert rates == {
        ("snap:firefox", ADMIN_OWNER): 1_000_000,
        ("snap:firefox", 1000): 2_000_000,
        ("snap:firefox", 1001): 4_000_000,
        ("exe:/usr/bin/curl", 1000): 6_000_000,
    }
    assert len(done) == 4 and sum("dropped" in line for line in done) == 2


def test_a_rename_to_an_id_the_adapter_refuses_is_not_taken() -> None:
    table = LimitTable()
    _rule(table, "exe:/usr/bin/curl", 1000, 1_000_000)
    done = rename_rules(table, lambda app_id, owner: "bogus:" + app_id)
    assert [key for key, _ in table.items()] == [("exe:/usr/bin/curl", 1000)] and "refused" in done[
        0
    ]


def test_renamed_rules_survive_a_store_round_trip(tmp_path: Path) -> None:
    store = RuleStore(tmp_path / "state")
    table = LimitTable()
    _rule(table, FIREFOX_1234, 1000, 1_000_000)
    store.save(table)
    loaded = store.load()
    rename_rules(loaded, lambda app_id, owner: certain_rename(app_id, owner, _catalog(tmp_path)[0]))
    store.save(loaded)
    assert [key for key, _ in store.load().items()] == [("snap:firefox", 1000)]


def test_usage_history_moves_in_one_transaction_and_keeps_every_byte(tmp_path: Path) -> None:
    store = UsageStore(tmp_path / "state")
    assert store.open()
    minute = bucket_start(Level.MINUTE, NOW)
    store.add([
        UsageEntry(minute, FIREFOX_1234, 1000, (100, 10, 1, 0)),
        UsageEntry(minute, FIREFOX_1240, 1000, (200, 20, 2, 0)),  # the same minute, after a refresh
        UsageEntry(minute + 60, FIREFOX_1240, 1000, (300, 30, 3, 0)),
        UsageEntry(minute, FIREFOX_1234, 1001, (7, 7, 7, 7)),  # another user: kept apart
        UsageEntry(minute, "exe:/usr/bin/curl", 1000, (5, 5, 5, 5)),
    ])  # fmt: skip
    before = {level: store.totals(level, 0, NOW * 2) for level in Level}
    old_rows = sum(
        len(store.query(level, 0, NOW * 2, app_id))
        for level in Level
        for app_id in (FIREFOX_1234, FIREFOX_1240)
    )
    catalog = _catalog(tmp_path)[0]
    moved = store.rename_app_ids(lambda app_id, uid: certain_rename(app_id, uid, catalog))
    assert moved >= old_rows  # every stored row of the old ids, of either uid, went over
    assert all(
        not store.query(level, 0, NOW * 2, app_id)
        for level in Level
        for app_id in (FIREFOX_1234, FIREFOX_1240)
    )
    for level in Level:
        totals = {row[0]: row[1:] for row in store.totals(level, 0, NOW * 2)}
        assert totals == {"snap:firefox": (607, 67, 13, 7), "exe:/usr/bin/curl": (5, 5, 5, 5)}
        assert sum(sum(row[1:]) for row in before[level]) == sum(
            sum(row[1:]) for row in store.totals(level, 0, NOW * 2)
        )
    by_uid = {row[0]: row[1:] for row in store.totals(Level.DAY, 0, NOW * 2, uid=1001)}
    assert by_uid == {"snap:firefox": (7, 7, 7, 7)}
    minutes = {
        row[1]: row[2] for row in store.query(Level.MINUTE, 0, NOW * 2, "snap:firefox", uid=1000)
    }
    assert minutes == {minute: 300, minute + 60: 300}  # the two rows of one minute summed into one
    assert store.rename_app_ids(lambda app_id, uid: None) == 0
    store.close()
