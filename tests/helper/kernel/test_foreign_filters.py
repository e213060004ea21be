"""Filters and tcx programs ChadThrottle did not create, on a real uplink in a
namespace: those that take packets before its own are reported as gaps in
enforcement (with the device's name), left exactly as they were, and nothing
else is reported."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import socket
import struct
import subprocess
from collections.abc import Iterator

import pytest
from chadthrottle.contract import Direction
from chadthrottle.helper.kernel import bpf_syscalls
from chadthrottle.helper.kernel.htb import ClassSpec
from chadthrottle.helper.kernel.tc_shaper import FILTER_PRIORITY, TcShaper

from tests.support.netns import NetnsPair, entered_netns, tc_dump
from tests.support.waiting import eventually

LIMIT = ClassSpec(rate_bps=3_000_000, burst_bytes=131072)
BPF_PROG_LOAD, BPF_PROG_TYPE_SCHED_CLS = 5, 3


def _tc(pair: NetnsPair, *argv: str) -> None:
    subprocess.run(["tc", "-n", pair.host_ns, *argv], check=True, capture_output=True, text=True)


def _filters(pair: NetnsPair, hook: str) -> str:
    """`tc -j filter show` of the uplink's ingress or egress hook, as printed."""
    return subprocess.run(["tc", "-n", pair.host_ns, "-j", "filter", "show", "dev", pair.host_if, hook],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip


def _without_ours(dump: str) -> list[dict[str, object]]:
    return [entry for entry in json.loads(dump) if entry.get("pref") != FILTER_PRIORITY]


def _gaps_soon(shaper: TcShaper, direction: Direction) -> list[str]:
    """The gaps of a direction once reported: they are read at most once a second."""
    eventually(lambda: bool(shaper.enforcement_gaps().get(direction)), 3.0, 0.05)
    return shaper.enforcement_gaps().get(direction, [])


def test_a_filter_before_ours_is_reported_and_left_exactly_as_it_was(
    pair: NetnsPair, shaper: TcShaper
) -> None:
    """A u32 filter at prio 10 ends classification before our cls_bpf (prio
    0xC7AD): a 3 MB/s download limit measured 95-162 MB/s while it was there."""
    _tc(pair, "qdisc", "add", "dev", pair.host_if, "ingress")
    _tc(pair, "filter", "add", "dev", pair.host_if, "parent", "ffff:", "prio", "10", "protocol", "ip",
        "u32", "match", "u32", "0", "0", "classid", "1:1")  # fmt: skip
    before = _filters(pair, "ingress")
    shaper.reconcile({Direction.DOWN: {1: LIMIT}})
    assert shaper.enforcement_gaps() == {Direction.DOWN: [
        f"{pair.host_if}: a u32 filter ChadThrottle did not create (prio 10) runs before its own on ingress; "
        f"downloads through {pair.host_if} are not limited"]}  # fmt: skip
    during = _filters(pair, "ingress")
    assert "chadt_tc_in" in during and _without_ours(during) == json.loads(before)
    shaper.reconcile({Direction.DOWN: {1: LIMIT, 2: LIMIT}})
    assert _without_ours(_filters(pair, "ingress")) == json.loads(before)
    shaper.reconcile({})
    assert _filters(pair, "ingress") == before
    assert shaper.enforcement_gaps() == {}


def test_a_filter_added_later_is_found_by_the_periodic_check(
    pair: NetnsPair, shaper: TcShaper
) -> None:
    shaper.reconcile({Direction.DOWN: {1: LIMIT}})
    assert shaper.enforcement_gaps() == {}
    _tc(pair, "filter", "add", "dev", pair.host_if, "ingress", "prio", "10", "protocol", "all",
        "u32", "match", "u32", "0", "0", "classid", "1:1")  # fmt: skip
    added = _without_ours(_filters(pair, "ingress"))
    gaps = _gaps_soon(shaper, Direction.DOWN)
    assert len(gaps) == 1 and gaps[0].startswith(
        f"{pair.host_if}: a u32 filter ChadThrottle did not create (prio 10)"
    )
    shaper.reconcile({})
    assert (
        json.loads(_filters(pair, "ingress")) == added
    )  # ours went, theirs stayed (and the qdisc under it)


@pytest.mark.parametrize(
    "foreign",
    [None, ["prio", "60000", "protocol", "ip"], ["prio", "10", "protocol", "arp"]],
    ids=["only ours", "after ours", "not IP"],
)
def test_nothing_is_reported_for_filters_that_cannot_take_our_packets(
    pair: NetnsPair, shaper: TcShaper, foreign: list[str] | None
) -> None:
    """Ours alone; one with a higher prio number (it sees only what ours let
    through); one for ARP, which never sees the packets we limit. On both hooks."""
    if foreign is not None:
        _tc(pair, "qdisc", "add", "dev", pair.host_if, "clsact")
        for hook in ("ingress", "egress"):
            _tc(pair, "filter", "add", "dev", pair.host_if, hook, *foreign,
                "u32", "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", "lo")  # fmt: skip
    shaper.reconcile({Direction.UP: {1: LIMIT}, Direction.DOWN: {1: LIMIT}})
    assert shaper.enforcement_gaps() == {}
    shaper._gaps = (float("-inf"), None, {})  # read again, not from the cache
    assert shaper.enforcement_gaps() == {}


def test_clsact_egress_filters_before_ours_are_reported_and_those_after_are_not(
    pair: NetnsPair, shaper: TcShaper
) -> None:
    """Uploads are caught by our filter on the clsact egress hook: a filter
    before it that matches a packet ends the search there, whatever it does
    (classify, mirror, redirect), so the packet never reaches the upload IFB;
    one after ours never sees our packets. On a clsact, downloads use its
    ingress side, checked the same way."""
    _tc(pair, "qdisc", "add", "dev", pair.host_if, "clsact")
    for prio, action in (("10", ["classid", "1:1"]), ("11", ["action", "mirred", "egress", "mirror", "dev", "lo"]),
                         ("60000", ["action", "mirred", "egress", "redirect", "dev", "lo"])):  # fmt: skip
        _tc(pair, "filter", "add", "dev", pair.host_if, "egress", "prio", prio, "protocol", "ip",
            "u32", "match", "u32", "0", "0", *action)  # fmt: skip
    _tc(pair, "filter", "add", "dev", pair.host_if, "ingress", "prio", "20000", "protocol", "ipv6",
        "u32", "match", "u32", "0", "0", "classid", "1:1")  # fmt: skip
    before = (_filters(pair, "ingress"), _filters(pair, "egress"))
    shaper.reconcile({Direction.UP: {1: LIMIT}, Direction.DOWN: {1: LIMIT}})
    assert shaper.enforcement_gaps() == {
        Direction.UP: [f"{pair.host_if}: a u32 filter ChadThrottle did not create (prio {prio}) runs before its own "
                       f"on egress; uploads through {pair.host_if} are not limited" for prio in (10, 11)],
        Direction.DOWN: [f"{pair.host_if}: a u32 filter ChadThrottle did not create (prio 20000) runs before its own "
                         f"on ingress; downloads through {pair.host_if} are not limited"],
    }  # fmt: skip
    shaper.reconcile({})
    assert (_filters(pair, "ingress"), _filters(pair, "egress")) == before


def test_an_ingress_qdisc_leaves_uploads_unshaped_and_says_so(
    pair: NetnsPair, shaper: TcShaper
) -> None:
    """Somebody's ingress qdisc has no egress hook, and a clsact cannot be
    added beside it: downloads use it (our filter before theirs), uploads on
    that uplink are reported as not shaped (the policer holds them), and the
    qdisc and its filter are left as they were."""
    _tc(pair, "qdisc", "add", "dev", pair.host_if, "ingress")
    _tc(pair, "filter", "add", "dev", pair.host_if, "parent", "ffff:", "prio", "60000", "protocol", "ip",
        "u32", "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", "lo")  # fmt: skip
    before = _filters(pair, "ingress")
    shaper.reconcile({Direction.UP: {1: LIMIT}, Direction.DOWN: {1: LIMIT}})
    assert shaper.enforcement_gaps() == {Direction.UP: [
        f"{pair.host_if}: an ingress qdisc ChadThrottle did not create is on it, which has no egress hook (a clsact "
        f"would have); it is left untouched; uploads through {pair.host_if} are not shaped"]}  # fmt: skip
    assert shaper.active_directions() == {Direction.DOWN}
    shaper.reconcile({})
    assert _filters(pair, "ingress") == before


def test_our_filters_gone_with_their_qdisc_are_reported_and_put_back(
    pair: NetnsPair, shaper: TcShaper
) -> None:
    wanted = {Direction.UP: {1: LIMIT}, Direction.DOWN: {1: LIMIT}}
    shaper.reconcile(wanted)
    _tc(pair, "qdisc", "del", "dev", pair.host_if, "clsact")
    gaps = _gaps_soon(shaper, Direction.UP)
    assert gaps == [f"{pair.host_if}: the upload filter ChadThrottle added on egress is gone (its qdisc was removed "
                    f"or replaced); uploads through {pair.host_if} are not limited"]  # fmt: skip
    assert shaper.enforcement_gaps()[Direction.DOWN] == [
        f"{pair.host_if}: the download filter ChadThrottle added on ingress is gone (its qdisc was removed or "
        f"replaced); downloads through {pair.host_if} are not limited"]  # fmt: skip
    shaper.reconcile(wanted)
    eventually(lambda: shaper.enforcement_gaps() == {}, 3.0, 0.05)
    assert "chadt_tc_out" in _filters(pair, "egress") and "chadt_tc_in" in _filters(pair, "ingress")


def _ifb_of(shaper: TcShaper, direction: Direction) -> str:
    (name,) = {hook.ifb_name for hook in shaper._hooks[direction].values()}
    return name


def test_a_root_someone_put_in_place_of_our_ifbs_htb_is_reported_and_made_again(
    pair: NetnsPair, shaper: TcShaper
) -> None:
    """`tc qdisc replace dev ctifb... root pfifo` under a 1 MB/s download (e2e,
    docs/backends.md): the guard held it at 0.84-1.18 while the listing said
    shaped, and clearing the limit failed. Before: no gap, the pfifo stayed."""
    wanted = {Direction.DOWN: {1: LIMIT}}
    shaper.reconcile(wanted)
    replaced = _ifb_of(shaper, Direction.DOWN)
    _tc(pair, "qdisc", "replace", "dev", replaced, "root", "pfifo", "limit", "100")
    assert _gaps_soon(shaper, Direction.DOWN) == [
        f"{replaced}: its HTB was replaced by a pfifo root ChadThrottle did not create; "
        "downloads are not shaped"
    ]
    shaper.reconcile(wanted)
    eventually(lambda: shaper.enforcement_gaps() == {}, 3.0, 0.05)
    made = _ifb_of(shaper, Direction.DOWN)
    after = tc_dump(pair.host_ns)
    assert made != replaced and replaced not in after  # the old IFB went, their pfifo with it
    assert f"qdisc show dev {made}: qdisc htb c7ad: root" in after, after
    assert "class htb c7ad:1 " in after and made in _filters(pair, "ingress")
    shaper.reconcile({})
    assert "ctifb" not in tc_dump(pair.host_ns) and "chadt_tc_in" not in _filters(pair, "ingress")


def test_a_limit_cleared_after_someone_replaced_our_ifbs_htb_is_cleared(
    pair: NetnsPair, shaper: TcShaper
) -> None:
    """Before the replaced root is read (at most once a second): the class
    change failed ("tc change-class ... No such file or directory") and with
    it ClearLimit."""
    before = tc_dump(pair.host_ns)
    shaper.reconcile({Direction.DOWN: {1: LIMIT}})
    _tc(pair, "qdisc", "replace", "dev", _ifb_of(shaper, Direction.DOWN), "root", "pfifo")
    shaper.reconcile({Direction.DOWN: {1: ClassSpec(1_000_000, 131072)}})  # changed: made again
    assert "class htb c7ad:1 " in tc_dump(pair.host_ns)
    shaper.reconcile({})
    assert tc_dump(pair.host_ns) == before


def _load_tc_program(name: bytes) -> int:
    """A two-instruction SCHED_CLS program (return TC_ACT_UNSPEC); its fd."""
    code = struct.pack("<BBhi", 0xB7, 0, 0, -1) + struct.pack(
        "<BBhi", 0x95, 0, 0, 0
    )  # r0 = -1; exit
    insns, license_ = (
        ctypes.create_string_buffer(code, len(code)),
        ctypes.create_string_buffer(b"GPL"),
    )
    attr = ctypes.create_string_buffer(128)
    struct.pack_into("=II", attr, 0, BPF_PROG_TYPE_SCHED_CLS, len(code) // 8)
    struct.pack_into("=QQ", attr, 8, ctypes.addressof(insns), ctypes.addressof(license_))
    attr[48 : 48 + len(name)] = name
    return bpf_syscalls._bpf(BPF_PROG_LOAD, attr)


@contextlib.contextmanager
def _tcx_attached(pair: NetnsPair, attach_type: int, name: bytes) -> Iterator[None]:
    prog_fd = _load_tc_program(name)
    attr = ctypes.create_string_buffer(128)
    try:
        with entered_netns(pair.host_ns):
            struct.pack_into(
                "=III", attr, 0, socket.if_nametoindex(pair.host_if), prog_fd, attach_type
            )
            bpf_syscalls._bpf(bpf_syscalls.BPF_PROG_ATTACH, attr)
        try:
            yield
        finally:
            with entered_netns(pair.host_ns):
                bpf_syscalls._bpf(bpf_syscalls.BPF_PROG_DETACH, attr)
    finally:
        os.close(prog_fd)


@pytest.mark.parametrize("direction", [Direction.DOWN, Direction.UP], ids=["ingress", "egress"])
def test_a_tcx_program_on_the_uplink_is_reported(
    pair: NetnsPair, shaper: TcShaper, direction: Direction
) -> None:
    """tcx programs run before every tc filter (ingress) or the root qdisc
    (egress) of the device, and their verdict can end its processing."""
    attach_type = (
        bpf_syscalls.TCX_INGRESS if direction == Direction.DOWN else bpf_syscalls.TCX_EGRESS
    )
    shaper.reconcile({Direction.UP: {1: LIMIT}, Direction.DOWN: {1: LIMIT}})
    assert shaper.enforcement_gaps() == {}
    with _tcx_attached(pair, attach_type, b"cttcxprobe"):
        gaps = _gaps_soon(shaper, direction)
        assert len(gaps) == 1 and gaps[0].startswith(
            f"{pair.host_if}: a tcx BPF program ChadThrottle did not attach (cttcxprobe) runs first on "
        )
        assert set(shaper.enforcement_gaps()) == {direction}
