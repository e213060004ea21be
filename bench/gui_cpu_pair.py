"""The GUI's CPU, two trees side by side: a change's effect despite a busy machine.

    .venv/bin/python bench/gui_cpu_pair.py --before REV [--rounds 6] [--seconds 30]

``--before`` is a git revision of this repository (e.g. HEAD, to see what
uncommitted edits change): its tree is laid out as installed (pyproject.toml's
package-dir) in a scratch directory, first on that GUI's PYTHONPATH; the other
GUI is the working tree. Both
windows run at once on one Xvfb, fed by one bench/gui_feed.py (200 applications
changing every second), and are measured over the same window of time, so the
machine's load weighs on both alike; which starts first alternates. Runs one
after another (bench/gui_perf.py alternating) moved by ±0.5 points of a core
with the load, more than most single changes; side by side the difference of
each pair held within about 0.3 points (docs/benchmarks.md).

Prints each round and the medians: the GUI thread, the other threads (the
helper connection's, decoding the bus), and the total, in % of one core.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gui_feed import running_feed
from gui_perf import STEADY_CHILD, display, gui_arguments

REPOSITORY = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
WARMUP_S = 8.0  # start-up, the first polls and the collector settling (gui/gc_settle.py)


def package_tree(revision: str, scratch: Path) -> Path:
    """The revision's packages laid out as installed, under scratch/pkg."""
    source, tree = scratch / "src", scratch / "pkg"
    source.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPOSITORY), "archive", revision], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive.stdout, check=True)
    layout = tomllib.loads((source / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"
    ]
    for package, directory in sorted(layout.items()):  # parents before children
        shutil.copytree(source / directory, tree / package.replace(".", "/"), dirs_exist_ok=True)
    return tree


def thread_ticks(pid: int) -> dict[int, int]:
    """utime + stime of each thread of pid, in clock ticks."""
    ticks = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        ticks[int(tid)] = int(fields[11]) + int(fields[12])
    return ticks


def one_round(env: dict[str, str], address: str, scratch: Path, trees: list[tuple[str, str | None]],
              seconds: float) -> dict[str, tuple[float, float]]:  # fmt: skip
    """Both GUIs at once: name -> (GUI thread %, other threads %)."""
    guis = []
    try:
        for name, tree in trees:
            child_env = (
                {**env, "PYTHONPATH": tree}
                if tree
                else {k: v for k, v in env.items() if k != "PYTHONPATH"}
            )
            settings = scratch / f"{name}.ini"
            guis.append(
                (
                    name,
                    subprocess.Popen(
                        [sys.executable, "-c", STEADY_CHILD, *gui_arguments(address, settings)],
                        env=child_env,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    ),
                )
            )
        time.sleep(WARMUP_S)
        for name, gui in guis:
            if gui.poll() is not None:
                raise RuntimeError(f"the {name} GUI exited early (code {gui.returncode})")
        before = {name: thread_ticks(gui.pid) for name, gui in guis}
        started = time.monotonic()
        time.sleep(seconds)
        after = {name: thread_ticks(gui.pid) for name, gui in guis}
        wall = time.monotonic() - started
        result = {}
        for name, gui in guis:
            used = {tid: ticks - before[name].get(tid, 0) for tid, ticks in after[name].items()}
            main = used.pop(gui.pid, 0)
            result[name] = (
                100 * main / CLOCK_TICKS / wall,
                100 * sum(used.values()) / CLOCK_TICKS / wall,
            )
        return result
    finally:
        for _name, gui in guis:
            gui.terminate()
        for _name, gui in guis:
            gui.wait(15)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--before",
        required=True,
        metavar="REV",
        help="git revision to compare the working tree with",
    )
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument(
        "--seconds", type=float, default=30.0, help="measuring window of each round"
    )
    parser.add_argument("--apps", type=int, default=200)
    arguments = parser.parse_args()
    known = subprocess.run(["git", "-C", str(REPOSITORY), "rev-parse", "--verify", "--quiet", f"{arguments.before}^{{commit}}"],
                           capture_output=True, text=True)  # fmt: skip
    if known.returncode != 0:
        parser.error(f"--before: {arguments.before!r} is not a revision of {REPOSITORY}")
    results: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory(prefix="chadthrottle-bench-") as scratch, display("xcb") as env, \
            running_feed(arguments.apps) as address:  # fmt: skip
        trees: list[tuple[str, str | None]] = [("before", str(package_tree(known.stdout.strip(), Path(scratch)))),
                                               ("after", None)]  # fmt: skip
        for round_number in range(arguments.rounds):
            order = trees if round_number % 2 == 0 else trees[::-1]
            load = Path("/proc/loadavg").read_text().split()[0]
            got = one_round(env, address, Path(scratch), order, arguments.seconds)
            for name, value in got.items():
                results[name].append(value)
            print(f"round {round_number + 1}, load {load}: " + "; ".join(
                f"{name} {main + rest:.2f} % (GUI thread {main:.2f}, others {rest:.2f})"
                for name, (main, rest) in got.items()), flush=True)  # fmt: skip
    for name, values in results.items():
        print(
            f"{name}: median {statistics.median(m + r for m, r in values):.2f} % of one core "
            f"(GUI thread {statistics.median(m for m, _r in values):.2f} %, "
            f"others {statistics.median(r for _m, r in values):.2f} %)"
        )
    pairs = [
        (a[0] + a[1]) - (b[0] + b[1])
        for a, b in zip(results["after"], results["before"], strict=True)
    ]
    print(
        f"after - before, each round: {', '.join(f'{d:+.2f}' for d in pairs)}; median {statistics.median(pairs):+.2f} points"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
