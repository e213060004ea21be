"""While a direction is shaped under a link capacity (issue 16), every packet
of it must reach the namespace's IFB, so the link class holds all of it and
the applications without a class of their own share the default class. Our
cls_bpf filter matches only packets of applications with a class (it
returns 0 for the rest, and the next filter runs), so a catch-all comes
right after it on the same hook: a u32 that matches everything, at the next
priority, with the same redirect (u32 is in every kernel that has HTB;
matchall and basic are not built on this one). Packets the upload IFB sends back to the uplink skip tc
actions (skb->tc_skip_classify), so neither filter redirects them again.

Ours is the u32 node at CATCH_ALL_PRIORITY that matches everything, names
the default class and only redirects to the hook's IFB (an IFB the journal
records: the callers pass it). It goes by its own handle, so a filter
someone else put at the same priority stays; it goes with the hook
(tc_hooks.py removes it with our filter, also for a killed helper's
remains), so the journal's record of the hook covers it. A catch-all of
ours whose IFB is gone redirects to a missing device, i.e. drops every
packet it matches: such remains go too (traffic fails open).
"""

from __future__ import annotations

import logging
from typing import Any

from chadthrottle.helper.kernel import interfaces
from chadthrottle.helper.kernel.htb import DEFAULT_MINOR, ROOT_HANDLE, tc_call
from chadthrottle.helper.kernel.tc_ownership import FILTER_PRIORITY, IFB_ALIASES
from pyroute2.iproute import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

log = logging.getLogger("chadthrottle.kernel.tc")

CATCH_ALL_PRIORITY = FILTER_PRIORITY + 1  # right after our classifier
ETH_P_ALL = 0x0003
DEFAULT_CLASS = (
    ROOT_HANDLE | DEFAULT_MINOR
)  # u32 needs a class id; the IFB's HTB reads skb->priority
# The bit of a table id u32 chose itself (a hook's root table: 800:, 801:, ...).
KERNEL_TABLE = 0x800 << 20
TCA_EGRESS_REDIR = 1  # mirred's "egress redirect"


def add(ipr: IPRoute, uplink: int, parent: int, ifb_index: int) -> None:
    if present(ipr, uplink, parent, ifb_index):
        return
    remove(ipr, uplink, parent, None)  # ours to a deleted IFB: it would drop what ours should take
    tc_call(ipr, "add-filter", "u32", uplink, parent=parent, prio=CATCH_ALL_PRIORITY, protocol=ETH_P_ALL,
            target=DEFAULT_CLASS, keys=["0x0/0x0+0"],
            action={"kind": "mirred", "direction": "egress", "action": "redirect", "ifindex": ifb_index})  # fmt: skip


def present(ipr: IPRoute, uplink: int, parent: int, ifb_index: int) -> bool:
    """Our catch-all on this hook, redirecting to ifb_index."""
    return any(_target(m) == ifb_index for m in _priority(ipr, uplink, parent))


def remove(ipr: IPRoute, uplink: int, parent: int, ifb_index: int | None) -> None:
    """Our catch-all on this hook (redirecting to ifb_index; None: every one
    of ours whose device is gone), by its handle; then the priority itself if
    nothing but ours was in it (see _drop_emptied)."""
    messages = _priority(ipr, uplink, parent)
    gone = {message["handle"] for message in messages if _matches(ipr, _target(message), ifb_index)}
    for handle in gone:
        try:
            ipr.tc("del-filter", "u32", uplink, handle, parent=parent, prio=CATCH_ALL_PRIORITY,
                   protocol=ETH_P_ALL, target=DEFAULT_CLASS)  # fmt: skip
        except NetlinkError as error:
            log.debug("catch-all %x on %d already gone: %s", handle, uplink, error)
    if messages:  # the hook has a u32 priority here
        known = ifb_index is not None and gone
        _drop_emptied(ipr, uplink, parent, {_table(h) for h in gone} if known else None)


def _drop_emptied(ipr: IPRoute, uplink: int, parent: int, tables: set[int] | None) -> None:
    """On a clsact both hooks' u32 at one priority share their tables, and the
    kernel keeps a hook's emptied table while the other hook has one: delete
    the hook's priority when what blocks it is gone. tables: the hook's own
    (the one its catch-all was in), no other node may be left there; None
    (not known which is the hook's; the caller has none of ours on this
    hook): no node but our catch-alls of live IFBs, the other hook's, may
    be left anywhere. Never while a table u32 did not name itself is
    there (someone's hash table: it could go with the priority)."""
    messages = _priority(ipr, uplink, parent)
    if not messages or any(
        _key(m["handle"]) == 0 and not m["handle"] & KERNEL_TABLE for m in messages
    ):
        return
    nodes = [m for m in messages if _key(m["handle"])]
    if tables is not None:
        blocking = [m for m in nodes if _table(m["handle"]) in tables]
    else:
        blocking = [m for m in nodes if not _ours_live(ipr, _target(m))]
    if blocking:
        return
    try:
        ipr.tc("del-filter", "u32", uplink, 0, parent=parent, prio=CATCH_ALL_PRIORITY, protocol=ETH_P_ALL,
               target=DEFAULT_CLASS)  # fmt: skip
    except NetlinkError as error:
        log.debug("catch-all priority on %d already gone: %s", uplink, error)


def _priority(ipr: IPRoute, uplink: int, parent: int) -> list[Any]:
    """What sits at our priority under parent (both clsact hooks' u32 nodes:
    they share u32's tables), or nothing if it is not u32."""
    messages = interfaces.filters_at(ipr, uplink, parent, CATCH_ALL_PRIORITY)
    if any(message.get_attr("TCA_KIND") != "u32" for message in messages):
        return []
    return messages


def _matches(ipr: IPRoute, target: int | None, ifb_index: int | None) -> bool:
    if target is None:
        return False
    if ifb_index is not None:
        return target == ifb_index
    return not target or interfaces.link_by_index(ipr, target) is None


def _ours_live(ipr: IPRoute, target: int | None) -> bool:
    link = interfaces.link_by_index(ipr, target) if target else None
    return link is not None and link.kind == "ifb" and link.alias in IFB_ALIASES.values()


def _target(message: Any) -> int | None:
    """Where a u32 node built as ours redirects (0: to a device that is gone;
    None: not built as ours): it matches everything, names the default
    class, and has one action, a mirred egress redirect."""
    options = message.get_attr("TCA_OPTIONS") if _key(message["handle"]) else None
    if options is None or options.get_attr("TCA_U32_CLASSID") != DEFAULT_CLASS:
        return None
    selector = options.get_attr("TCA_U32_SEL")
    keys = selector["keys"] if selector is not None else []
    if len(keys) != 1 or keys[0]["key_mask"] or keys[0]["key_val"] or keys[0]["key_off"]:
        return None
    actions = options.get_attr("TCA_U32_ACT")
    attrs = actions["attrs"] if actions is not None else []
    if len(attrs) != 1 or attrs[0][1].get_attr("TCA_ACT_KIND") != "mirred":
        return None
    action_options = attrs[0][1].get_attr("TCA_ACT_OPTIONS")
    parms = action_options.get_attr("TCA_MIRRED_PARMS") if action_options is not None else None
    if parms is None or parms["eaction"] != TCA_EGRESS_REDIR:
        return None
    return int(parms["ifindex"])


def _key(handle: int) -> int:
    return handle & 0xFFF  # a node's number in its table; 0: a table


def _table(handle: int) -> int:
    return handle & 0xFFF00000
