"""Which tc objects are the shaper's: what its journal says, checked against
the kernel, never a handle or a device name alone.

The shaper writes an entry to its ObjectJournal (ownership.py) before it
creates each object, keyed per network namespace (its netns cookie, never
reused while the machine runs):

  ifb:<uplink>    the IFB an uplink's downloads are redirected to (one per
                  namespace, so every uplink records the same): a random name
                  nobody else can have chosen, marked with an ifalias right
                  after creation
  hook:<uplink>   the cls_bpf filter on the uplink's ingress, and whether the
                  shaper added the qdisc (clsact, or ingress before 2026-12-03),
                  or hooked on a clsact another shaper's journal records adding
                  (tc_hooks.clsact_of_a_shaper): it goes with the last filter
  upifb:<uplink>, uphook:<uplink>
                  the same for uploads: the upload IFB, and the filter on the
                  uplink's clsact egress
  root:<ifindex>  an HTB root (handle c7ad:) on an uplink, with the uplink's
                  name: what helpers before 2026-12-03 shaped uploads with; only
                  ever removed now

Every entry also names the helper instance that wrote it (ownership.
journal_instance: its state directory; "" for a shaper made without one, a
tool's; a test session's own, tests/support/own_names.JOURNAL_INSTANCE), and
so does the journal's name (ownership.ObjectJournal).
A killed shaper's entries are taken over by the next shaper (or cleanup) of
the same instance in the same namespace (entries without an instance, from
helpers before 2026-12-03, by any), and each is checked before it is
adopted or removed: the
device still has the recorded name (an ifindex can be reused), the root is an
HTB with our handle, default class and marker, the IFB is an ifb under the
recorded name, the filter runs one of our programs and redirects to that IFB.
An entry that fails the check is dropped: its object is gone (or never came:
a crash between the entry and the object).
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from chadthrottle.contract import Direction
from chadthrottle.helper.kernel import interfaces
from chadthrottle.helper.kernel.htb import DEFAULT_MINOR, ROOT_HANDLE, ROOT_MARKER_R2Q
from chadthrottle.helper.kernel.layout import PROGRAM_NAME_PREFIX
from chadthrottle.helper.kernel.namespaces import netns_cookie_of_fd
from chadthrottle.helper.kernel.ownership import ObjectJournal, take_over_dead
from pyroute2.iproute import IPRoute

log = logging.getLogger("chadthrottle.kernel.tc")

JOURNAL_KIND = "tc"
SIOCGSKNS = 0x894C  # a socket's network namespace, as a new descriptor
IFB_ALIAS = "chadthrottle download shaper"
UPLOAD_IFB_ALIAS = "chadthrottle upload shaper"
IFB_ALIASES = {Direction.DOWN: IFB_ALIAS, Direction.UP: UPLOAD_IFB_ALIAS}
_KEYS = {
    Direction.DOWN: ("ifb", "hook"),
    Direction.UP: ("upifb", "uphook"),
}  # journal key kinds: IFB, filter
HOOK_KINDS = {hook_kind for _, hook_kind in _KEYS.values()}
FILTER_PRIORITY = 0xC7AD
FILTER_HANDLE = 1
TC_PROGRAM_PREFIX = f"{PROGRAM_NAME_PREFIX}tc_"  # chadt_tc_in, chadt_tc_in_l3, chadt_tc_out


def netns_cookie(ipr: IPRoute) -> int:
    """The cookie of the network namespace ipr works in."""
    return netns_cookie_of_fd(ipr.fileno())


def netns_inode(ipr: IPRoute) -> int:
    """The inode of ipr's network namespace (SIOCGSKNS): with the cookie,
    whether the namespace still exists."""
    namespace = fcntl.ioctl(ipr.fileno(), SIOCGSKNS)
    try:
        return os.fstat(namespace).st_ino
    finally:
        os.close(namespace)


def living_netns_inodes() -> set[int]:
    """Namespaces something still holds: a process, or a name under /run/netns.
    One held only by an open descriptor elsewhere is missed: its entries are
    dropped and its objects then count as somebody else's (left alone)."""
    living = set()
    for path in [*Path("/proc").glob("[0-9]*/ns/net"), *Path("/run/netns").glob("*")]:
        try:
            living.add(path.stat().st_ino)
        except OSError:
            continue
    return living


def new_ifb_name() -> str:
    """ctifb + 8 random hex digits (13 of the 15 characters a name may have)."""
    return f"{interfaces.IFB_PREFIX}{secrets.token_hex(4)}"


@dataclass(frozen=True)
class RootEntry:
    ifindex: int
    ifname: str


@dataclass(frozen=True)
class HookEntry:
    """The IFB and the hook of one uplink and direction, as recorded (either
    may be missing)."""

    uplink: int
    uplink_name: str
    ifb_name: str | None
    hook_parent: int | None
    created_qdisc: bool
    direction: Direction = Direction.DOWN


class TcJournal:
    """The shaper's journal of what it made in its network namespace."""

    def __init__(self, ipr: IPRoute, instance: str = "") -> None:
        self.netns = netns_cookie(ipr)
        self.instance = instance
        self._netns_inode = netns_inode(ipr)
        self._journal = ObjectJournal(JOURNAL_KIND, instance)

    def _write(self, key: str, **fields: object) -> None:
        self._journal.write({"key": key, "netns": self.netns, "netns_inode": self._netns_inode,
                             "instance": self.instance, **fields})  # fmt: skip

    def belongs(self, entry: dict[str, object]) -> bool:
        """An entry this journal may take over: of its namespace and instance.
        Another helper's (another state directory) is never ours to adopt or
        remove, though its owner is dead: its successor adopts it."""
        return (
            entry.get("netns") == self.netns
            and entry.get("instance", self.instance) == self.instance
        )

    def root(self, ifindex: int, ifname: str) -> None:
        self._write(f"root:{ifindex}", ifindex=ifindex, ifname=ifname)

    def ifb(
        self, uplink: int, uplink_name: str, ifb_name: str, direction: Direction = Direction.DOWN
    ) -> None:
        self._write(
            f"{_KEYS[direction][0]}:{uplink}",
            uplink=uplink,
            uplink_name=uplink_name,
            ifb_name=ifb_name,
        )

    def hook(
        self,
        uplink: int,
        uplink_name: str,
        parent: int,
        created_qdisc: bool,
        direction: Direction = Direction.DOWN,
    ) -> None:
        self._write(f"{_KEYS[direction][1]}:{uplink}", uplink=uplink, uplink_name=uplink_name, parent=parent,
                    created_qdisc=created_qdisc)  # fmt: skip

    def forget_root(self, ifindex: int) -> None:
        self._journal.forget(f"root:{ifindex}")

    def forget_hook(self, uplink: int, direction: Direction = Direction.DOWN) -> None:
        ifb_kind, hook_kind = _KEYS[direction]
        self._journal.forget(f"{hook_kind}:{uplink}")
        self._journal.forget(f"{ifb_kind}:{uplink}")

    def take_over_dead(self) -> tuple[list[RootEntry], list[HookEntry]]:
        """Killed shapers' entries for this namespace, now in this journal."""
        living: set[int] | None = None

        def namespace_is_gone(entry: dict[str, object]) -> bool:
            nonlocal living
            if living is None:
                living = living_netns_inodes()
            return entry.get("netns_inode") not in living

        entries = take_over_dead(
            JOURNAL_KIND, self.belongs, self._journal, is_garbage=namespace_is_gone
        )
        roots: list[RootEntry] = []
        hooks: dict[tuple[Direction, int], HookEntry] = {}
        kinds = {kind: (direction, kind == ifb_kind) for direction, (ifb_kind, hook_kind) in _KEYS.items()
                 for kind in (ifb_kind, hook_kind)}  # fmt: skip
        for entry in entries:
            try:
                kind = entry["key"].split(":")[0]
                if kind == "root":
                    roots.append(RootEntry(int(entry["ifindex"]), str(entry["ifname"])))
                elif kind in kinds:
                    direction, is_ifb = kinds[kind]
                    uplink = int(entry["uplink"])
                    known = hooks.get(
                        (direction, uplink),
                        HookEntry(uplink, str(entry["uplink_name"]), None, None, False, direction),
                    )
                    if is_ifb:
                        known = HookEntry(uplink, known.uplink_name, str(entry["ifb_name"]), known.hook_parent,
                                          known.created_qdisc, direction)  # fmt: skip
                    else:
                        known = HookEntry(uplink, known.uplink_name, known.ifb_name, int(entry["parent"]),
                                          bool(entry["created_qdisc"]), direction)  # fmt: skip
                    hooks[(direction, uplink)] = known
            except (KeyError, TypeError, ValueError, AttributeError) as error:
                log.warning("skipped a malformed tc journal entry: %s", error)
        return roots, list(hooks.values())

    def close(self) -> None:
        """Everything recorded was removed."""
        self._journal.close()

    def release(self) -> None:
        """Stop writing, keep the entries: what could not be removed is found
        and removed by the next start."""
        self._journal.release()


def same_device(ipr: IPRoute, ifindex: int, name: str) -> interfaces.Link | None:
    """The device at ifindex, if it still has the recorded name."""
    link = interfaces.link_by_index(ipr, ifindex)
    return link if link is not None and link.name == name else None


def is_our_root(ipr: IPRoute, entry: RootEntry) -> bool:
    if same_device(ipr, entry.ifindex, entry.ifname) is None:
        return False
    root = interfaces.root_qdisc(ipr, entry.ifindex)
    return (root is not None and root.kind == "htb" and root.handle == ROOT_HANDLE
            and root.rate2quantum == ROOT_MARKER_R2Q and root.default_minor == DEFAULT_MINOR)  # fmt: skip


def our_ifb(
    ipr: IPRoute, name: str | None, direction: Direction = Direction.DOWN
) -> interfaces.Link | None:
    """The recorded IFB: an ifb under the recorded (random) name; its alias
    is ours for that direction or empty (a crash between creating it and
    marking it)."""
    link = interfaces.link_named(ipr, name) if name else None
    if link is None or link.kind != "ifb" or link.alias not in ("", IFB_ALIASES[direction]):
        return None
    return link


def our_filter(
    ipr: IPRoute, uplink: int, parent: int, ifb_index: int | None
) -> interfaces.BpfFilter | None:
    """Our filter on an uplink's hook: at our priority and handle, running
    one of our programs, redirecting to our IFB (any IFB: ifb_index None)."""
    for message in interfaces.filters_at(ipr, uplink, parent, FILTER_PRIORITY):
        found = interfaces.bpf_filter(message)
        if (found is not None and found.handle == FILTER_HANDLE and found.program_name.startswith(TC_PROGRAM_PREFIX)
                and (ifb_index is None or found.redirect_ifindex == ifb_index)):  # fmt: skip
            return found
    return None
