"""Reading filter dumps: what the kernel answered on a real clsact (captured in
foreign_filter_dumps.json, with the tc commands that made it), and the cases
this kernel cannot build (no flower, skbedit or act_bpf here)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from chadthrottle.contract import Direction
from chadthrottle.helper.kernel.foreign_filters import (
    ETH_P_ALL,
    ETH_P_IP,
    OUR_FILTER_GONE,
    Action,
    Filter,
    carrying_doubts,
    egress_gaps,
    ingress_gaps,
    parse_filter,
    tcx_gaps,
)
from pyroute2.netlink.rtnl.tcmsg import tcmsg

OUR_PRIO = 0xC7AD
ETH_P_ARP = 0x0806
DUMPS: dict[str, Any] = json.loads(
    Path(__file__).with_name("foreign_filter_dumps.json").read_text()
)


def _captured(hook: str) -> list[Filter]:
    filters = []
    for raw in DUMPS[hook]:
        message = tcmsg(bytes.fromhex(raw))
        message.decode()
        filters.append(parse_filter(message))
    return filters


def test_a_captured_ingress_dump_is_read_as_the_kernel_runs_it() -> None:
    filters = _captured("ingress")
    rules = [(f.kind, f.prio, f.protocol) for f in filters if f.actions]
    assert rules == [("bpf", OUR_PRIO, ETH_P_ALL), ("u32", 60000, ETH_P_ALL)]
    ours = next(f for f in filters if f.kind == "bpf" and f.handle == 1)
    assert ours.bpf_name == "chadt_tc_in" and ours.actions == (
        Action("mirred", redirect_ifindex=DUMPS["our_ifb"]),
    )
    assert {f.protocol for f in filters if f.prio == 5} == {ETH_P_ARP}


def test_only_the_ip_filter_before_ours_is_a_download_gap() -> None:
    """ARP at prio 5 never sees our packets; the redirect at 60000 runs after ours."""
    assert ingress_gaps("DEV", _captured("ingress"), OUR_PRIO, DUMPS["our_ifb"]) == [
        "DEV: a u32 filter ChadThrottle did not create (prio 10) runs before its own on ingress; "
        "downloads through DEV are not limited"]  # fmt: skip


def test_a_filter_of_our_program_that_redirects_elsewhere_is_not_ours() -> None:
    gaps = ingress_gaps("DEV", _captured("ingress"), OUR_PRIO, DUMPS["our_ifb"] + 100)
    assert gaps == ["DEV: the download filter ChadThrottle added on ingress is gone (its qdisc was removed "
                    "or replaced); downloads through DEV are not limited"]  # fmt: skip


def _ours_on_egress() -> list[Filter]:
    return [
        Filter("bpf", OUR_PRIO, ETH_P_ALL),
        Filter(
            "bpf",
            OUR_PRIO,
            ETH_P_ALL,
            handle=1,
            bpf_name="chadt_tc_out",
            actions=(Action("mirred", 9),),
        ),
    ]


def test_every_ip_filter_before_ours_on_egress_is_an_upload_gap() -> None:
    """Our egress filter sends uploads to the IFB; a filter before it that
    matches ends the search whatever it does: prio 20 only classifies, 21
    mirrors, 22 redirects to the loopback."""
    assert egress_gaps("DEV", [*_captured("egress"), *_ours_on_egress()], OUR_PRIO, 9) == [
        f"DEV: a u32 filter ChadThrottle did not create (prio {prio}) runs before its own on egress; uploads "
        "through DEV are not limited" for prio in (20, 21, 22)]  # fmt: skip


def _rule(
    kind: str = "u32", prio: int = 10, protocol: int = ETH_P_IP, **fields: Any
) -> list[Filter]:
    """A classifier as dumped: its head, then one rule."""
    return [Filter(kind, prio, protocol), Filter(kind, prio, protocol, handle=1, **fields)]


@pytest.mark.parametrize("rule", [
    _rule(prio=60000, actions=(Action("mirred", redirect_ifindex=7),)),
    _rule(protocol=ETH_P_ARP, actions=(Action("mirred", redirect_ifindex=7),)),
], ids=["after ours", "ARP only"])  # fmt: skip
def test_egress_filters_that_never_see_our_packets_first_are_not_gaps(rule: list[Filter]) -> None:
    assert egress_gaps("DEV", [*rule, *_ours_on_egress()], OUR_PRIO, 9) == []


def test_our_egress_filter_gone_is_an_upload_gap() -> None:
    assert egress_gaps("DEV", _rule(prio=60000), OUR_PRIO, 9) == [
        "DEV: the upload filter ChadThrottle added on egress is gone (its qdisc was removed or replaced); uploads "
        "through DEV are not limited"]  # fmt: skip


def _ours() -> list[Filter]:
    return [
        Filter("bpf", OUR_PRIO, ETH_P_ALL),
        Filter(
            "bpf",
            OUR_PRIO,
            ETH_P_ALL,
            handle=1,
            bpf_name="chadt_tc_in",
            actions=(Action("mirred", 9),),
        ),
    ]


def test_a_foreign_rule_in_our_own_classifier_ahead_of_ours_is_a_gap() -> None:
    """cls_bpf lists (and runs) a filter added later first."""
    head, ours = _ours()
    theirs = Filter(
        "bpf", OUR_PRIO, ETH_P_ALL, handle=2, bpf_name="other", actions=(Action("mirred", 4),)
    )
    (gap,) = ingress_gaps("DEV", [head, theirs, ours], OUR_PRIO, 9)
    assert gap.startswith(
        f"DEV: a bpf filter ChadThrottle did not create (prio {OUR_PRIO}) runs before its own"
    )
    assert ingress_gaps("DEV", [head, ours, theirs], OUR_PRIO, 9) == []


def test_other_chains_are_not_searched_before_ours_on_ingress() -> None:
    assert (
        ingress_gaps("DEV", [Filter("u32", 1, ETH_P_IP, chain=5, handle=1), *_ours()], OUR_PRIO, 9)
        == []
    )


def test_tcx_programs_are_gaps_in_their_direction() -> None:
    assert tcx_gaps("DEV", ["cil_from_netdev", ""], Direction.DOWN) == [
        "DEV: a tcx BPF program ChadThrottle did not attach (cil_from_netdev) runs first on ingress; downloads "
        "through DEV may not be limited",
        "DEV: a tcx BPF program ChadThrottle did not attach (unnamed) runs first on ingress; downloads "
        "through DEV may not be limited"]  # fmt: skip
    assert "on egress; uploads through DEV" in tcx_gaps("DEV", ["x"], Direction.UP)[0]


def test_only_a_filter_that_can_write_tc_index_after_or_instead_of_ours_is_a_carrying_doubt() -> (
    None
):
    """skb->tc_index is written after any filter that returns TC_ACT_OK: one
    before ours, or after ours unless our catch-all (a u32 at the next
    priority that matches all and redirects to this hook's IFB) ends the
    search first. u32 lists the other hook's tables at the same priority
    (our egress catch-all, to the upload IFB: 8)."""
    head, ours = _ours()
    catch_all = [Filter("u32", OUR_PRIO + 1, ETH_P_ALL, handle=0),
                 Filter("u32", OUR_PRIO + 1, ETH_P_ALL, handle=0x80000000),
                 Filter("u32", OUR_PRIO + 1, ETH_P_ALL, handle=0x80000800, actions=(Action("mirred", 9),)),
                 Filter("u32", OUR_PRIO + 1, ETH_P_ALL, handle=0x80100800, actions=(Action("mirred", 8),))]  # fmt: skip
    later = Filter("u32", 60000, ETH_P_ALL, handle=0x80200800)
    arp = Filter("u32", 1, 0x0806, handle=0x80300800)
    assert (
        carrying_doubts("DEV", [arp, head, ours, *catch_all, later], OUR_PRIO, {8, 9}, 9, []) == []
    )
    (after,) = carrying_doubts("DEV", [head, ours, later], OUR_PRIO, {8, 9}, 9, [])
    assert after.startswith(
        "DEV: a u32 filter ChadThrottle did not create (prio 60000) runs after its own"
    )
    theirs = Filter("bpf", OUR_PRIO, ETH_P_ALL, handle=2, bpf_name="other")
    (first,) = carrying_doubts("DEV", [head, theirs, ours, *catch_all], OUR_PRIO, {8, 9}, 9, [])
    assert first.startswith(
        f"DEV: a bpf filter ChadThrottle did not create (prio {OUR_PRIO}) runs before its own"
    )
    (tcx,) = carrying_doubts(
        "DEV", [head, ours, *catch_all], OUR_PRIO, {8, 9}, 9, ["cil_from_netdev"]
    )
    assert "tcx BPF program ChadThrottle did not attach (cil_from_netdev)" in tcx
    assert carrying_doubts("DEV", [later], OUR_PRIO, {8, 9}, 9, []) == [
        f"DEV: {OUR_FILTER_GONE[Direction.DOWN]}"
    ]
