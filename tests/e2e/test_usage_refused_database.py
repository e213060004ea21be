"""A usage database the helper cannot use costs the history, never the limits:
the real helper started on a corrupt, a newer-schema and a world-writable
usage.sqlite3 logs one clear error, sets the file aside, restores its rules,
serves GetUsage from a new database, and writes it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from chadthrottle.helper.standalone import PrivateSystemBus
from chadthrottle.helper.usage.store import APPLICATION_ID, DATABASE_FILE, SCHEMA_VERSION
from chadthrottle.usage_contract import UsageResolution

from tests.support.helper_calls import call_helper
from tests.support.helper_process import HelperProcess
from tests.support.netns import NetnsPair

RULE = {"app_id": "exe:/opt/chadthrottle-test/usage-refused", "owner": "all",
        "up": {"rate_bps": 500_000, "burst_bytes": 131_072}}  # fmt: skip


def _corrupt(path: Path) -> None:
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)


def _newer(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.execute("CREATE TABLE usage_v2 (x)")
    db.commit()
    db.close()


def _world_writable(path: Path) -> None:
    sqlite3.connect(path).close()
    path.chmod(0o666)


@pytest.mark.parametrize(("make", "reason"), [(_corrupt, "not a database"), (_newer, "newer than this helper's"),
                                              (_world_writable, "not trusted")])  # fmt: skip
def test_the_helper_sets_a_bad_database_aside_and_keeps_its_rules(
    private_bus: PrivateSystemBus,
    pair: NetnsPair,
    tmp_path: Path,
    make,
    reason: str,  # type: ignore[no-untyped-def]
) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "rules.json").write_text(json.dumps({"version": 2, "rules": [RULE]}))
    (state / "rules.json").chmod(0o600)
    make(state / DATABASE_FILE)
    if make is not _world_writable:
        (state / DATABASE_FILE).chmod(0o600)
    with HelperProcess(private_bus.address, netns=pair.host_ns, state_dir=state) as helper:
        rules = call_helper(private_bus.address, lambda client: client.list_rules())
        assert [(rule.app_id, rule.rate_bps) for rule in rules] == [(RULE["app_id"], 500_000)]
        # Served from the new database (whatever the machine moved since the helper started).
        rows = call_helper(
            private_bus.address, lambda client: client.get_usage("", 0, 0, UsageResolution.DAY)
        )
        assert isinstance(rows, list)
        log_text = helper.log_text()
    errors = [
        line for line in log_text.splitlines() if "usage database" in line and " ERROR " in line
    ]
    assert len(errors) == 1 and reason in errors[0] and "started a new one" in errors[0], log_text
    assert "Traceback" not in log_text
    aside = sorted(path.name for path in state.iterdir() if ".refused-" in path.name)
    assert aside and aside[0].startswith(DATABASE_FILE + ".refused-"), aside
    with sqlite3.connect(
        f"file:{state / DATABASE_FILE}?mode=ro", uri=True
    ) as db:  # the new one, stopped cleanly
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert ((state / DATABASE_FILE).stat().st_mode & 0o777) == 0o600
