"""A container root's forger: a tc BPF program (and, via_ifb, an IFB of its
own) on its side of its veth that writes a slot (and a token) into its own
UDP packets to a port, for the e2e tests that check the helper's uplink does
not take them (tests/e2e/test_container_tc_index_forgery.py,
tests/e2e/test_container_token_leak.py). One source for the program text and
its attachment, so the tests forge the same way.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator

from bcc import BPF
from pyroute2 import IPRoute

from tests.support.netns import entered_netns

EGRESS_PARENT = 0xFFFFFFF3
FORGE_IFB = "ifbforge"

_HEAD = r"""
#include <uapi/linux/bpf.h>
#include <uapi/linux/pkt_cls.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/in.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/udp.h>
int forger(struct __sk_buff *skb) {
    void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    struct iphdr *ip = data + ETH_HLEN;
    if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_UDP || ip->ihl != 5)
        return TC_ACT_UNSPEC;
    struct udphdr *udp = (void *)(ip + 1);
    if ((void *)(udp + 1) > end || udp->dest != htons(PORT))
        return TC_ACT_UNSPEC;
"""


def forger_text(port: int, slot: int, *, via_ifb: bool, token: int | None = None) -> str:
    """The program's C text. Its packets to port: via_ifb, the first time
    (sent by a socket: ingress_ifindex 0) left to the next filter (to its
    IFB), the second time (back from the IFB) given the slot; without, given
    the slot at once. With no action run (an action would clear the IFB's
    mark); with a token, that written into skb->hash as well."""
    body = _HEAD.replace("PORT", str(port))
    if via_ifb:
        body += "    if (skb->ingress_ifindex == 0)\n        return TC_ACT_UNSPEC;\n"
    body += f"    skb->tc_classid = {slot};\n"
    if token is not None:
        body += f"    bpf_set_hash(skb, {token}u);\n"
    return body + "    return TC_ACT_OK;\n}\n"


@contextlib.contextmanager
def forging(
    netns: str, device: str, port: int, slot: int, *, via_ifb: bool, token: int | None = None
) -> Iterator[None]:
    """The forger on device's egress in netns (and via_ifb its IFB, packets
    to port redirected there). Only what it added is removed after: a clsact
    the helper put there stays, its own filters go."""
    program = BPF(text=forger_text(port, slot, via_ifb=via_ifb, token=token).encode())
    with entered_netns(netns):
        ipr = IPRoute()
    added_clsact = False
    try:
        function = program.load_func(b"forger", BPF.SCHED_CLS)
        index = ipr.link_lookup(ifname=device)[0]
        added_clsact = subprocess.run(["tc", "-n", netns, "qdisc", "add", "dev", device, "clsact"], capture_output=True).returncode == 0  # fmt: skip
        ipr.tc("add-filter", "bpf", index, ":1", parent=EGRESS_PARENT, prio=1,
               fd=function.fd, name="forger", direct_action=True)  # fmt: skip
        if via_ifb:
            subprocess.run(["ip", "-n", netns, "link", "add", FORGE_IFB, "type", "ifb"], check=True)
            subprocess.run(["ip", "-n", netns, "link", "set", FORGE_IFB, "up"], check=True)
            subprocess.run(["tc", "-n", netns, "filter", "add", "dev", device, "egress", "prio", "2",
                            "protocol", "ip", "u32", "match", "ip", "protocol", "17", "0xff",
                            "match", "ip", "dport", str(port), "0xffff",
                            "action", "mirred", "egress", "redirect", "dev", FORGE_IFB], check=True)  # fmt: skip
        yield
    finally:
        if added_clsact:
            subprocess.run(["tc", "-n", netns, "qdisc", "del", "dev", device, "clsact"], capture_output=True)  # fmt: skip
        else:
            for prio in ("1", "2"):
                subprocess.run(["tc", "-n", netns, "filter", "del", "dev", device, "egress", "prio", prio], capture_output=True)  # fmt: skip
        subprocess.run(["ip", "-n", netns, "link", "del", FORGE_IFB], capture_output=True)
        ipr.close()
        program.cleanup()
