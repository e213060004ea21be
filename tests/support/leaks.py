"""What tests could leave on the machine, captured before and after a session.

The suite fails when anything differs: a namespace, a device, a qdisc, a BPF
program on the cgroup root, a test cgroup, an installed policy or polkit rule,
a daemon, or a traffic program still running.

Only this session's: other sessions on the machine (engineers, benchmarks) make
and remove their own namespaces, cgroups, daemons and helpers meanwhile, and
each of them failed a concurrent session that had left nothing. Ours are told
apart by name (tests/support/own_names.py: the session's tag), by the
namespaces tests/support/netns.py made, and by the session's environment
variable in a process's environment (its daemons and helpers inherit it).
Root-namespace devices and qdiscs are the machine's, compared whole, less
the IFBs and qdiscs a live shaper of another session recorded in its journal
(a flood test's helper shapes the root namespace's uplink: its IFB and clsact
failed every other session that ended, or began, while it ran); the polkit
actions file too, unless another session's private bus holds it. A helper's
held-caps record in /run/chadthrottle counts when nobody's (no live helper
of its instance, its maps gone: tests/support/held_records.py), and so do its
walks record (no process it lists running) and a tc journal of a dead owner
whose namespaces are all gone (tests/support/left_records.py).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from tests.support import own_names
from tests.support.waiting import eventually


def _run(*argv: str) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def _of_this_session(pid: int) -> bool:
    """The process is this session (pytest) or started by it."""
    if pid == os.getpid():
        return True
    marker = f"{own_names.SESSION_ENV}={own_names.SESSION_TAG}".encode()
    try:
        return marker in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def _other_sessions_programs() -> set[int]:
    """Program ids of live datapaths (ownership.py's records) in processes
    of another session."""
    from chadthrottle.helper.kernel.ownership import RECORD_GLOB, RUN_DIR

    theirs: set[int] = set()
    for record in RUN_DIR.glob(RECORD_GLOB):
        pid = record.name.split("-")[1]
        try:
            ids = record.read_text().split()
        except OSError:
            continue
        if pid.isdigit() and Path(f"/proc/{pid}").exists() and not _of_this_session(int(pid)):
            theirs.update(int(word) for word in ids if word.isdigit())
    return theirs


@dataclass
class _TheirTc:
    """What live shapers of other sessions made in this namespace (tc_ownership's journal)."""

    ifbs: set[str] = field(default_factory=set)  # their devices, and every qdisc on them
    hooked: set[str] = field(default_factory=set)  # uplinks whose clsact they added
    roots: set[str] = field(default_factory=set)  # uplinks with an HTB root of theirs (c7ad:)
    filtered: set[str] = field(default_factory=set)  # uplinks with their filters on a hook

    def take(self, entry: dict[str, Any]) -> None:
        kind = str(entry.get("key", "")).split(":")[0]
        if kind in ("ifb", "upifb"):
            self.ifbs.add(str(entry.get("ifb_name")))
        elif kind in ("hook", "uphook"):
            self.filtered.add(str(entry.get("uplink_name")))
            if entry.get("created_qdisc"):
                self.hooked.add(str(entry.get("uplink_name")))
        elif kind == "root":
            self.roots.add(str(entry.get("ifname")))

    def holds_filter(self, device: str, block: str) -> bool:
        """A filter of a hook's listing (_hook_filters): theirs where they hook
        that device and it sits at one of ChadThrottle's priorities."""
        from chadthrottle.helper.kernel.catch_all import CATCH_ALL_PRIORITY
        from chadthrottle.helper.kernel.tc_ownership import FILTER_PRIORITY

        ours = (f" pref {FILTER_PRIORITY} ", f" pref {CATCH_ALL_PRIORITY} ")
        return device in self.filtered and any(pref in f"{block} " for pref in ours)

    def holds_qdisc(self, line: str) -> bool:
        """A `tc qdisc show` line: qdisc KIND HANDLE dev NAME [parent P] ..."""
        words = line.split()
        if len(words) < 5 or words[3] != "dev":
            return False
        kind, handle, device = words[1], words[2], words[4]
        parent = words[6] if len(words) > 6 and words[5] == "parent" else ""
        return (
            device in self.ifbs
            or (device in self.hooked and kind in ("clsact", "ingress"))
            or (device in self.roots and (handle == "c7ad:" or parent.startswith("c7ad:")))
        )


def _their_tc(theirs: _TheirTc) -> None:
    """Add what the live tc journals of other sessions' processes record in
    this network namespace (their owner's pid is in the journal's name)."""
    import json
    import socket

    from chadthrottle.helper.kernel.namespaces import netns_cookie_of
    from chadthrottle.helper.kernel.ownership import JOURNAL_SUFFIX, RUN_DIR
    from chadthrottle.helper.kernel.tc_ownership import JOURNAL_KIND

    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW) as probe:
        here = netns_cookie_of(probe)
    for journal in RUN_DIR.glob(f"{JOURNAL_KIND}-*{JOURNAL_SUFFIX}"):
        pid = journal.name.split("-")[1]
        if not pid.isdigit() or not Path(f"/proc/{pid}").exists() or _of_this_session(int(pid)):
            continue  # a dead owner's objects are anybody's leftovers: compared
        try:
            lines = journal.read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # torn
            if isinstance(entry, dict) and entry.get("netns") == here and not entry.get("gone"):
                theirs.take(entry)


def _hook_filters(qdiscs: str) -> list[str]:
    """Every filter on the ingress and egress hooks of this namespace's devices
    that have a clsact or ingress qdisc (qdiscs: `tc qdisc show`), one line per
    filter ("DEVICE HOOK: filter ... | action ..."). A filter left on a clsact
    that was there before (someone's, or another live session's) changes no
    qdisc: the qdisc listing alone missed it."""
    found = []
    for line in qdiscs.splitlines():
        words = line.split()
        if len(words) < 5 or words[1] not in ("clsact", "ingress") or words[3] != "dev":
            continue
        device = words[4]
        for hook in ("ingress", "egress") if words[1] == "clsact" else ("ingress",):
            blocks: list[list[str]] = []
            for shown in _run("tc", "filter", "show", "dev", device, hook).splitlines():
                if shown.startswith("filter ") or not blocks:
                    blocks.append([])
                blocks[-1].append(shown.strip())
            for block in blocks:
                text = " | ".join(part for part in block if part)
                if text:
                    found.append(f"{device} {hook}: {text}")
    return sorted(found)


def root_namespace() -> dict[str, list[str]]:
    """This network namespace's devices, qdiscs and hook filters, less those
    live shapers of other sessions record (their journals read before and
    after the listings: an object listed was in one of the two reads, as an
    entry is written before its object is made and kept until it is gone)."""
    theirs = _TheirTc()
    _their_tc(theirs)
    links = _run("ip", "-o", "link", "show")
    qdiscs = _run("tc", "qdisc", "show")
    filters = _hook_filters(qdiscs)
    _their_tc(theirs)
    return {
        "devices": sorted(
            name
            for line in links.splitlines()
            if ": " in line and (name := line.split(": ")[1].split("@")[0]) not in theirs.ifbs
        ),
        "qdiscs": sorted(line for line in qdiscs.splitlines() if not theirs.holds_qdisc(line)),
        "hook filters": [
            line
            for line in filters
            if not theirs.holds_filter(line.split()[0], line.split(": ", 1)[1])
        ],
    }


def _our_cgroup_programs() -> list[str]:
    try:
        from chadthrottle.helper.kernel.cgroups import cgroup2_mount
        from chadthrottle.helper.kernel.datapath import our_programs
    except ImportError:
        return []
    theirs = _other_sessions_programs()
    return sorted(
        f"{attach_type.name}:{name}:{prog_id}"
        for attach_type, prog_id, name in our_programs(cgroup2_mount())
        if prog_id not in theirs
    )


def _test_cgroups() -> list[str]:
    try:
        from chadthrottle.helper.kernel.cgroups import cgroup2_mount

        return sorted(p.name for p in cgroup2_mount().glob(f"{own_names.TEST_NAME_PREFIX}*"))
    except Exception:
        return []


def _namespaces() -> list[str]:
    """Namespaces this session made that still exist, and any not named as
    tests name theirs (ct...)."""
    from tests.support.netns import MADE_NAMESPACES

    listed = [line.split()[0] for line in _run("ip", "netns", "list").splitlines() if line.strip()]
    return sorted(name for name in listed if name in MADE_NAMESPACES or not name.startswith("ct"))


def _polkit_rules() -> list[str]:
    """Rules files of ours, less other test sessions' grants."""
    others = "10-chadthrottle-test-"
    return sorted(
        p.name
        for p in Path("/etc/polkit-1/rules.d").glob("*chadthrottle*")
        if not p.name.startswith(others) or p.name.startswith(f"10-{own_names.TEST_NAME_PREFIX}")
    )


def _polkit_actions() -> list[str]:
    """Our actions files, less those a private bus of another session holds
    (helper/standalone_policy.py: it installs the file for as long as any
    bus on the machine needs it, so the last one out, maybe this session,
    removes it)."""
    from chadthrottle.helper.standalone_policy import DEFAULT_STATE_DIR, holder_pids

    return sorted(
        p.name
        for p in Path("/usr/share/polkit-1/actions").glob("io.github.chadthrottle*")
        if not any(not _of_this_session(pid) for pid in holder_pids(DEFAULT_STATE_DIR / p.name))
    )


def settle_abandoned_policy() -> bool:
    """Before the first snapshot: put back the actions file as it was before a
    private bus killed outright (a test session or run-app SIGKILLed) had
    installed it. This session's first bus would do so anyway, and the check
    then read the machine's own state as removed by us (CI, 2026-12-06)."""
    from chadthrottle.helper.standalone import polkit_policy_install

    return os.geteuid() == 0 and polkit_policy_install().recover_abandoned()


def _daemons() -> list[str]:
    names = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            comm = (
                (proc / "comm").read_bytes().decode("utf-8", "replace").strip()
            )  # any bytes at all
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        is_daemon = comm in ("dbus-daemon", "polkitd") or b"chadthrottle.helper.main" in cmdline
        if is_daemon and _of_this_session(int(proc.name)):
            names.append(comm)
    return sorted(names)


def _traffic_processes() -> list[str]:
    """This session's traffic programs (its copy of tests/support/traffic.py,
    bench/call_probe.py) still running. A sink left in a namespace keeps that
    namespace alive past `ip netns del`, where the namespace check no longer
    sees it: a failed start_stream left one so (2026-12-06)."""
    import sys

    netns = sys.modules.get("tests.support.netns")  # not imported: none started
    marks = [b"bench.call_probe"] + ([str(netns.TRAFFIC_SCRIPT).encode()] if netns else [])
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if any(mark in cmdline for mark in marks) and _of_this_session(int(proc.name)):
            found.append(cmdline.replace(b"\0", b" ").decode("utf-8", "replace").strip()[-160:])
    return sorted(found)


def _run_records() -> list[str]:
    """The helpers' run records (common/helper_run_state.py): a helper on a
    private bus removes its bus's record at close, so one that came is a
    helper or bus left behind. Machine-wide: another lane's live helpers have
    theirs; those of another session's live helper (its pid in the record)
    are not counted (two came while another engineer's tests ran, clsact34)."""
    import json

    from chadthrottle.helper_run_state import STATUS_DIR

    found = []
    for path in STATUS_DIR.glob("helper-*.json"):
        try:
            pid = json.loads(path.read_text()).get("pid")
        except (OSError, ValueError, AttributeError):
            pid = None
        theirs = isinstance(pid, int) and Path(f"/proc/{pid}").exists()
        if not (theirs and not _of_this_session(pid)):
            found.append(path.name)
    return sorted(found)


HELD = "held caps records"
OWED = "owed walks records"
JOURNALS = "tc journals of gone namespaces"
# A record of another session's test, abandoned a moment ago: its own sweep
# after that test takes it (tests/support/held_records.py).
HELD_GRACE_S = 10.0


def _held_records() -> list[str]:
    """The helpers' held-caps records that are nobody's (held_records.abandoned:
    no live datapath of their instance, every map they name gone). A test's
    killed helper left its record so, one every CI run (held35); one a live
    helper writes, or a killed one's successor may still use, is not named."""
    try:
        from tests.support.held_records import abandoned_records

        return abandoned_records()
    except ImportError:  # no product modules: as _our_cgroup_programs
        return []


def _owed_records() -> list[str]:
    """The helpers' walks records (walks-INSTANCE.owed) that are nobody's: no
    live datapath of their instance, no process they list running
    (tests/support/left_records.py)."""
    try:
        from tests.support.held_records import abandoned_owed

        return abandoned_owed()
    except ImportError:
        return []


def _dead_journals() -> list[str]:
    """The tc journals nobody can use: their owner dead, every namespace they
    name gone (a killed test helper's, for its test's namespaces: held35)."""
    try:
        from tests.support.left_records import abandoned_journals

        return abandoned_journals()
    except ImportError:
        return []


# The records in /run/chadthrottle a killed helper leaves: named when they came
# and are nobody's, after HELD_GRACE_S (settled).
_RECORDS = {HELD: _held_records, OWED: _owed_records, JOURNALS: _dead_journals}


def _records() -> dict[str, list[str]]:
    return {key: listed() for key, listed in _RECORDS.items()}


def settled(before: dict[str, object], after: dict[str, object]) -> dict[str, object]:
    """after, with the records (_RECORDS) that came looked at again until they
    are gone, for HELD_GRACE_S at most: a session beside this one takes its
    own test's a moment after that test's namespaces went."""
    keys = [key for key in _RECORDS if key in before and key in after]
    was = {key: set(cast(list[str], before[key])) for key in keys}

    def came() -> dict[str, list[str]]:
        now = {key: _RECORDS[key]() for key in keys}
        return {key: sorted(set(now[key]) - was[key]) for key in keys}

    if any(set(cast(list[str], after[key])) - was[key] for key in keys):
        eventually(lambda: not any(came().values()), HELD_GRACE_S, 0.2)
        return after | {key: sorted(was[key] | set(left)) for key, left in came().items()}
    return after


def snapshot(*, machine_wide: bool = True) -> dict[str, object]:
    """machine_wide: also root-namespace devices and qdiscs. They are the
    machine's, compared whole, so only a session alone on the machine judges
    them: a lane of a run split in two (scripts/run-tests) would count the
    other lane's as its own; the run's controller compares them at its end."""
    found: dict[str, object] = {}
    if machine_wide:
        found.update(root_namespace())
        found["helper run records"] = _run_records()
        found.update(_records())
    return found | {
        "network namespaces": _namespaces(),
        "BPF programs on the cgroup root": _our_cgroup_programs(),
        "test cgroups": _test_cgroups(),
        "polkit actions": _polkit_actions(),
        "polkit rules": _polkit_rules(),
        "daemons": _daemons(),
        "traffic processes": _traffic_processes(),
    }


# Judged by what came, not what went: a killed helper's programs, another
# session's (its record gone with it), are in no live session's record and so
# read as this session's at its start; this session's first helper then
# detaches them, as it must, and the whole comparison failed the session for
# that (seen 2026-12-06 beside benches and other engineers' runs).
ONLY_WHAT_CAME = {"BPF programs on the cgroup root", "helper run records", *_RECORDS}


def differences(before: dict[str, object], after: dict[str, object]) -> list[str]:
    found = []
    for key in before:
        if key in ONLY_WHAT_CAME:
            came = sorted(set(after[key]) - set(before[key]))  # type: ignore[call-overload]
            if came:
                found.append(f"{key}: left {came!r}")
        elif before[key] != after[key]:
            found.append(f"{key}: before {before[key]!r}, after {after[key]!r}")
    return found


def main(argv: list[str] | None = None) -> int:
    """scripts/run-tests' check around the whole run, in the machine's own
    namespace: `save FILE` before it, `compare FILE` after. Exit status 1 when
    a device, qdisc or hook filter came that no live shaper of another session
    records, or a record of _RECORDS that is nobody's (what went is said,
    not failed: another session's may go)."""
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m tests.support.leaks")
    parser.add_argument("action", choices=("save", "compare"))
    parser.add_argument("file", type=Path)
    arguments = parser.parse_args(argv)
    now: dict[str, Any] = root_namespace() | _records()
    if arguments.action == "save":
        arguments.file.write_text(json.dumps(now, indent=1) + "\n")
        return 0
    before = json.loads(arguments.file.read_text())
    now = settled(before, now)
    came = {key: sorted(set(now[key]) - set(before.get(key, []))) for key in now}
    went = {key: sorted(set(before.get(key, [])) - set(now[key])) for key in now}
    for key, lines in went.items():
        for line in lines:
            print(f"gone since the run began ({key}): {line}")
    for key, lines in came.items():
        for line in lines:
            print(f"LEFT BEHIND ({key}): {line}")
    return 1 if any(came.values()) else 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
