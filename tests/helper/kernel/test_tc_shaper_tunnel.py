"""An upload limit through an in-kernel tunnel (vxlan) over a shaped uplink:
the vxlan keeps skb->priority on the packet it builds around the
application's, so the uplink's egress hook must not put that one into the
application's class of the one upload IFB again (it did: each byte counted
twice, the limit held at half)."""

from __future__ import annotations

import dataclasses
import secrets
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from chadthrottle.contract import Direction
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.htb import ClassSpec
from chadthrottle.helper.kernel.tc_shaper import TcShaper

from tests.support.netns import NetnsPair, rates_together, start_stream
from tests.support.waiting import eventually

LIMIT = ClassSpec(rate_bps=1_000_000, burst_bytes=131072)
MTU = 1450  # the veth's 1500 less vxlan's 50
SLOT = 5


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True)


@contextmanager
def vxlan_over(pair: NetnsPair) -> Iterator[NetnsPair]:
    """The pair, with its addresses on a vxlan between the namespaces over
    the veth; the devices go with the block."""
    tag = secrets.token_hex(2)
    subnet = f"10.{200 + int(tag[0], 16) % 10}.{int(tag[1:3], 16)}"
    name = f"ctx{tag}"
    tunneled = dataclasses.replace(pair, peer_addr=f"{subnet}.1", host_addr=f"{subnet}.2",
                                   host_if=name, peer_if=name)  # fmt: skip
    made: list[str] = []
    try:
        for ns, local, remote, addr in ((pair.host_ns, pair.host_addr, pair.peer_addr, tunneled.host_addr),
                                        (pair.peer_ns, pair.peer_addr, pair.host_addr, tunneled.peer_addr)):  # fmt: skip
            _ip("-n", ns, "link", "add", name, "mtu", str(MTU), "type", "vxlan", "id", str(int(tag, 16) + 1),
                "local", local, "remote", remote, "dstport", "4789", "dev",
                pair.host_if if ns == pair.host_ns else pair.peer_if)  # fmt: skip
            made.append(ns)
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", name)
            _ip("-n", ns, "link", "set", name, "up")
        yield tunneled
    finally:
        for ns in made:
            subprocess.run(["ip", "-n", ns, "link", "del", name], capture_output=True)


def _redirected_bytes(pair: NetnsPair, ifname: str) -> int:
    """Bytes the device's egress filter sent to the upload IFB."""
    shown = subprocess.run(["tc", "-n", pair.host_ns, "-s", "filter", "show", "dev", ifname, "egress"],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    sent = [int(line.split()[1]) for line in shown.splitlines() if line.strip().startswith("Sent ")]
    return sum(sent)


def _l3(payload_bps: float) -> float:
    """L3, as the limit counts (TCP with timestamps)."""
    return payload_bps * MTU / (MTU - 52)


def _ifindex(netns: str, ifname: str) -> int:
    shown = subprocess.run(["ip", "-n", netns, "-o", "link", "show", "dev", ifname],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    return int(shown.split(":", 1)[0])


def test_an_upload_limit_through_a_vxlan_holds_at_the_limit_not_half(
    pair: NetnsPair, datapath: Datapath, shaper: TcShaper, tmp_path: Path
) -> None:
    limited = tmp_path / "limited"  # the peer connects once the limit is set
    with vxlan_over(pair) as tunneled:
        stream = start_stream(tunneled, 5592, "up", seconds=30, app_serves=True, peer_when=limited,
                              congestion="cubic")  # fmt: skip
        try:
            datapath.set_process_slot(stream.app_pid, SLOT)
            shaper.reconcile({Direction.UP: {SLOT: LIMIT}})
            limited.touch()
            for ifname in (pair.host_if, tunneled.host_if):  # the condition: both devices hooked
                shown = subprocess.run(["tc", "-n", pair.host_ns, "filter", "show", "dev", ifname, "egress"],
                                       capture_output=True, text=True, check=True).stdout  # fmt: skip
                assert "chadt_tc_out" in shown, (ifname, shown)
            # The peer connects, and slow start overfills the leaf queue at first:
            # the window starts once a 0.5 s probe reads the limit within 10%, at
            # most 2 s after the limit (docs/development.md).
            settled_by = time.monotonic() + 2.0
            eventually(lambda: stream.receiver.total_bytes() > 0, settled_by - time.monotonic())
            eventually(
                lambda: (
                    abs(_l3(stream.receiver.rate_bps(0.5)) - LIMIT.rate_bps) <= 0.1 * LIMIT.rate_bps
                ),
                settled_by - time.monotonic(),
                interval_s=0.0,
            )
            (rate,) = rates_together([stream.receiver], 5.0)
            read = _l3(rate)
            outer, inner = (
                _redirected_bytes(pair, pair.host_if),
                _redirected_bytes(pair, tunneled.host_if),
            )
            print(
                f"through the vxlan: read {read / LIMIT.rate_bps:.3f} of the limit; redirected {inner} B at the vxlan, {outer} at the uplink"
            )
            assert 0.85 * LIMIT.rate_bps <= read <= 1.1 * LIMIT.rate_bps, (
                f"read {read / LIMIT.rate_bps:.3f} of the limit"
            )
            assert inner > 1_000_000, f"the vxlan's hook redirected {inner} bytes"
            assert outer < inner / 20, (
                f"the uplink's hook redirected {outer} bytes again ({inner} at the vxlan)"
            )
            # and the application's bytes are counted once, on the vxlan, not again on the uplink
            sent = {ifindex: 0 for ifindex in (_ifindex(pair.host_ns, pair.host_if),
                                               _ifindex(pair.host_ns, tunneled.host_if))}  # fmt: skip
            for sample in datapath.read_traffic():
                if sample.owner_tgid == stream.app_pid and sample.ifindex in sent:
                    sent[sample.ifindex] += sample.tx_bytes
            uplink_sent, vxlan_sent = sent.values()
            assert vxlan_sent > 1_000_000 and uplink_sent == 0, sent
        finally:
            stream.stop()
            shaper.reconcile({})
