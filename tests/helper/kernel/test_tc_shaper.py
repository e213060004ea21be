"""The tc shaper on a real veth in a namespace: creates what limits need,
removes it with the last limit, and never touches a qdisc it did not create."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest
from pyroute2 import IPRoute

from chadthrottle.contract import Direction
from chadthrottle.helper.errors import BackendUnavailable
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.layout import HTB_MAJOR
from chadthrottle.helper.kernel.htb import ClassSpec
from chadthrottle.helper.kernel.tc_shaper import TcShaper, remove_leftovers
from tests.support.netns import NetnsPair, entered_netns, start_stream, tc_dump, tc_shaper_in
from tests.support.tun_link import tun_link

LIMIT = ClassSpec(rate_bps=1_000_000, burst_bytes=131072)
VETH_L3_TO_L2 = (1500 + 14) / 1500  # HTB counts from the Ethernet header; limits are at L3


def _tc_rate(rate_bps: int) -> str:
    """How tc prints the HTB rate the shaper sets for an L3 limit on the veth."""
    return f"rate {round(rate_bps * VETH_L3_TO_L2) * 8 // 1000}Kbit"


@pytest.fixture
def datapath(kernel_ready) -> Iterator[Datapath]:  # type: ignore[no-untyped-def]
    path = Datapath(cache_dir=kernel_ready)
    path.open()
    try:
        yield path
    finally:
        path.close()


@pytest.fixture
def shaper(pair: NetnsPair, datapath: Datapath) -> Iterator[TcShaper]:
    with tc_shaper_in(pair.host_ns, datapath) as created:
        yield created


def test_first_limit_creates_and_last_removes_everything(pair: NetnsPair, shaper: TcShaper) -> None:
    before = tc_dump(pair.host_ns)
    shaper.reconcile({Direction.UP: {1: LIMIT}, Direction.DOWN: {2: LIMIT}})
    during = tc_dump(pair.host_ns)
    assert f"qdisc htb {HTB_MAJOR:x}: root" in during
    assert "chadt_tc_in" in during and "ctifb" in during
    assert shaper.active_directions() == {Direction.UP, Direction.DOWN}
    shaper.reconcile({Direction.UP: {1: LIMIT}})
    assert "ctifb" not in tc_dump(pair.host_ns)
    shaper.reconcile({})
    assert tc_dump(pair.host_ns) == before


def test_changing_a_rate_changes_the_class(pair: NetnsPair, shaper: TcShaper) -> None:
    shaper.reconcile({Direction.UP: {7: LIMIT}})
    shaper.reconcile({Direction.UP: {7: ClassSpec(4_000_000, 262144)}})
    classes = subprocess.run(["tc", "-n", pair.host_ns, "class", "show", "dev", pair.host_if],
                             capture_output=True, text=True, check=True).stdout
    assert _tc_rate(4_000_000) in classes and _tc_rate(1_000_000) not in classes


def test_foreign_root_qdisc_is_refused_and_left_intact(pair: NetnsPair, shaper: TcShaper) -> None:
    subprocess.run(["tc", "-n", pair.host_ns, "qdisc", "add", "dev", pair.host_if, "root", "handle", "1:",
                    "tbf", "rate", "1gbit", "burst", "1mb", "latency", "50ms"], check=True)
    before = tc_dump(pair.host_ns)
    with pytest.raises(BackendUnavailable, match="did not create"):
        shaper.reconcile({Direction.UP: {1: LIMIT}})
    assert tc_dump(pair.host_ns) == before


def test_a_root_qdisc_the_kernel_attached_is_replaced_and_comes_back(pair: NetnsPair, shaper: TcShaper) -> None:
    """A multi-queue device gets the kernel's mq root, handle 0, as a device gets
    whatever net.core.default_qdisc names (fq, cake, ...): HTB takes its place
    while uploads are limited, and the kernel's own is back after the last."""
    subprocess.run(["ip", "-n", pair.host_ns, "tuntap", "add", "dev", "ctmq0", "mode", "tun", "multi_queue"],
                   check=True)
    try:
        subprocess.run(["ip", "-n", pair.host_ns, "link", "set", "ctmq0", "up"], check=True)
        before = tc_dump(pair.host_ns)
        assert "qdisc mq 0: root" in before
        shaper.reconcile({Direction.UP: {1: LIMIT}})
        during = subprocess.run(["tc", "-n", pair.host_ns, "qdisc", "show", "dev", "ctmq0"],
                                capture_output=True, text=True, check=True).stdout
        assert f"qdisc htb {HTB_MAJOR:x}: root" in during and "mq" not in during
        shaper.reconcile({})
        assert tc_dump(pair.host_ns) == before
    finally:
        subprocess.run(["ip", "-n", pair.host_ns, "link", "del", "ctmq0"], check=False)


def test_leftovers_of_a_killed_helper_are_removed(pair: NetnsPair, datapath: Datapath) -> None:
    before = tc_dump(pair.host_ns)
    with entered_netns(pair.host_ns):
        ipr = IPRoute()
    try:
        TcShaper(ipr, datapath.tc_ingress_program, datapath).reconcile({Direction.UP: {1: LIMIT}, Direction.DOWN: {1: LIMIT}})
        assert tc_dump(pair.host_ns) != before  # abandoned, as by SIGKILL
        assert remove_leftovers(ipr) >= 3
        assert tc_dump(pair.host_ns) == before
    finally:
        ipr.close()


def test_removing_one_of_two_classes_keeps_the_other(pair: NetnsPair, shaper: TcShaper) -> None:
    shaper.reconcile({Direction.UP: {1: LIMIT, 2: LIMIT}, Direction.DOWN: {1: LIMIT, 2: LIMIT}})
    shaper.reconcile({Direction.UP: {1: LIMIT}, Direction.DOWN: {1: LIMIT}})
    classes = subprocess.run(["tc", "-n", pair.host_ns, "class", "show", "dev", pair.host_if],
                             capture_output=True, text=True, check=True).stdout
    assert f"{HTB_MAJOR:x}:1 " in classes and f"{HTB_MAJOR:x}:2 " not in classes


def test_a_lifted_limit_drains_before_its_class_goes(pair: NetnsPair, datapath: Datapath) -> None:
    before = tc_dump(pair.host_ns)
    with tc_shaper_in(pair.host_ns, datapath, retire_after_s=0.3) as shaper:
        shaper.reconcile({Direction.UP: {3: LIMIT}})
        shaper.reconcile({})
        classes = subprocess.run(["tc", "-n", pair.host_ns, "class", "show", "dev", pair.host_if],
                                 capture_output=True, text=True, check=True).stdout
        assert f"class htb {HTB_MAJOR:x}:3 " in classes and "rate 100Gbit" in classes.split(f"{HTB_MAJOR:x}:3 ")[1]
        assert shaper.active_directions() == set()
        time.sleep(0.35)
        shaper.reconcile({})
        assert tc_dump(pair.host_ns) == before


def test_a_thousand_applications_get_a_thousand_independent_classes(pair: NetnsPair, shaper: TcShaper) -> None:
    before = tc_dump(pair.host_ns)
    wanted = {slot: ClassSpec(rate_bps=100_000 + slot * 1000, burst_bytes=131072) for slot in range(1, 1001)}
    shaper.reconcile({Direction.UP: wanted, Direction.DOWN: wanted})
    classes = subprocess.run(["tc", "-n", pair.host_ns, "class", "show", "dev", pair.host_if],
                             capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(classes) == 1001  # and the default class
    assert any(f"{HTB_MAJOR:x}:3e8 " in line and _tc_rate(1_100_000) in line for line in classes)  # slot 1000
    shaper.reconcile({})
    assert tc_dump(pair.host_ns) == before


@pytest.mark.parametrize("direction", [Direction.DOWN, Direction.UP], ids=["download", "upload"])
def test_traffic_over_a_link_without_ethernet_headers_is_shaped(pair: NetnsPair, datapath: Datapath,
                                                                shaper: TcShaper, direction: Direction) -> None:
    """VPNs (tun, WireGuard) and PPP hand tc packets that begin with the IP
    header: read as Ethernet frames, no download matched and none was limited.
    Uploads are classified before any header (skb->priority) and HTB counts
    from the IP header there, as the limit does."""
    with tun_link(pair) as tunneled:
        # the application listens; the peer connects a second later, once it is limited
        stream = start_stream(tunneled, 5590 if direction is Direction.DOWN else 5591, direction.value, seconds=30,
                              app_serves=True, peer_after_s=1.0)  # fmt: skip
        try:
            datapath.set_process_slot(stream.app_pid, 3)
            shaper.reconcile({direction: {3: LIMIT}})
            if direction is Direction.DOWN:
                assert "chadt_tc_in_l3" in tc_dump(pair.host_ns)
            time.sleep(1.0 + 2.0)  # slow start overfills the leaf queue at first (no window clamp here)
            read = stream.receiver.rate_bps(4.0) * 1500 / 1448  # L3, as the limit counts
            assert 0.9 * LIMIT.rate_bps <= read <= 1.1 * LIMIT.rate_bps, f"read {read / LIMIT.rate_bps:.3f} of the limit"
        finally:
            stream.stop()
            shaper.reconcile({})
