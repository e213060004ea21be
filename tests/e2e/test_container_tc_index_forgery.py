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

import pytest
from chadthrottle.helper.kernel.bcc_env import prepare_bcc_environment
from chadthrottle.helper.kernel.cgroups import cgroup2_mount

from bench.bottleneck import modem
from tests.e2e.conftest import Stack
from tests.e2e.test_container_priority_under_upload_limit import (
    BUFFER_MS,
    DOWN_L2,
    UP_L2,
    _classes,
    assert_none_critical,
    critical_at_the_link,
)
from tests.support import own_names
from tests.support.container_forger import forging
from tests.support.container_ns import routed_container
from tests.support.helper_calls import priorities_undone
from tests.support.netns import app_scope, nsenter_argv

PORT, SENT = 5099, 600


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
        critical_at_the_link(stack, app_id, scope, container.netns) as slot,
    ):
        links = subprocess.run(["ip", "-n", container.netns, "-o", "link", "show"],
                               capture_output=True, text=True, check=True).stdout  # fmt: skip
        device = next(name for name in re.findall(r"^\d+: ([^:@]+)[:@]", links, re.MULTILINE) if name != "lo")  # fmt: skip
        # the container root's forger (tests/support/container_forger.py): the
        # first time through its IFB (via_ifb) or given the slot at once
        with forging(container.netns, device, PORT, slot, via_ifb=via_ifb):
            before = _classes(stack.pair.host_ns)
            subprocess.run(nsenter_argv(container.netns, [sys.executable, "-c",
                "import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                f"for _ in range({SENT}):\n    s.sendto(b'x' * 100, ('{internet.addr}', {PORT})); time.sleep(0.002)\n"]),
                check=True)  # fmt: skip
            after = _classes(stack.pair.host_ns)
    assert_none_critical(before, after, SENT, f"via its IFB {via_ifb}: slot {slot}, ")
