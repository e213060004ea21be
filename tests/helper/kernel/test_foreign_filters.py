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
from tests.support.netns import NetnsPair, entered_netns
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


def test_a_filter_before_ours_is_reported_and_left_exactly_as_it_was(pair: NetnsPair, shaper: TcShaper) -> None:
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


def test_a_filter_added_later_is_found_by_the_periodic_check(pair: NetnsPair, shaper: TcShaper) -> None:
    shaper.reconcile({Direction.DOWN: {1: LIMIT}})
    assert shaper.enforcement_gaps() == {}
    _tc(pair, "filter", "add", "dev", pair.host_if, "parent", "ffff:", "prio", "10", "protocol", "all",
        "u32", "match", "u32", "0", "0", "classid", "1:1")  # fmt: skip
    added = _without_ours(_filters(pair, "ingress"))
    gaps = _gaps_soon(shaper, Direction.DOWN)
    assert len(gaps) == 1 and gaps[0].startswith(f"{pair.host_if}: a u32 filter ChadThrottle did not create (prio 10)")
    shaper.reconcile({})
    assert json.loads(_filters(pair, "ingress")) == added  # ours went, theirs stayed (and the qdisc under it)


@pytest.mark.parametrize("foreign", [None, ["prio", "60000", "protocol", "ip"], ["prio", "10", "protocol", "arp"]],
                         ids=["only ours", "after ours", "not IP"])
def test_nothing_is_reported_for_filters_that_cannot_take_our_packets(pair: NetnsPair, shaper: TcShaper,
                                                                      foreign: list[str] | None) -> None:
    """Ours alone; one with a higher prio number (it sees only what ours let
    through); one for ARP, which never sees the packets we limit."""
    if foreign is not None:
        _tc(pair, "qdisc", "add", "dev", pair.host_if, "ingress")
        _tc(pair, "filter", "add", "dev", pair.host_if, "parent", "ffff:", *foreign,
            "u32", "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", "lo")  # fmt: skip
    shaper.reconcile({Direction.UP: {1: LIMIT}, Direction.DOWN: {1: LIMIT}})
    assert shaper.enforcement_gaps() == {}
    shaper._gaps = (float("-inf"), None, {})  # read again, not from the cache
    assert shaper.enforcement_gaps() == {}


def test_clsact_egress_filters_that_redirect_are_reported_and_others_are_not(pair: NetnsPair,
                                                                              shaper: TcShaper) -> None:
    """Egress filters run before the root qdisc: one that redirects takes
    packets out of our HTB; one that only classifies or mirrors does not. On a
    clsact, downloads use its ingress side, checked the same way."""
    _tc(pair, "qdisc", "add", "dev", pair.host_if, "clsact")
    for prio, action in (("10", ["classid", "1:1"]), ("11", ["action", "mirred", "egress", "mirror", "dev", "lo"]),
                         ("12", ["action", "mirred", "egress", "redirect", "dev", "lo"])):  # fmt: skip
        _tc(pair, "filter", "add", "dev", pair.host_if, "egress", "prio", prio, "protocol", "ip",
            "u32", "match", "u32", "0", "0", *action)  # fmt: skip
    _tc(pair, "filter", "add", "dev", pair.host_if, "ingress", "prio", "20000", "protocol", "ipv6",
        "u32", "match", "u32", "0", "0", "classid", "1:1")  # fmt: skip
    before = (_filters(pair, "ingress"), _filters(pair, "egress"))
    shaper.reconcile({Direction.UP: {1: LIMIT}, Direction.DOWN: {1: LIMIT}})
    lo = 1
    assert shaper.enforcement_gaps() == {
        Direction.UP: [f"{pair.host_if}: a u32 filter ChadThrottle did not create (prio 12) redirects packets to "
                       f"interface {lo} on egress, before its HTB root; uploads through {pair.host_if} may not be "
                       "limited"],
        Direction.DOWN: [f"{pair.host_if}: a u32 filter ChadThrottle did not create (prio 20000) runs before its own "
                         f"on ingress; downloads through {pair.host_if} are not limited"],
    }  # fmt: skip
    shaper.reconcile({})
    assert (_filters(pair, "ingress"), _filters(pair, "egress")) == before


def test_an_ingress_qdisc_is_not_read_as_an_egress_hook(pair: NetnsPair, shaper: TcShaper) -> None:
    """The kernel answers a dump of egress filters with an ingress qdisc's own:
    its redirect (after ours) must not be taken for an upload gap."""
    _tc(pair, "qdisc", "add", "dev", pair.host_if, "ingress")
    _tc(pair, "filter", "add", "dev", pair.host_if, "parent", "ffff:", "prio", "60000", "protocol", "ip",
        "u32", "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", "lo")  # fmt: skip
    shaper.reconcile({Direction.UP: {1: LIMIT}, Direction.DOWN: {1: LIMIT}})
    assert shaper.enforcement_gaps() == {}


def test_our_filter_gone_with_its_ingress_qdisc_is_reported(pair: NetnsPair, shaper: TcShaper) -> None:
    shaper.reconcile({Direction.DOWN: {1: LIMIT}})
    _tc(pair, "qdisc", "del", "dev", pair.host_if, "ingress")
    gaps = _gaps_soon(shaper, Direction.DOWN)
    assert gaps == [f"{pair.host_if}: the download filter ChadThrottle added on ingress is gone (its ingress qdisc "
                    f"was removed or replaced); downloads through {pair.host_if} are not limited"]  # fmt: skip


def _load_tc_program(name: bytes) -> int:
    """A two-instruction SCHED_CLS program (return TC_ACT_UNSPEC); its fd."""
    code = struct.pack("<BBhi", 0xB7, 0, 0, -1) + struct.pack("<BBhi", 0x95, 0, 0, 0)  # r0 = -1; exit
    insns, license_ = ctypes.create_string_buffer(code, len(code)), ctypes.create_string_buffer(b"GPL")
    attr = ctypes.create_string_buffer(128)
    struct.pack_into("=II", attr, 0, BPF_PROG_TYPE_SCHED_CLS, len(code) // 8)
    struct.pack_into("=QQ", attr, 8, ctypes.addressof(insns), ctypes.addressof(license_))
    attr[48:48 + len(name)] = name
    return bpf_syscalls._bpf(BPF_PROG_LOAD, attr)


@contextlib.contextmanager
def _tcx_attached(pair: NetnsPair, attach_type: int, name: bytes) -> Iterator[None]:
    prog_fd = _load_tc_program(name)
    attr = ctypes.create_string_buffer(128)
    try:
        with entered_netns(pair.host_ns):
            struct.pack_into("=III", attr, 0, socket.if_nametoindex(pair.host_if), prog_fd, attach_type)
            bpf_syscalls._bpf(bpf_syscalls.BPF_PROG_ATTACH, attr)
        try:
            yield
        finally:
            with entered_netns(pair.host_ns):
                bpf_syscalls._bpf(bpf_syscalls.BPF_PROG_DETACH, attr)
    finally:
        os.close(prog_fd)


@pytest.mark.parametrize("direction", [Direction.DOWN, Direction.UP], ids=["ingress", "egress"])
def test_a_tcx_program_on_the_uplink_is_reported(pair: NetnsPair, shaper: TcShaper, direction: Direction) -> None:
    """tcx programs run before every tc filter (ingress) or the root qdisc
    (egress) of the device, and their verdict can end its processing."""
    attach_type = bpf_syscalls.TCX_INGRESS if direction == Direction.DOWN else bpf_syscalls.TCX_EGRESS
    shaper.reconcile({Direction.UP: {1: LIMIT}, Direction.DOWN: {1: LIMIT}})
    assert shaper.enforcement_gaps() == {}
    with _tcx_attached(pair, attach_type, b"cttcxprobe"):
        gaps = _gaps_soon(shaper, direction)
        assert len(gaps) == 1 and gaps[0].startswith(
            f"{pair.host_if}: a tcx BPF program ChadThrottle did not attach (cttcxprobe) runs first on ")
        assert set(shaper.enforcement_gaps()) == {direction}
