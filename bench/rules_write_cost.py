"""What one user's lone SetLimit costs at 1, 64 and 256 rules of that user:
a write should cost what it changes, not grow with the rules already there
(docs/benchmarks/helper-calls.md, snap35).

The real helper in the host namespace of a veth pair, on a private system bus
with a real polkitd; uid 65534 (granted limit-own for its client process
only) runs 256 copies of sleep, each its own application, in the root
namespace. At each level the user's rules are first grown to it (one
SetLimit per new application), then the rate of the last rule is changed
--calls times, one call at a time, each timed at the caller (closed loop: the
helper's service time for a lone call):

    sudo .venv/bin/python bench/rules_write_cost.py
    sudo .venv/bin/python bench/rules_write_cost.py --calls 60 --levels 1 64 256

Run it under the bench lock (docs/development.md); say the load (printed).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chadthrottle.contract import MAX_RULES_PER_USER
from chadthrottle.helper.standalone import HelperProcess, PrivateSystemBus

from tests.support.netns import netns_pair
from tests.support.other_users import client_as, granted, programs_as

NOBODY = 65534
RATE_BPS = 50_000


def _py_spy(helper: HelperProcess, out: str | None) -> subprocess.Popen[bytes] | None:
    """py-spy recording the helper's threads (the one beside this Python, else on PATH)."""
    if out is None or helper._process is None:
        return None
    beside = Path(sys.executable).parent / "py-spy"
    command = [str(beside) if beside.exists() else "py-spy", "record", "-p", str(helper._process.pid),
               "-r", "50", "-f", "raw", "--threads", "-o", out]  # fmt: skip
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached
    return spy


def _load() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 1)[0]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=40, help="timed SetLimits per level")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 64, MAX_RULES_PER_USER])
    parser.add_argument(
        "--cache-dir", type=Path, help="the helper's program cache (its --cache-dir)"
    )
    parser.add_argument(
        "--py-spy",
        metavar="FILE",
        help="py-spy the helper (raw stacks) over the last level's calls",
    )
    arguments = parser.parse_args()
    if os.geteuid() != 0:
        print("rules_write_cost: run as root (namespaces, BPF, tc)", file=sys.stderr)
        return 1
    levels = sorted(level for level in arguments.levels if 1 <= level <= MAX_RULES_PER_USER)
    with (
        PrivateSystemBus() as bus,
        netns_pair() as pair,
        tempfile.TemporaryDirectory() as state_dir,
        HelperProcess(
            bus.address,
            netns=pair.host_ns,
            state_dir=Path(state_dir),
            log_level="warning",
            start_timeout_s=150,
            cache_dir=arguments.cache_dir,
        ) as helper,  # fmt: skip
        programs_as(NOBODY, levels[-1], 600, pair.host_ns, prefix="ct-rules-write-") as programs,
        client_as(bus.address, NOBODY) as nobody,
        granted(nobody),
    ):
        ids: list[str] = []
        try:
            for level in levels:
                while len(ids) < level:
                    answer = nobody.ask("set", f"pid:{programs[len(ids)].pid}", "up", RATE_BPS)
                    if "ok" not in answer:
                        raise RuntimeError(f"SetLimit: {answer}")
                    ids.append(answer["ok"])
                load_before = _load()
                spy = _py_spy(helper, arguments.py_spy) if level == levels[-1] else None
                times = []
                for call in range(arguments.calls):
                    started = time.perf_counter()
                    answer = nobody.ask("set", ids[-1], "up", RATE_BPS + 1000 * (1 + call % 50))
                    times.append(time.perf_counter() - started)
                    if "ok" not in answer:
                        raise RuntimeError(f"SetLimit: {answer}")
                if spy is not None:
                    spy.send_signal(signal.SIGINT)  # it writes what it has
                    spy.wait(60)
                ordered = sorted(times)
                p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
                print(f"{level:4d} rules: SetLimit median {1000 * statistics.median(ordered):6.1f} ms"
                      f"   p95 {1000 * p95:6.1f} ms   max {1000 * ordered[-1]:6.1f} ms"
                      f"   ({len(times)} calls, load {load_before} -> {_load()})", flush=True)  # fmt: skip
        finally:
            for app_id in ids:
                nobody.ask("clear", app_id)
        if helper.returncode is not None:
            print(helper.log_text(), file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
