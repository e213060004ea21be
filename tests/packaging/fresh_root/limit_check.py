"""A limit on a real connection, through the installed chadthrottle-ctl.

Runs inside the fresh Debian root (Debian's python3, stdlib only), in the
network namespace the test gave it: a veth pair to a namespace of its own, a
TCP download from there (traffic.py, copied beside this file), its rate before
and after `chadthrottle-ctl limit pid:N --down RATE`, then the limit cleared.
Prints one JSON line with the measured rates; the test judges them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEER_NS = "ctpkgpeer"
NEAR_IP, FAR_IP = "10.213.0.1", "10.213.0.2"
PORT = 5201
LIMIT_BPS = 1_000_000
MEASURE_S = 3.0
SETTLE_S = 1.5  # TCP's window and the shaper's queue drain after the limit is set


def run(*argv: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({result.returncode}): {result.stdout}{result.stderr}")
    return result.stdout


def make_link() -> None:
    run("ip", "netns", "add", PEER_NS)
    run("ip", "link", "add", "ctpkg0", "type", "veth", "peer", "name", "ctpkg1", "netns", PEER_NS)
    run("ip", "addr", "add", f"{NEAR_IP}/24", "dev", "ctpkg0")
    run("ip", "link", "set", "ctpkg0", "up")
    run("ip", "-n", PEER_NS, "addr", "add", f"{FAR_IP}/24", "dev", "ctpkg1")
    run("ip", "-n", PEER_NS, "link", "set", "ctpkg1", "up")
    run("ip", "-n", PEER_NS, "link", "set", "lo", "up")


class Sink:
    """The downloading client; reads traffic.py's cumulative byte reports."""

    def __init__(self, seconds: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "traffic.py"), "connect", "--host", FAR_IP, "--port", str(PORT),
             "--role", "sink", "--seconds", str(seconds)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.samples: list[tuple[float, int]] = []

    def read_until(self, t: float) -> None:
        assert self.process.stdout is not None
        while not self.samples or self.samples[-1][0] < t:
            line = self.process.stdout.readline()
            if not line:
                sys.exit(f"the download ended before t={t:.1f} s")
            report = json.loads(line)
            if "t" in report:
                self.samples.append((report["t"], report["bytes"]))

    def freed_at(self, since: float, above_bps: float, latest: float, span_s: float = 0.2) -> float:
        """Where a window after a cleared limit starts: the first time after
        since that a span reads above above_bps (the limit is gone), at the
        latest `latest` (the fixed settle it replaces)."""
        start = since
        while start < latest and self.rate(start, start + span_s) <= above_bps:
            start += span_s / 2
        return min(start, latest)

    def settled_at(
        self, since: float, limit_bps: float, latest: float, span_s: float = 0.5
    ) -> float:
        """Where the window under a new limit starts: the first span after since
        that reads the limit (0.85-1.05 of it): before, what was in flight when
        it landed can stall the reads and then catch up in one go (read 1.085
        of the limit once after the fixed settle alone), at the latest `latest`."""
        start = since
        while (
            start < latest
            and not 0.85 * limit_bps <= self.rate(start, start + span_s) <= 1.05 * limit_bps
        ):
            start += span_s / 2
        return min(start, latest)

    def rate(self, start: float, end: float) -> float:
        self.read_until(end)
        first = next(s for s in self.samples if s[0] >= start)
        last = self.samples[-1]
        return (last[1] - first[1]) / (last[0] - first[0])


def main() -> None:
    make_link()
    source = subprocess.Popen(
        ["ip", "netns", "exec", PEER_NS, sys.executable, str(HERE / "traffic.py"), "serve",
         "--port", str(PORT), "--role", "source", "--seconds", "30"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert source.stdout is not None
        assert "listening" in source.stdout.readline()
        sink = Sink(seconds=20)
        before = sink.rate(0.2, 1.2)
        run("chadthrottle-ctl", "limit", f"pid:{sink.process.pid}", "--down", str(LIMIT_BPS))
        limited_at = sink.samples[-1][0]
        rules = json.loads(run("chadthrottle-ctl", "rules", "--json"))
        settled = sink.settled_at(
            limited_at + SETTLE_S, LIMIT_BPS, latest=limited_at + SETTLE_S + 6.0
        )
        limited = sink.rate(settled, settled + MEASURE_S)
        run("chadthrottle-ctl", "clear", f"pid:{sink.process.pid}")
        cleared_at = sink.samples[-1][0]
        freed = sink.freed_at(cleared_at, 2 * LIMIT_BPS, latest=cleared_at + SETTLE_S)
        after = sink.rate(freed, freed + 1.0)
        sink.process.kill()
        sink.process.wait()
    finally:
        source.kill()
        source.wait()
    print(json.dumps({
        "limit_bps": LIMIT_BPS, "before_bps": before, "limited_bps": limited, "after_clear_bps": after,
        "rules_while_limited": rules,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
