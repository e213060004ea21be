"""What stored rules cost an idle helper: CPU, and the HTB classes it keeps.

A rule waits for its application; users can make up to 256 each. A helper
whose idle cost grew with the number of stored rules could be worn down by
rules nobody uses. This starts the real helper (private bus, real polkitd,
the host namespace of a veth pair) with N stored rules for programs that are
not running, and prints its idle CPU and the classes on its uplink:

    sudo .venv/bin/python bench/stored_rules.py                 # N = 0, 300, 3000
    sudo .venv/bin/python bench/stored_rules.py --counts 0 3000 --seconds 20
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chadthrottle.helper.standalone import HelperProcess, PrivateSystemBus

from tests.support.netns import netns_pair

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _write_rules(state_dir: Path, count: int) -> None:
    """count administrator rules (they never expire) for programs not running."""
    rules = [{"app_id": f"exe:/opt/chadthrottle-bench/app{n}", "owner": "all",
              "up": {"rate_bps": 100_000 + n, "burst_bytes": 131_072}} for n in range(count)]  # fmt: skip
    state_dir.chmod(0o700)
    path = state_dir / "rules.json"
    path.write_text(json.dumps({"version": 2, "rules": rules}))
    path.chmod(0o600)


def _classes(netns: str, device: str) -> int:
    out = subprocess.run(["ip", "netns", "exec", netns, "tc", "class", "show", "dev", device],
                         capture_output=True, text=True).stdout  # fmt: skip
    return sum(1 for line in out.splitlines() if line.startswith("class"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[0, 300, 3000])
    parser.add_argument("--seconds", type=float, default=15.0, help="how long idle CPU is measured")
    arguments = parser.parse_args()
    if os.geteuid() != 0:
        print("stored_rules: run as root (namespaces, BPF, tc)", file=sys.stderr)
        return 1
    print(
        f"{'stored rules':>12}  {'idle CPU (% of one core)':>24}  {'HTB classes on the uplink':>25}"
    )
    for count in arguments.counts:
        with (
            PrivateSystemBus() as bus,
            netns_pair() as pair,
            tempfile.TemporaryDirectory() as state,
        ):
            _write_rules(Path(state), count)
            with HelperProcess(bus.address, netns=pair.host_ns, state_dir=Path(state), log_level="warning",
                               start_timeout_s=150) as helper:  # fmt: skip
                pid = helper._process.pid if helper._process else 0
                time.sleep(3.0)  # past start-up work
                before = _cpu_seconds(pid)
                time.sleep(arguments.seconds)
                cpu = 100 * (_cpu_seconds(pid) - before) / arguments.seconds
                print(f"{count:>12}  {cpu:>24.2f}  {_classes(pair.host_ns, pair.host_if):>25}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
