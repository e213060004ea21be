"""Could HTB share a link per user, with each user's applications inside?
(issue 16; per-user shares are not built: docs/backends.md.)

Three TCP uploads at normal priority through a link class on a veth's root
(HTB by hand with tc, quanta of 70,000 bytes as the helper's plan): user A's
two applications (A1, A2) and user B's one (B1), classified by port. Cases:

  flat      three leaves under the link (what the helper builds)
  nested    an inner class per user under the link, the user's leaves under it
  weighted  flat, B's quantum doubled (A has two classes, B one)

Prints each upload's share of the link per 4-s window.

    sudo .venv/bin/python -m bench.user_shares
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time

from tests.support.netns import netns_pair, rates_together, start_stream

LINK_BPS = 2_000_000  # bytes/s
QUANTUM = 70_000
PORTS = {"A1": 5971, "A2": 5972, "B1": 5973}
CASES = ("flat", "nested", "weighted")


def _tc(netns: str, *argv: str) -> None:
    done = subprocess.run(["tc", "-n", netns, *argv], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"tc {' '.join(argv)}: {done.stderr.strip()}")


def build(netns: str, dev: str, case: str) -> None:
    rate = f"{LINK_BPS * 8}bit"
    _tc(netns, "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "99")
    _tc(netns, "class", "add", "dev", dev, "parent", "1:", "classid", "1:1", "htb", "rate", rate, "ceil", rate,
        "quantum", str(QUANTUM))  # fmt: skip
    parents = {"A1": "1:1", "A2": "1:1", "B1": "1:1"}
    if case == "nested":
        for minor in ("10", "20"):  # user A, user B
            _tc(netns, "class", "add", "dev", dev, "parent", "1:1", "classid", f"1:{minor}", "htb",
                "rate", "40kbit", "ceil", rate, "prio", "2", "quantum", str(QUANTUM))  # fmt: skip
        parents = {"A1": "1:10", "A2": "1:10", "B1": "1:20"}
    for minor, (name, parent) in enumerate(parents.items(), start=0x31):
        quantum = QUANTUM * 2 if case == "weighted" and name == "B1" else QUANTUM
        _tc(netns, "class", "add", "dev", dev, "parent", parent, "classid", f"1:{minor:x}", "htb",
            "rate", "20kbit", "ceil", rate, "prio", "2", "quantum", str(quantum))  # fmt: skip
        _tc(netns, "qdisc", "add", "dev", dev, "parent", f"1:{minor:x}", "bfifo", "limit", "200000")
        _tc(netns, "filter", "add", "dev", dev, "parent", "1:", "protocol", "ip", "prio", "1", "u32",
            "match", "ip", "dport", str(PORTS[name]), "0xffff", "flowid", f"1:{minor:x}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=2)
    args = parser.parse_args()
    for case in CASES:
        with netns_pair() as pair:
            build(pair.host_ns, pair.host_if, case)
            streams = {
                name: start_stream(pair, port, "up", seconds=30) for name, port in PORTS.items()
            }
            try:
                time.sleep(2.0)  # past slow start
                for _ in range(args.windows):
                    rates = rates_together([s.receiver for s in streams.values()], 4.0)
                    print(f"{case:9s} " + "  ".join(f"{n} {r / LINK_BPS:.2f}" for n, r in zip(streams, rates, strict=True))
                          + f"  (load {os.getloadavg()[0]:.1f})", flush=True)  # fmt: skip
            finally:
                for stream in streams.values():
                    stream.stop()


if __name__ == "__main__":
    main()
