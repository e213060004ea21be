"""A SIGKILLed test helper's other records in /run/chadthrottle, beside its
held caps (tests/support/held_records.py), and when each is nobody's.

- walks-INSTANCE.owed (helper/kernel/pending_walks.py): the caps its walks
  still owed, for its instance's next start to lift on the processes listed.
  Of use while a listed process runs (the same start); nobody's once none
  does and no datapath of the instance is alive.
- tc-PID-TOKEN-TAG.journal (ownership.ObjectJournal): what its tc shaper
  made, per network namespace. The test's close removes what it made in the
  machine's namespace (tc_shaper.remove_unadopted); its entries for a test's
  namespace stay until any helper's next start drops them, once that
  namespace is gone (held35). Nobody's once its owner is dead and every
  namespace it names is gone: nothing is left to remove through it.

Both are named by the leak checks when they came and are nobody's, with the
held caps' grace (leaks.settled), and a test's close sweeps its killed
helper's (held_records.killed_closed). Read without locks: a journal's lock
taken here, even for a moment, would make a starting helper pass over a
dead predecessor's journal as alive.
"""

from __future__ import annotations

from pathlib import Path

OWED_GLOB = "walks-*.owed"


def journal_glob() -> str:
    from chadthrottle.helper.kernel.ownership import JOURNAL_SUFFIX
    from chadthrottle.helper.kernel.tc_ownership import JOURNAL_KIND

    return f"{JOURNAL_KIND}-*{JOURNAL_SUFFIX}"


def owed_abandoned(path: Path, live_instances: set[str]) -> bool:
    """A walks record nobody can use: no live datapath of its instance, and no
    process it lists still runs (one that does not parse lists none)."""
    from chadthrottle.helper.identity.processes import read_start
    from chadthrottle.helper.kernel.pending_walks import parse_owed

    if path.name.removeprefix("walks-").removesuffix(".owed") in live_instances:
        return False
    try:
        owed = parse_owed(path.read_text())
    except FileNotFoundError:
        return False  # gone already: not ours to name
    except (OSError, UnicodeDecodeError):
        owed = []
    return not any(read_start(tgid) == start for tgid, start, _caps, _made_by in owed)


def journal_abandoned(path: Path, living: set[int]) -> bool:
    """A tc journal nobody can use: its owner (the pid in its name) is dead,
    and no namespace it names is alive (living: tc_ownership's
    living_netns_inodes). A pid given out again reads alive: it stays (safe)."""
    from chadthrottle.helper.kernel.ownership import _all_moot  # the product's own test of it

    pid = path.name.split("-")[1] if path.name.count("-") >= 2 else ""
    if not pid.isdigit() or Path(f"/proc/{pid}").exists():
        return False
    return _all_moot(path, lambda entry: entry.get("netns_inode") not in living)


def abandoned_owed(live_instances: set[str]) -> list[str]:
    """The names of every walks record on the machine that is nobody's."""
    from chadthrottle.helper.kernel.ownership import RUN_DIR

    found = RUN_DIR.glob(OWED_GLOB)
    return sorted(path.name for path in found if owed_abandoned(path, live_instances))


def abandoned_journals() -> list[str]:
    """The names of every tc journal on the machine that is nobody's."""
    from chadthrottle.helper.kernel.ownership import RUN_DIR
    from chadthrottle.helper.kernel.tc_ownership import living_netns_inodes

    living = living_netns_inodes()
    found = RUN_DIR.glob(journal_glob())
    return sorted(path.name for path in found if journal_abandoned(path, living))


def instance_records(instance: str) -> tuple[Path | None, list[Path]]:
    """The instance's walks record (None: it has no instance) and its tc
    journals (their names carry a hash of the instance)."""
    from chadthrottle.helper.kernel.ownership import RUN_DIR, _journal_tag
    from chadthrottle.helper.kernel.pending_walks import record_of

    tag = _journal_tag(instance)
    journals = [path for path in RUN_DIR.glob(journal_glob()) if tag and path.stem.endswith(tag)]
    return record_of(instance), journals


def remove_abandoned(instance: str, live_instances: set[str]) -> bool:
    """The instance's walks record and tc journals removed where nobody's;
    whether none is left."""
    from chadthrottle.helper.kernel.tc_ownership import living_netns_inodes

    owed, journals = instance_records(instance)
    left = False
    if owed is not None and owed.exists():
        if owed_abandoned(owed, live_instances):
            owed.unlink(missing_ok=True)
        else:
            left = True
    living = living_netns_inodes() if journals else set()
    for journal in journals:
        if journal_abandoned(journal, living):
            journal.unlink(missing_ok=True)
        else:
            left = True
    return not left
