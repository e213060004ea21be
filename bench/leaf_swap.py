"""A linked class's bfifo leaf swapped for a cutting TBF (issue 13;
docs/backends.md, "Under a link capacity"): what the check costs and what a
swap loses.

    sudo .venv/bin/python -m bench.leaf_swap check [--leaves 1000] [--repeat 200]
    sudo .venv/bin/python -m bench.leaf_swap loss [--runs 5] [--udp]

check: a linked HtbHierarchy on a veth with that many application classes
(bfifo leaves, as classes made without a limit have); the time to learn one
leaf's queue by a dump of every qdisc (pyroute2, as before), by pyroute2's
single get, and by one RTM_GETQDISC on the class changer's socket; median
and 90th percentile.

loss: one class made without a limit, a TCP stream (or a UDP flood above the
limit) through it at full speed, then a 300 KiB/s limit: the tree is synced
every 0.25 s (as the engine's tick does) until the leaf is a TBF. Reported:
how many syncs and seconds that took, the packets and bytes in the bfifo
read just before that sync and as the swap read them (what it dropped: its
debug record), and the sender's TCP retransmissions over the 2 s after the
limit.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Callable

from chadthrottle.contract import Direction
from chadthrottle.helper.kernel import tbf_leaf
from chadthrottle.helper.kernel.htb import ClassSpec, HtbHierarchy, _leaf_handle
from chadthrottle.helper.kernel.htb_change import ClassChanger
from chadthrottle.helper.kernel.layout import class_id
from chadthrottle.helper.kernel.priority_classes import LinkShaping
from pyroute2 import IPRoute

from tests.support.netns import NetnsPair, entered_netns, netns_pair

LINK = LinkShaping(20 << 20)
FRAME = tbf_leaf.largest_frame([(1500, True)])
LIMIT = 300 * 1024
PORT = 5673


def _tree(ipr: IPRoute, pair: NetnsPair, changer: ClassChanger) -> HtbHierarchy:
    ifindex = ipr.link_lookup(ifname=pair.host_if)[0]
    return HtbHierarchy(ipr, ifindex, Direction.UP, l3_to_l2=1514 / 1500, changer=changer,
                        link=LINK, frame_bytes=FRAME)  # fmt: skip


def _timed(probe: Callable[[], object], repeat: int) -> str:
    took = []
    for _ in range(repeat):
        began = time.perf_counter()
        probe()
        took.append((time.perf_counter() - began) * 1000)
    took.sort()
    return f"median {statistics.median(took):.3f} ms, p90 {took[int(len(took) * 0.9)]:.3f} ms"


def check(leaves: int, repeat: int) -> None:
    with netns_pair() as pair:
        with entered_netns(pair.host_ns):
            ipr = IPRoute()
            changer = ClassChanger.beside(ipr.fileno())
        assert changer is not None
        tree = _tree(ipr, pair, changer)
        tree.create()
        tree.sync({slot: ClassSpec(0, 0) for slot in range(1, leaves + 1)}, 0.0)
        slot, ifindex = leaves // 2, tree.ifindex
        handle, parent = _leaf_handle(slot), class_id(slot)

        def dump() -> object:
            return [m for m in ipr.get_qdiscs(index=ifindex) if m["parent"] == parent]

        def pyroute2_get() -> object:
            return ipr.tc(
                "get", index=ifindex, handle=handle, parent=parent
            )  # an ack alone (no ECHO)

        def raw_get() -> object:
            return changer.query(
                lambda seq: tbf_leaf.qdisc_get_message(seq, ifindex, handle, parent), "get"
            )

        print(f"{leaves} leaves; qdiscs on the device: {len(list(ipr.get_qdiscs(index=ifindex)))}")
        for name, probe in (("dump", dump), ("pyroute2 get", pyroute2_get), ("raw get", raw_get)):
            print(f"  {name}: {_timed(probe, repeat)}")
        print(f"  tree._leaf_queue: {_timed(lambda: tree._leaf_queue(slot), repeat)}")
        tree.delete()
        changer.close()
        ipr.close()


def _retrans(ns: str) -> int:
    out = subprocess.run(["ip", "netns", "exec", ns, "nstat", "-az", "TcpRetransSegs"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return int(
        next(line.split()[1] for line in out.splitlines() if line.startswith("TcpRetransSegs"))
    )


def _flood(pair: NetnsPair, udp: bool, stop: threading.Event) -> threading.Thread:
    """A full-speed stream from the host namespace to the peer, through the
    class (by an u32 filter on the port)."""
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    with entered_netns(pair.peer_ns):
        server = socket.socket(socket.AF_INET, kind)
        server.bind((pair.peer_addr, PORT))
        if not udp:
            server.listen()
    with entered_netns(pair.host_ns):
        client = socket.socket(socket.AF_INET, kind)
    client.connect((pair.peer_addr, PORT))
    reader = server if udp else server.accept()[0]
    reader.settimeout(0.5)

    def read() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                reader.recv(1 << 20)

    def send() -> None:
        chunk = b"x" * (1400 if udp else 65536)
        while not stop.is_set():
            try:
                client.send(chunk)
            except OSError:
                time.sleep(0.001)
        client.close()
        reader.close()
        server.close()

    threading.Thread(target=read, daemon=True).start()
    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    return sender


class _Swaps(logging.Handler):
    """The swap's own record of what it dropped (htb.py logs it at debug)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.said: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "swapped" in record.getMessage():
            self.said.append(record.getMessage().split(": ", 1)[1])


def loss(runs: int, udp: bool) -> None:
    swaps = _Swaps()
    htb_log = logging.getLogger("chadthrottle.kernel.htb")
    htb_log.setLevel(logging.DEBUG)
    htb_log.addHandler(swaps)
    for run in range(runs):
        swaps.said.clear()
        with netns_pair() as pair:
            with entered_netns(pair.host_ns):
                ipr = IPRoute()
                changer = ClassChanger.beside(ipr.fileno())
            assert changer is not None
            tree = _tree(ipr, pair, changer)
            tree.create()
            slot = 7
            tree.sync({slot: ClassSpec(0, 0)}, 0.0)
            subprocess.run(["tc", "-n", pair.host_ns, "filter", "add", "dev", pair.host_if, "parent",
                            f"{class_id(slot) >> 16:x}:", "protocol", "ip", "prio", "1", "u32", "match",
                            "ip", "dport", str(PORT), "0xffff", "flowid",
                            f"{class_id(slot) >> 16:x}:{slot:x}"], check=True)  # fmt: skip
            stop = threading.Event()
            sender = _flood(pair, udp, stop)
            time.sleep(2.0)
            before = _retrans(pair.host_ns)
            began, syncs, seen = time.monotonic(), 0, None
            while time.monotonic() - began < 5.0:
                seen = tree._leaf_queue(slot)
                tree.sync({slot: ClassSpec(LIMIT, 131072)}, 0.0)
                syncs += 1
                if slot not in tree._leaf_limits:
                    break
                time.sleep(0.25)
            took = time.monotonic() - began
            time.sleep(max(0.0, 2.0 - took))
            resent = _retrans(pair.host_ns) - before
            stop.set()
            sender.join(2.0)
            swapped = slot not in tree._leaf_limits
            print(f"run {run}: {'swapped' if swapped else 'NOT swapped'} at sync {syncs} "
                  f"({took:.2f} s); bfifo before that sync {seen}; {swaps.said}; resent in 2 s: {resent}")  # fmt: skip
            tree.delete()
            changer.close()
            ipr.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=("check", "loss"))
    parser.add_argument("--leaves", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--udp", action="store_true")
    args = parser.parse_args()
    if args.mode == "check":
        check(args.leaves, args.repeat)
    else:
        loss(args.runs, args.udp)


if __name__ == "__main__":
    main()
