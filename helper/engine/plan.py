"""The plan step: which rules reach which running processes, and what the
kernel should hold for them (classes per direction, socket caps per slot,
tags per process and app scope).

Pure: functions of the rule table, the processes the index saw and the slots
given out, with no kernel, /proc or clock access. The apply step (apply.py)
calls them for the table in force and writes the difference (kernel_hold.py);
the window clamp ahead of a change calls them on the table it will leave.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

from chadthrottle.contract import ADMIN_OWNER, Direction
from chadthrottle.helper.engine.gating import Gating
from chadthrottle.helper.engine.limits import Limit, LimitTable, RuleKey, priority_of
from chadthrottle.helper.engine.rates import LOOPBACK_IFINDEX
from chadthrottle.helper.identity.applications import AppIdentity
from chadthrottle.helper.identity.index import ApplicationIndex
from chadthrottle.helper.kernel.htb import Classes, ClassSpec
from chadthrottle.helper.kernel.layout import NO_CAPS, CounterSample, SocketCaps
from chadthrottle.priority import Priority

# Each TCP socket of an application with an upload limit is paced to this
# share of the limit on the wire (docs/backends.md, "Pacing uploads"): the
# socket then holds the limit smoothly by itself, and the backend (HTB or the
# policer) only guards what pacing does not cover: UDP, several sockets of one
# application. Pacing above the limit made the backend the limiter: its queue
# or bucket filled over seconds and then came out as congestion notices or
# refusals, and the rate swung by 10% for seconds (bench/limits.py).
UPLOAD_PACING_SHARE = 0.995
# While a link is in force, every application that was active (moving at least
# activity.ACTIVE_BPS: a keepalive is not) within this long and has no rule
# gets a class of its own, keyed (app id, FAIR_OWNER):
# in one default class for all, an application with four connections took
# 1.4-1.8 times its fair share and one with a single connection 0.2-0.6
# (docs/backends.md, "Per-application shares"). Held this long after it was
# last active, so an application that
# pauses keeps its class and its sockets their tag (a class made or retired,
# its processes tagged or untagged, costs netlink calls and a walk of their
# sockets).
FAIR_IDLE_S = 30.0
FAIR_OWNER = -2  # no user's uid nor ADMIN_OWNER: a fair share is no rule

LiveRules = list[tuple[RuleKey, dict[Direction, Limit]]]
# A rule's reached processes (reached_pids of one table and index), as the
# apply step reads them once per apply (Apply.one_plan)
Reach = Callable[[RuleKey], list[int]]
# A cgroup path component naming a systemd user instance (user@UID.service).
_USER_INSTANCE = re.compile(r"user@[^/]*\.service")


def rule_of(table: LimitTable, identity: AppIdentity, uid: int | None) -> RuleKey | None:
    """The rule in force for a process of this identity run by uid (None:
    unknown, so only an administrator rule can apply): the administrator's
    rule on its application; else the administrator's rule on the file it
    runs ("exe:" or "script:" id), whatever names the process now (a
    service, a desktop app, a scope it named itself: renaming a process
    escapes an administrator's limit no more than copying its file does);
    else uid's own rule on its application."""
    if table.paused:
        return None
    if (identity.app_id, ADMIN_OWNER) in table:
        return identity.app_id, ADMIN_OWNER
    if (
        identity.file_id
        and identity.file_id != identity.app_id
        and (identity.file_id, ADMIN_OWNER) in table
    ):
        return identity.file_id, ADMIN_OWNER
    if uid is not None and (identity.app_id, uid) in table:
        return identity.app_id, uid
    return None


def reached_pids(index: ApplicationIndex, table: LimitTable, key: RuleKey) -> list[int]:
    """The running processes whose rule in force (rule_of) is this one: the
    application's (every user's for an administrator's rule, else the
    owner's), and for an administrator's rule on a file id, the processes
    that run that file under another identity."""
    app = index.application(key[0])
    candidates = dict(app.processes) if app is not None else {}
    if key[1] == ADMIN_OWNER:
        candidates.update(index.renamed_runners().get(key[0], {}))
    reached = []
    for pid, process in candidates.items():
        identity = index.identity_of(pid)
        if identity is not None and rule_of(table, identity, process.uid) == key:
            reached.append(pid)
    return reached


def live_rules(
    index: ApplicationIndex,
    table: LimitTable,
    tagged: Iterable[RuleKey],
    linked: bool,
    reach: Reach | None = None,
) -> LiveRules:
    """The enforced rules that reach a running process. Only these get
    classes, caps and slots: a stored rule for a program that is not
    running costs nothing (users may keep hundreds; dumping thousands of
    idle classes each second cost the helper a quarter of a core, and
    walking every stored rule each tick would still grow with them).
    tagged: the rules whose slot a process was tagged with since the last
    refresh (note_new_owner); linked: whether a link capacity is in force;
    reach: reached_pids of this table and index (None: read here)."""
    reached = reach or (lambda key: reached_pids(index, table, key))
    live: dict[RuleKey, dict[Direction, Limit]] = {}
    for app_id in index.applications():
        for key in table.in_force_of(app_id):
            if reached(key):
                live[key] = table.get(key)
    for file_id in index.renamed_runners():  # administrators' rules on files run as others
        key = (file_id, ADMIN_OWNER)
        if key not in live and key in table.in_force_of(file_id) and reached(key):
            live[key] = table.get(key)
    for key in tagged:
        if key not in live and key in table.in_force_of(key[0]):
            live[key] = table.get(key)
    if not linked:  # a priority alone orders nothing without a link: no slot, no tag, no class
        return [(key, limits) for key, limits in live.items()
                if not all(limit.priority_only for limit in limits.values())]  # fmt: skip
    return list(live.items())


def bytes_moved_here(
    samples: Iterable[CounterSample], owner_of: Callable[[CounterSample], tuple[str, int | None] | None],
    netns_cookie: int,
) -> dict[str, int]:  # fmt: skip
    """app id -> the bytes its running processes moved in the namespace of
    netns_cookie (the helper's, where the link tree is), loopback aside:
    what tells an application active (Apply.note_active). Bytes in another
    namespace (a container's) pass no link tree of this helper: a class for
    them would stay idle."""
    moved: dict[str, int] = {}
    for sample in samples:
        owner = owner_of(sample)
        if (
            owner is not None
            and sample.netns_cookie == netns_cookie
            and sample.ifindex != LOOPBACK_IFINDEX
        ):
            moved[owner[0]] = moved.get(owner[0], 0) + sample.rx_bytes + sample.tx_bytes
    return moved


def socket_namespaces(
    samples: Iterable[CounterSample], slot_of: Callable[[int], int | None]
) -> dict[int, set[int]]:
    """slot -> the network namespaces (cookies) its sockets have moved bytes
    in, loopback aside. A socket can be in a namespace where none of its
    application's processes is (made there after setns, or passed over a unix
    socket): no class of a limit divided between the processes' namespaces
    holds it (NamespaceShapers.note_socket_namespaces)."""
    found: dict[int, set[int]] = {}
    for sample in samples:
        if (sample.tx_bytes or sample.rx_bytes) and sample.ifindex != LOOPBACK_IFINDEX:
            slot = slot_of(sample.owner_tgid)
            if slot:
                found.setdefault(slot, set()).add(sample.netns_cookie)
    return found


def fair_shares(
    index: ApplicationIndex,
    table: LimitTable,
    live: LiveRules,
    active: Iterable[str],
    reach: Reach | None = None,
) -> dict[RuleKey, list[int]]:
    """(app id, FAIR_OWNER) -> its running processes that no live rule
    reaches, for each active application (activity.py: one that moved at least ACTIVE_BPS lately): each
    gets a class of its own under a link, so applications of one priority
    share it per application, not per connection."""
    reached = reach or (lambda key: reached_pids(index, table, key))
    ruled = {pid for key, _limits in live for pid in reached(key)}
    shares: dict[RuleKey, list[int]] = {}
    for app_id in sorted(set(active)):
        app = index.application(app_id)
        pids = sorted(pid for pid in app.processes if pid not in ruled) if app else []
        if pids:
            shares[(app_id, FAIR_OWNER)] = pids
    return shares


def wanted_classes(
    live: LiveRules,
    slot_of: Callable[[RuleKey], int],
    gating: Gating,
    linked: Iterable[Direction],
    fair: Iterable[RuleKey] = (),
) -> dict[Direction, Classes]:
    """The HTB classes per direction: each live rule's rated limits in its
    slot, and under a link a class for every other rule (its priority) and
    every fair share (normal): one class per application."""
    linked = tuple(linked)
    wanted: dict[Direction, Classes] = {Direction.UP: {}, Direction.DOWN: {}}
    for key, limits in live:
        slot = slot_of(key)
        priority = priority_of(limits)
        rated = gating.rated(key, limits)
        for direction, limit in rated.items():
            wanted[direction][slot] = ClassSpec(limit.rate_bps, limit.burst_bytes, priority)
        for direction in set(linked) - rated.keys():  # a class for the priority alone, under a link
            wanted[direction][slot] = ClassSpec(0, 0, priority)
    for key in fair:
        for direction in linked:
            wanted[direction][slot_of(key)] = ClassSpec(0, 0, Priority.NORMAL)
    return wanted


def download_window_bps(limits: Mapping[Direction, Limit], downloads_queue: bool) -> int:
    """The wire rate a slot's receive windows are clamped for: its download
    limit, where the download backend queues (core.WINDOW_DRAIN_MIN_S)."""
    down = limits.get(Direction.DOWN)
    return down.rate_bps if down is not None and downloads_queue else 0


def wanted_caps(
    live: LiveRules, slot_of: Callable[[RuleKey], int], gating: Gating, downloads_queue: bool
) -> dict[int, SocketCaps]:
    """slot -> the caps its TCP sockets are held to: uploads paced a hair
    under the limit, receive windows clamped where the backend queues."""
    wanted: dict[int, SocketCaps] = {}
    for key, limits in live:
        rated = gating.rated(key, limits)
        up = rated.get(Direction.UP)
        caps = SocketCaps(
            pacing_bps=round(up.rate_bps * UPLOAD_PACING_SHARE) if up is not None else 0,
            window_bps=download_window_bps(rated, downloads_queue),
        )
        if caps != NO_CAPS:
            wanted[slot_of(key)] = caps
    return wanted


def scopes_of_rule(index: ApplicationIndex, key: RuleKey, pids: list[int]) -> set[str]:
    """The app scope cgroups whose new sockets a rule tags. A user's rule
    tags only scopes inside that user's own systemd instance: a user can
    name a cgroup in their subtree after anyone's app, and must gain no
    power over other users' processes by it. A process a rule reaches by
    the file it runs (rule_of) brings no scope: its scope is another
    application's."""
    owner, scopes = key[1], set()
    for pid in pids:
        identity = index.identity_of(pid)
        scope = identity.scope if identity and identity.app_id == key[0] else ""
        if scope and (owner == ADMIN_OWNER or user_instance_of(scope) == f"user@{owner}.service"):
            scopes.add(scope)
    return scopes


def user_instance_of(cgroup: str) -> str | None:
    """The outermost systemd user instance component (user@UID.service) on a
    cgroup path, compared whole: a user names the cgroups below their own
    instance as they like (user@<another uid>.service among them), so only
    the outermost one says whose instance a scope is in, and user@1000 is
    not user@10000."""
    for part in cgroup.split("/"):
        if _USER_INSTANCE.fullmatch(part):
            return part
    return None


def wanted_tags(
    index: ApplicationIndex,
    table: LimitTable,
    live: LiveRules,
    slot_of: Callable[[RuleKey], int],
    reach: Reach | None = None,
) -> tuple[dict[int, int], dict[str, int]]:
    """pid -> slot for every running process a live rule reaches, and app
    scope cgroup path -> slot for the scopes it tags (a rule not running
    waits for its processes)."""
    pids_wanted: dict[int, int] = {}
    scopes_wanted: dict[str, int] = {}
    for key, _limits in live:
        pids = reach(key) if reach is not None else reached_pids(index, table, key)
        if not pids:
            continue
        slot = slot_of(key)
        for pid in pids:
            pids_wanted[pid] = slot
        for scope in scopes_of_rule(index, key, pids):
            scopes_wanted[scope] = slot
    return pids_wanted, scopes_wanted


def prioritized(
    index: ApplicationIndex, table: LimitTable
) -> tuple[dict[str, list[int]], dict[int, int]]:
    """The running applications with a priority in force (not normal), with
    the processes their rules reach, and pid -> uid of their processes (a
    viewer is shown its own processes' round-trip times only)."""
    apps: dict[str, list[int]] = {}
    uids: dict[int, int] = {}
    for app_id, app in index.applications().items():
        for key in table.in_force_of(app_id):
            if priority_of(table.get(key)) is not Priority.NORMAL:
                apps.setdefault(app_id, []).extend(reached_pids(index, table, key))
                uids.update((pid, process.uid) for pid, process in app.processes.items())
    return apps, uids
