"""Which tc objects are the shaper's: what its journal says, checked against
the kernel, never a handle or a device name alone.

The shaper writes an entry to its ObjectJournal (ownership.py) before it
creates each object, keyed per network namespace (its netns cookie, never
reused while the machine runs):

  root:<ifindex>  an HTB root (handle c7ad:) on an uplink, with the uplink's name
  ifb:<uplink>    the IFB for an uplink's downloads: a random name nobody else
                  can have chosen, marked with an ifalias right after creation
  hook:<uplink>   the cls_bpf filter on the uplink's ingress, and whether the
                  shaper added the ingress qdisc for it

A killed shaper's entries are taken over by the next shaper (or cleanup) in
the same namespace, and each is checked before it is adopted or removed: the
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
import socket
from dataclasses import dataclass
from pathlib import Path

from pyroute2 import IPRoute

from chadthrottle.helper.kernel import interfaces
from chadthrottle.helper.kernel.htb import DEFAULT_MINOR, ROOT_HANDLE, ROOT_MARKER_R2Q
from chadthrottle.helper.kernel.layout import PROGRAM_NAME_PREFIX
from chadthrottle.helper.kernel.ownership import ObjectJournal, take_over_dead

log = logging.getLogger("chadthrottle.kernel.tc")

JOURNAL_KIND = "tc"
SO_NETNS_COOKIE = 71
SIOCGSKNS = 0x894C  # a socket's network namespace, as a new descriptor
IFB_ALIAS = "chadthrottle download shaper"
FILTER_PRIORITY = 0xC7AD
FILTER_HANDLE = 1
TC_PROGRAM_PREFIX = f"{PROGRAM_NAME_PREFIX}tc_in"


def netns_cookie(ipr: IPRoute) -> int:
    """The cookie of the network namespace ipr works in."""
    probe = socket.socket(fileno=os.dup(ipr.fileno()))
    try:
        return int.from_bytes(probe.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8), "little")
    finally:
        probe.close()


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
class IngressEntry:
    """The IFB and the hook of one uplink, as recorded (either may be missing)."""

    uplink: int
    uplink_name: str
    ifb_name: str | None
    hook_parent: int | None
    created_qdisc: bool


class TcJournal:
    """The shaper's journal of what it made in its network namespace."""

    def __init__(self, ipr: IPRoute) -> None:
        self.netns = netns_cookie(ipr)
        self._netns_inode = netns_inode(ipr)
        self._journal = ObjectJournal(JOURNAL_KIND)

    def _write(self, key: str, **fields: object) -> None:
        self._journal.write({"key": key, "netns": self.netns, "netns_inode": self._netns_inode, **fields})

    def root(self, ifindex: int, ifname: str) -> None:
        self._write(f"root:{ifindex}", ifindex=ifindex, ifname=ifname)

    def ifb(self, uplink: int, uplink_name: str, ifb_name: str) -> None:
        self._write(f"ifb:{uplink}", uplink=uplink, uplink_name=uplink_name, ifb_name=ifb_name)

    def hook(self, uplink: int, uplink_name: str, parent: int, created_qdisc: bool) -> None:
        self._write(f"hook:{uplink}", uplink=uplink, uplink_name=uplink_name, parent=parent,
                    created_qdisc=created_qdisc)  # fmt: skip

    def forget_root(self, ifindex: int) -> None:
        self._journal.forget(f"root:{ifindex}")

    def forget_ingress(self, uplink: int) -> None:
        self._journal.forget(f"hook:{uplink}")
        self._journal.forget(f"ifb:{uplink}")

    def take_over_dead(self) -> tuple[list[RootEntry], list[IngressEntry]]:
        """Killed shapers' entries for this namespace, now in this journal."""
        living: set[int] | None = None

        def namespace_is_gone(entry: dict[str, object]) -> bool:
            nonlocal living
            if living is None:
                living = living_netns_inodes()
            return entry.get("netns_inode") not in living

        entries = take_over_dead(JOURNAL_KIND, lambda entry: entry.get("netns") == self.netns, self._journal,
                                 is_garbage=namespace_is_gone)  # fmt: skip
        roots, ingress = [], {}
        try:
            for entry in entries:
                kind = entry["key"].split(":")[0]
                if kind == "root":
                    roots.append(RootEntry(int(entry["ifindex"]), str(entry["ifname"])))
                elif kind in ("ifb", "hook"):
                    uplink = int(entry["uplink"])
                    known = ingress.get(uplink, IngressEntry(uplink, str(entry["uplink_name"]), None, None, False))
                    if kind == "ifb":
                        known = IngressEntry(uplink, known.uplink_name, str(entry["ifb_name"]), known.hook_parent,
                                             known.created_qdisc)  # fmt: skip
                    else:
                        known = IngressEntry(uplink, known.uplink_name, known.ifb_name, int(entry["parent"]),
                                             bool(entry["created_qdisc"]))  # fmt: skip
                    ingress[uplink] = known
        except (KeyError, TypeError, ValueError) as error:
            log.warning("skipped a malformed tc journal entry: %s", error)
        return roots, list(ingress.values())

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


def our_ifb(ipr: IPRoute, name: str | None) -> interfaces.Link | None:
    """The recorded IFB: an ifb under the recorded (random) name; its alias
    is ours or empty (a crash between creating it and marking it)."""
    link = interfaces.link_named(ipr, name) if name else None
    if link is None or link.kind != "ifb" or link.alias not in ("", IFB_ALIAS):
        return None
    return link


def our_filter(ipr: IPRoute, uplink: int, parent: int, ifb_index: int | None) -> interfaces.BpfFilter | None:
    """Our filter on an uplink's ingress: at our priority and handle, running
    one of our programs, redirecting to our IFB (any IFB: ifb_index None)."""
    for message in interfaces.filters_at(ipr, uplink, parent, FILTER_PRIORITY):
        found = interfaces.bpf_filter(message)
        if (found is not None and found.handle == FILTER_HANDLE and found.program_name.startswith(TC_PROGRAM_PREFIX)
                and (ifb_index is None or found.redirect_ifindex == ifb_index)):  # fmt: skip
            return found
    return None
