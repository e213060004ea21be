"""While a direction is shaped under a link capacity (issue 16), every packet
of it must reach the namespace's IFB, so the link class holds all of it and
the applications without a class of their own share the default class. Our
cls_bpf filter matches only packets of applications with a class (it
returns 0 for the rest, and the next filter runs), so a catch-all comes
right after it on the same hook: a u32 that matches everything, at the next
priority, with the same redirect (u32 is in every kernel that has HTB;
matchall and basic are not built on this one). Packets the upload IFB sends back to the uplink skip tc
actions (skb->tc_skip_classify), so neither filter redirects them again.

It is ours when all that sits at CATCH_ALL_PRIORITY is u32 redirecting to
the hook's IFB; it goes with the hook (tc_hooks.py removes
it with our filter, also for a killed helper's remains), so the journal's
record of the hook covers it.
"""

from __future__ import annotations

import logging

from chadthrottle.helper.kernel import interfaces
from chadthrottle.helper.kernel.htb import DEFAULT_MINOR, ROOT_HANDLE, tc_call
from chadthrottle.helper.kernel.tc_ownership import FILTER_PRIORITY
from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

log = logging.getLogger("chadthrottle.kernel.tc")

CATCH_ALL_PRIORITY = FILTER_PRIORITY + 1  # right after our classifier
ETH_P_ALL = 0x0003
DEFAULT_CLASS = (
    ROOT_HANDLE | DEFAULT_MINOR
)  # u32 needs a class id; the IFB's HTB reads skb->priority


def add(ipr: IPRoute, uplink: int, parent: int, ifb_index: int) -> None:
    remove(ipr, uplink, parent, None)  # one a lost hook left (someone removed our classifier only)
    tc_call(ipr, "add-filter", "u32", uplink, parent=parent, prio=CATCH_ALL_PRIORITY, protocol=ETH_P_ALL,
            target=DEFAULT_CLASS, keys=["0x0/0x0+0"],
            action={"kind": "mirred", "direction": "egress", "action": "redirect", "ifindex": ifb_index})  # fmt: skip


def present(ipr: IPRoute, uplink: int, parent: int, ifb_index: int | None) -> bool:
    """Our catch-all on this hook (redirecting to ifb_index; None: to any
    device), and nothing else at its priority."""
    messages = interfaces.filters_at(ipr, uplink, parent, CATCH_ALL_PRIORITY)
    if any(message.get_attr("TCA_KIND") != "u32" for message in messages):
        return False
    # u32 keeps one set of tables per qdisc: a clsact hook's dump lists the
    # other hook's u32 too (each redirects to its own direction's IFB).
    redirects = {_redirect_of(message) for message in messages} - {0}  # 0: a table's head
    return bool(redirects) if ifb_index is None else ifb_index in redirects


def remove(ipr: IPRoute, uplink: int, parent: int, ifb_index: int | None) -> None:
    """Our catch-all on this hook, if it is there: the whole priority (u32's
    table with it); nothing at any other priority."""
    if not present(ipr, uplink, parent, ifb_index):
        return
    try:
        ipr.tc("del-filter", "u32", uplink, 0, parent=parent, prio=CATCH_ALL_PRIORITY, protocol=ETH_P_ALL,
               target=DEFAULT_CLASS)  # fmt: skip
    except NetlinkError as error:
        log.debug("catch-all on %d already gone: %s", uplink, error)


def _redirect_of(message: object) -> int:
    options = message.get_attr("TCA_OPTIONS")  # type: ignore[attr-defined]
    actions = options.get_attr("TCA_U32_ACT") if options is not None else None
    for _name, action in actions["attrs"] if actions is not None else []:
        action_options = (
            action.get_attr("TCA_ACT_OPTIONS")
            if action.get_attr("TCA_ACT_KIND") == "mirred"
            else None
        )
        parms = action_options.get_attr("TCA_MIRRED_PARMS") if action_options is not None else None
        if parms is not None:
            return int(parms["ifindex"])
    return 0
