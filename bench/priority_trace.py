"""Why does a queue stay at the modem under the priority tree? A timeline.

Runs the "tagged" case of bench/priorities.py (the tree the helper's kernel
layer builds on the host namespace's IFBs, the call critical) and samples,
every --sample-ms: the modem's download and upload backlog and drops, our
download IFB's tree (each leaf's backlog and drops, the packets and bytes it
sent: their mean size shows GRO super-packets), and the bulk download
senders' TCP state (cwnd, bytes in flight, pacing rate: `ss -tin` in the
internet namespace). Prints the backlog's percentiles, and what the other
counters read around the samples with the most queue at the modem.

    sudo .venv/bin/python -m bench.priority_trace --down 6.25M --up 1.25M [--seconds 10]
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from bench.bottleneck import modem
from bench.priorities import TSO_RTT_LOG, Bench, _percentile, _rate_arg
from tests.support.netns import netns_pair, nsenter_argv

SS_FIELDS = re.compile(
    r"cwnd:(\d+).*?bytes_sent:(\d+).*?(?:unacked:(\d+))?.*?pacing_rate (\S+)", re.S
)


@dataclass
class Sample:
    at: float
    modem_down: int
    modem_down_drops: int
    leaves: dict[str, tuple[int, int, int, int]] = field(
        default_factory=dict
    )  # handle -> backlog, drops, pkts, bytes
    senders: list[tuple[int, int]] = field(
        default_factory=list
    )  # (cwnd, unacked) per download flow


def _json(argv: list[str]) -> list[dict]:
    return json.loads(
        subprocess.run(argv, capture_output=True, text=True, check=True).stdout or "[]"
    )


def _ifb(netns: str) -> list[str]:
    links = _json(["ip", "-n", netns, "-j", "link", "show", "type", "ifb"])
    return [link["ifname"] for link in links]


def _leaves(netns: str, device: str) -> dict[str, tuple[int, int, int, int]]:
    return {f"{q['kind']} {q['handle']}": (q.get("backlog", 0), q.get("drops", 0), q.get("packets", 0),
                                          q.get("bytes", 0))
            for q in _json(["tc", "-n", netns, "-s", "-j", "qdisc", "show", "dev", device])}  # fmt: skip


def _senders(netns: str, source_ports: range) -> list[tuple[int, int]]:
    text = subprocess.run(nsenter_argv(netns, ["ss", "-tin", "state", "established"]), capture_output=True,
                          text=True).stdout  # fmt: skip
    flows = []
    for block in re.split(r"\n(?=\S)", text):
        local = re.search(r":(\d+)\s+\S+:\d+", block)
        if not local or int(local.group(1)) not in source_ports:
            continue
        cwnd = re.search(r"cwnd:(\d+)", block)
        unacked = re.search(r"unacked:(\d+)", block)
        flows.append((int(cwnd.group(1)) if cwnd else 0, int(unacked.group(1)) if unacked else 0))
    return flows


def _fine(
    host_ns: str,
    internet,
    ifbs: list[str],
    aliases: dict[str, str],
    stop: threading.Event,
    out: list[tuple[float, int, int, int]],
) -> None:
    """Every ~2 ms over netlink: (t, modem download backlog, data packets our
    download tree released so far, small TCP packets our upload tree released)."""
    from pyroute2 import IPRoute

    from tests.support.netns import entered_netns

    with entered_netns(internet.modem_ns):
        modem_ipr = IPRoute()
    with entered_netns(host_ns):
        host_ipr = IPRoute()
    down = next(n for n in ifbs if "download" in aliases[n])
    up = next(n for n in ifbs if "upload" in aliases[n])
    modem_index = modem_ipr.link_lookup(ifname=internet.down_dev)[0]
    down_index, up_index = host_ipr.link_lookup(ifname=down)[0], host_ipr.link_lookup(ifname=up)[0]

    def leaf_packets(index: int, major: int) -> int:
        for q in host_ipr.get_qdiscs(index=index):
            if q["handle"] >> 16 == major:
                return q.get_attr("TCA_STATS2").get_attr("TCA_STATS_BASIC")["packets"]
        return 0

    began = time.monotonic()
    while not stop.is_set():
        q = next(m for m in modem_ipr.get_qdiscs(index=modem_index) if m["parent"] == 0xFFFFFFFF)
        backlog = q.get_attr("TCA_STATS2").get_attr("TCA_STATS_QUEUE")["backlog"]
        out.append(
            (
                time.monotonic() - began,
                backlog,
                leaf_packets(down_index, 0xFFFD),
                leaf_packets(up_index, 0xFFFC),
            )
        )
        time.sleep(0.002)
    modem_ipr.close()
    host_ipr.close()


def _report_fine(fine: list[tuple[float, int, int, int]], down_bps: int) -> None:
    """Per 10 ms bins: the modem's queue, data our tree released, acknowledgements sent."""
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(fine)]
    print(
        f"fine: {len(fine)} samples, gap p50 {_percentile(gaps, 0.5) * 1000:.1f} ms p99 "
        f"{_percentile(gaps, 0.99) * 1000:.1f} ms max {max(gaps) * 1000:.1f} ms"
    )
    ms = [f[1] / down_bps * 1000 for f in fine]
    print(
        f"fine modem queue ms: p50 {_percentile(ms, 0.5):.1f} p90 {_percentile(ms, 0.9):.1f} "
        f"p99 {_percentile(ms, 0.99):.1f} max {max(ms):.1f}"
    )
    peak = max(range(len(fine)), key=lambda i: fine[i][1])
    for i in range(max(1, peak - 60), min(len(fine), peak + 15), 3):
        a, b = fine[i - 1], fine[i]
        print(
            f"  t={b[0]:7.3f} modemq={b[1] / 1000:6.1f}K data+={b[2] - a[2]:3d} acks+={b[3] - a[3]:3d}"
            f" (over {1000 * (b[0] - a[0]):.1f} ms)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.priority_trace", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--down", type=_rate_arg, default=_rate_arg("6.25M"))
    parser.add_argument("--up", type=_rate_arg, default=_rate_arg("1.25M"))
    parser.add_argument("--buffer-ms", type=float, default=400.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sample-ms", type=float, default=20.0)
    parser.add_argument("--flows", type=int, default=4)
    parser.add_argument(
        "--rt-receivers",
        action="store_true",
        help="the bulk download's receiving processes "
        "real-time (SCHED_FIFO 10): are the bursts theirs, delayed with their socket locked?",
    )
    arguments = parser.parse_args(argv)
    with (
        netns_pair() as pair,
        modem(pair, arguments.down, arguments.up, arguments.buffer_ms) as internet,
    ):
        for netns in (pair.host_ns, internet.netns):
            subprocess.run(nsenter_argv(netns, ["sysctl", "-qw", f"net.ipv4.tcp_tso_rtt_log={TSO_RTT_LOG}"]),
                           check=True)  # fmt: skip
        bench = Bench(
            None, pair, internet, arguments.down, arguments.up, 1.0, "cubic", arguments.flows
        )
        samples: list[Sample] = []
        with bench._tagged(), bench.bulk() as (_, down_streams):
            if arguments.rt_receivers:
                for stream in down_streams:
                    subprocess.run(["chrt", "-f", "-p", "10", str(stream.app_pid)], check=True)
            ifbs = _ifb(pair.host_ns)
            aliases = {link["ifname"]: link.get("ifalias", "") for link in
                       _json(["ip", "-n", pair.host_ns, "-j", "link", "show", "type", "ifb"])}  # fmt: skip
            print("IFBs:", aliases)
            time.sleep(4.0)
            stop = threading.Event()
            fine: list[tuple[float, int, int, int]] = []
            fine_thread = threading.Thread(
                target=_fine, args=(pair.host_ns, internet, ifbs, aliases, stop, fine)
            )
            fine_thread.start()

            def call() -> None:
                bench.call(arguments.seconds)
                stop.set()

            caller = threading.Thread(target=call)
            caller.start()
            began = time.monotonic()
            while not stop.is_set():
                q = _json(["tc", "-n", internet.modem_ns, "-s", "-j", "qdisc", "show", "dev", internet.down_dev,
                           "root"])[0]  # fmt: skip
                samples.append(
                    Sample(
                        time.monotonic() - began,
                        q["backlog"],
                        q["drops"],
                        {
                            f"{name} {k}": v
                            for name in ifbs
                            for k, v in _leaves(pair.host_ns, name).items()
                        },
                        _senders(internet.netns, range(7100, 8000)),
                    )
                )
                stop.wait(arguments.sample_ms / 1000)
            caller.join()
            fine_thread.join()
            limited = subprocess.run(nsenter_argv(internet.netns, ["ss", "-tin", "state", "established"]),
                                     capture_output=True, text=True).stdout  # fmt: skip
            print("senders:", re.findall(r"(?:busy|rwnd_limited|sndbuf_limited):\S+", limited))
    _report_fine(fine, arguments.down)
    ms = [s.modem_down / arguments.down * 1000 for s in samples]
    print(
        f"{len(samples)} samples; modem download queue ms: p50 {_percentile(ms, 0.5):.1f} "
        f"p90 {_percentile(ms, 0.9):.1f} p99 {_percentile(ms, 0.99):.1f} max {max(ms):.1f}; "
        f"modem drops {samples[-1].modem_down_drops - samples[0].modem_down_drops}"
    )
    first, last = samples[0], samples[-1]
    for handle, (_backlog, drops, packets, sent) in last.leaves.items():
        b0 = first.leaves.get(handle, (0, 0, 0, 0))
        n = packets - b0[2]
        print(
            f"  {handle}: drops {drops - b0[1]}, packets {n}, mean size {(sent - b0[3]) / n if n else 0:.0f} B"
        )
    for i, sample in enumerate(samples):
        if ms[i] >= _percentile(ms, 0.97) and ms[i] > 1:
            window = samples[max(0, i - 5) : i + 1]
            print(
                f"t={sample.at:6.2f}s modem {ms[i]:5.1f} ms | "
                + " ".join(
                    f"[{w.at:5.2f} q={w.modem_down / 1000:.0f}K leafq="
                    f"{max((v[0] for k, v in w.leaves.items() if 'bfifo' in k), default=0) / 1000:.0f}K "
                    f"cwnd={sum(c for c, _ in w.senders)} unacked={sum(u for _, u in w.senders)}]"
                    for w in window[-3:]
                )
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
