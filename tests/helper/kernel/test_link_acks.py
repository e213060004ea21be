"""A download's acknowledgements under a link skip the bulk upload (issue 16,
ack25): with an untagged bulk upload and an untagged bulk download at once,
over IPv4 and over IPv6 (TCP timestamps on: 52-byte IPv4, 72-byte IPv6 ACKs,
more with SACK blocks), the upload IFB sends the download's acknowledgements
from the acknowledgement class (htb.ACK_MINOR, by the u32 on the tree's root)
and only the upload's full frames from the default class. An acknowledgement
in the default class waits behind the upload's leaf (~110 ms at this link),
the remote senders then send in bursts (docs/backends.md,
"Acknowledgements").

The peer sends one segment a packet (its veth's gso_max_segs 1), as a modem
delivers them: a veth passes a GSO super-packet whole, and its receiver then
acknowledges once per 64 KB, too few acknowledgements to tell the classes apart."""

from __future__ import annotations

import random
import re
import subprocess

import pytest
from chadthrottle.contract import Direction
from chadthrottle.helper.kernel.htb import ACK_MINOR, DEFAULT_MINOR
from chadthrottle.helper.kernel.layout import HTB_MAJOR
from chadthrottle.helper.kernel.priority_classes import LinkShaping
from chadthrottle.helper.kernel.tc_shaper import TcShaper

from tests.support.netns import NetnsPair, start_stream

LINK = LinkShaping(capacity_bps=1_250_000)  # 10 Mbit/s each way
FULL_FRAME_BYTES = 1514  # as HTB counts a full segment on the veth (IPv4 and IPv6 alike)
MSS_BYTES = {4: 1448, 6: 1428}  # with TCP timestamps


def _sent(pair: NetnsPair, shaper: TcShaper, minor: int) -> tuple[int, int]:
    """(bytes, packets) the upload IFB's class has sent."""
    (ifb,) = {hook.ifb_name for hook in shaper._hooks[Direction.UP].values()}
    shown = subprocess.run(["tc", "-n", pair.host_ns, "-s", "class", "show", "dev", ifb, "classid",
                            f"{HTB_MAJOR:x}:{minor:x}"], capture_output=True, text=True, check=True).stdout  # fmt: skip
    sent = re.search(r"Sent (\d+) bytes (\d+) pkt", shown)
    assert sent is not None, shown
    return int(sent.group(1)), int(sent.group(2))


@pytest.mark.parametrize("family", [4, 6])
def test_a_downloads_acknowledgements_skip_the_bulk_upload(
    pair: NetnsPair, shaper: TcShaper, family: int
) -> None:
    subprocess.run(["ip", "-n", pair.peer_ns, "link", "set", pair.peer_if, "gso_max_segs", "1"],
                   check=True)  # fmt: skip
    for direction in Direction:
        shaper.set_link(direction, LINK)
    shaper.reconcile({})
    port = random.randrange(20000, 60000)
    streams = [start_stream(pair, port, "up", family=family, seconds=2.0),
               start_stream(pair, port + 1, "down", family=family, seconds=2.0)]  # fmt: skip
    try:
        received = [stream.wait() for stream in streams]
    finally:
        for stream in streams:
            stream.stop()
    assert min(received) > 0.3 * LINK.capacity_bps, f"{received} bytes: not both ways busy"
    default_bytes, default_packets = _sent(pair, shaper, DEFAULT_MINOR)
    _, acks = _sent(pair, shaper, ACK_MINOR)
    # about one acknowledgement per two of the download's segments (delayed ACKs)
    segments = received[1] / MSS_BYTES[family]
    assert acks > segments / 4, (
        f"{acks} packets in the acknowledgement class, {segments:.0f} received"
    )
    # the upload's data alone: full frames (a few shorter last segments); the
    # acknowledgements there would bring the mean to ~1,000 bytes
    assert default_bytes / default_packets > 0.97 * FULL_FRAME_BYTES, (
        f"default class: {default_packets} packets of {default_bytes / default_packets:.0f} bytes"
        f" on average beside {acks} in the acknowledgement class: small packets in it"
    )
