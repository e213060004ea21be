"""A container's root may not put its packets in another application's class
at the helper's uplink by writing skb->tc_index itself (carry21).

The host end of a container's veth runs our hook (carry_slot), which writes
each packet's slot (or 0) into skb->tc_index for the uplink's egress: what a
container's own filters wrote there is never taken. But a packet an IFB sent
on carries skb->tc_skip_classify, the veth keeps it, and the host end's tc
ingress is skipped (docs/development.md, "Fifteenth round"): the container's
tc_index then reaches the uplink as if our hook had written it. Here the
container's root (a tc BPF program and an IFB of its own on its side of the
veth) writes a critical application's slot into its own UDP packets' tc_index.
Measured 2026-12-06: through its IFB, 600 of 600 landed in that application's
critical class at the uplink's upload IFB; without the IFB, none. Since
carry22 a tc_index is taken only with the slot's token in skb->hash, a random
value in a map of ours the container cannot read (and the application here
sends nothing it could read it from): none either way.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
from bcc import BPF
from chadthrottle.helper.kernel.bcc_env import prepare_bcc_environment
from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from pyroute2 import IPRoute

from bench.bottleneck import modem
from tests.e2e.conftest import Stack
from tests.e2e.test_container_priority_under_upload_limit import (
    BUFFER_MS,
    CRITICAL_PRIO,
    DOWN_L2,
    TO_L3,
    UP_L2,
    _classes,
)
from tests.support import own_names
from tests.support.container_ns import routed_container
from tests.support.helper_calls import call_helper, priorities_undone, set_priority_when_listed
from tests.support.netns import app_scope, entered_netns, nsenter_argv, spawn
from tests.support.waiting import eventually

PORT, SENT = 5099, 600
EGRESS_PARENT = 0xFFFFFFF3
# The container root's program: its packets to PORT, the first time (sent by
# a socket: ingress_ifindex 0) left to the next filter (to its IFB, with
# REDIRECT) or given the slot (without); the second time (back from the IFB)
# given the slot, with no action run (an action would clear the IFB's mark).
_FORGER = r"""
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
    if (REDIRECT && skb->ingress_ifindex == 0)
        return TC_ACT_UNSPEC;
    skb->tc_classid = SLOT;
    return TC_ACT_OK;
}
"""


def _attach_forger(netns: str, device: str, slot: int, via_ifb: bool) -> Iterator[None]:
    text = _FORGER.replace("PORT", str(PORT)).replace("SLOT", str(slot))
    program = BPF(text=text.replace("REDIRECT", "1" if via_ifb else "0").encode())
    try:
        function = program.load_func(b"forger", BPF.SCHED_CLS)
        with entered_netns(netns):
            ipr = IPRoute()
        try:
            index = ipr.link_lookup(ifname=device)[0]
            ipr.tc("add", "clsact", index)
            ipr.tc("add-filter", "bpf", index, ":1", parent=EGRESS_PARENT, prio=1,
                   fd=function.fd, name="forger", direct_action=True)  # fmt: skip
            if via_ifb:
                subprocess.run(
                    ["ip", "-n", netns, "link", "add", "ifbforge", "type", "ifb"], check=True
                )
                subprocess.run(["ip", "-n", netns, "link", "set", "ifbforge", "up"], check=True)
                subprocess.run(["tc", "-n", netns, "filter", "add", "dev", device, "egress", "prio", "2",
                                "protocol", "ip", "u32", "match", "ip", "protocol", "17", "0xff",
                                "match", "ip", "dport", str(PORT), "0xffff",
                                "action", "mirred", "egress", "redirect", "dev", "ifbforge"], check=True)  # fmt: skip
            yield
        finally:
            subprocess.run(["tc", "-n", netns, "qdisc", "del", "dev", device, "clsact"], capture_output=True)  # fmt: skip
            subprocess.run(["ip", "-n", netns, "link", "del", "ifbforge"], capture_output=True)
            ipr.close()
    finally:
        program.cleanup()


@pytest.mark.parametrize("via_ifb", [False, True])
def test_a_containers_own_tc_index_is_not_taken_for_a_slot(stack: Stack, via_ifb: bool) -> None:
    bus = stack.bus_address
    desktop_id = own_names.desktop_id("ContainerCritical", fresh=True)
    app_id = f"app:{desktop_id}"
    prepare_bcc_environment()
    with (
        modem(stack.pair, DOWN_L2, UP_L2, BUFFER_MS) as internet,
        routed_container(stack.pair, internet, "ns21f", masquerade=True) as container,
        app_scope(cgroup2_mount(), desktop_id) as scope,
        priorities_undone(bus, app_id),
    ):
        spawn(nsenter_argv(container.netns, ["sleep", "120"]), scope)
        set_priority_when_listed(bus, app_id, "critical")
        call_helper(
            bus, lambda c: c.set_link_capacity(round(DOWN_L2 * TO_L3), round(UP_L2 * TO_L3), False)
        )

        def critical() -> list[tuple[str, str]]:
            return [key for key, (prio, _) in _classes(stack.pair.host_ns).items() if prio == CRITICAL_PRIO]  # fmt: skip

        assert eventually(lambda: len(critical()) == 2, 10.0), _classes(stack.pair.host_ns)
        slot = int(critical()[0][1], 16)
        links = subprocess.run(["ip", "-n", container.netns, "-o", "link", "show"],
                               capture_output=True, text=True, check=True).stdout  # fmt: skip
        device = next(name for name in re.findall(r"^\d+: ([^:@]+)[:@]", links, re.MULTILINE) if name != "lo")  # fmt: skip
        for _ in _attach_forger(container.netns, device, slot, via_ifb):
            before = _classes(stack.pair.host_ns)
            subprocess.run(nsenter_argv(container.netns, [sys.executable, "-c",
                "import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                f"for _ in range({SENT}):\n    s.sendto(b'x' * 100, ('{internet.addr}', {PORT})); time.sleep(0.002)\n"]),
                check=True)  # fmt: skip
            after = _classes(stack.pair.host_ns)
        call_helper(bus, lambda c: c.set_link_capacity(0, 0, False))
    grew = {key: n - before.get(key, ("", 0))[1] for key, (_, n) in after.items()}
    print(f"\nvia its IFB {via_ifb}: slot {slot}, classes grew {grew}")
    link_sent = max(n for (_, minor), n in grew.items() if minor == "fffe")
    assert link_sent >= SENT, grew  # the packets reached the uplink's upload IFB
    forged = max(n for key, n in grew.items() if key in critical_keys(after))
    assert forged < SENT // 10, grew


def critical_keys(classes: dict[tuple[str, str], tuple[str, int]]) -> list[tuple[str, str]]:
    return [key for key, (prio, _) in classes.items() if prio == CRITICAL_PRIO]
