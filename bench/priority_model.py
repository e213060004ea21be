"""The priority tree on the host namespace's link, classified by port: the
mechanism of issue 16 measured before the helper drives it.

The helper's own HtbHierarchy (helper/kernel/htb.py) builds the tree, given
a link capacity (helper/kernel/priority_classes.py: link class just under
the capacity, one class per prioritized application, the default class for
the rest). The helper's kernel layer classifies every packet into it per
application (TcShaper.set_link: skb->priority and cls_bpf, a catch-all for
the rest; bench/priority_shaper.py, the "tagged" case); here, the model,
u32 filters put the call's UDP port into its class and everything else
falls into the default class.
Uploads: the tree is the root of the host's veth. Downloads: the veth's
ingress redirects every packet to an IFB whose root is the same tree.
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
from collections.abc import Iterator

from chadthrottle.contract import Direction
from chadthrottle.helper.kernel.htb import ROOT_HANDLE, ClassSpec, HtbHierarchy
from chadthrottle.helper.kernel.priority_classes import LinkShaping
from chadthrottle.priority import Priority
from pyroute2 import IPRoute

from tests.support.netns import NetnsPair, entered_netns

CALL_SLOT = 1
ACK_SLOT = 2
ETHERNET_L3_TO_L2 = 1514 / 1500  # full frames: the link counts from the Ethernet header


def _tc(*argv: str) -> None:
    """Run tc; its complaint, if any, in the error."""
    done = subprocess.run(["tc", *argv], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"tc {' '.join(argv)}: {done.stderr.strip()}")


def _classify_port(ns: str, device: str, field: str, port: int) -> None:
    """u32: UDP packets with this source or destination port -> the call's class."""
    _tc("-n", ns, "filter", "add", "dev", device, "parent", f"{ROOT_HANDLE >> 16:x}:", "protocol", "ip", "prio", "1",
        "u32", "match", "ip", "protocol", "17", "0xff", "match", "ip", field, str(port), "0xffff",
        "flowid", f"{ROOT_HANDLE >> 16:x}:{CALL_SLOT:x}")  # fmt: skip


def _classify_small_tcp(ns: str, device: str) -> None:
    """u32: TCP packets under 128 bytes (acknowledgements, mostly) -> their own class."""
    _tc("-n", ns, "filter", "add", "dev", device, "parent", f"{ROOT_HANDLE >> 16:x}:", "protocol", "ip", "prio", "2",
        "u32", "match", "ip", "protocol", "6", "0xff", "match", "u16", "0x0000", "0xff80", "at", "2",
        "flowid", f"{ROOT_HANDLE >> 16:x}:{ACK_SLOT:x}")  # fmt: skip


@contextlib.contextmanager
def prioritized(pair: NetnsPair, down_bps: int, up_bps: int, call_port: int,
                priority: Priority = Priority.CRITICAL, acks: Priority | None = None) -> Iterator[None]:  # fmt: skip
    """The call at `priority`, all else normal, shaped under the link capacity
    (L2 bytes/s as the modem counts, converted to the tree's L3), until the
    block ends. acks: small TCP packets in a class of their own at that priority."""
    ns, ifb = pair.host_ns, f"ctq{secrets.token_hex(3)}"
    wanted = {CALL_SLOT: ClassSpec(0, 0, priority)}  # rate 0: no limit, a class for the priority
    if acks is not None:
        wanted[ACK_SLOT] = ClassSpec(0, 0, acks)
    subprocess.run(
        ["ip", "-n", ns, "link", "add", ifb, "type", "ifb"], check=True, capture_output=True
    )
    trees: list[HtbHierarchy] = []
    with entered_netns(ns):
        ipr = IPRoute()
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", ifb, "up"], check=True, capture_output=True)
        for device, capacity, direction, field in ((pair.host_if, up_bps, Direction.UP, "dport"),
                                                   (ifb, down_bps, Direction.DOWN, "sport")):  # fmt: skip
            link = LinkShaping(round(capacity / ETHERNET_L3_TO_L2))
            index = ipr.link_lookup(ifname=device)[0]
            tree = HtbHierarchy(ipr, index, direction, l3_to_l2=ETHERNET_L3_TO_L2, link=link)
            trees.append(tree)
            tree.create()
            tree.sync(wanted)
            _classify_port(ns, device, field, call_port)
            if acks is not None:
                _classify_small_tcp(ns, device)
        _tc("-n", ns, "qdisc", "add", "dev", pair.host_if, "ingress")
        _tc("-n", ns, "filter", "add", "dev", pair.host_if, "parent", "ffff:", "protocol", "all", "prio", "1",
            "u32", "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", ifb)  # fmt: skip
        yield
    finally:
        subprocess.run(
            ["tc", "-n", ns, "qdisc", "del", "dev", pair.host_if, "ingress"], capture_output=True
        )
        for tree in trees:
            tree.delete()
        ipr.close()
        subprocess.run(["ip", "-n", ns, "link", "del", ifb], capture_output=True)
