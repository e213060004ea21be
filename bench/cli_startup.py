"""What one chadthrottle-ctl call costs the machine: CPU (user + sys) and wall
time per call, for the command a user runs, against the real helper.

The helper runs in the host namespace of a veth pair, on a private system bus
with a real polkitd, as the end-to-end tests run it; one idle application
(an app scope with a listening socket) is there to be listed and limited:

    sudo .venv/bin/python bench/cli_startup.py                 # 30 runs of each command
    sudo .venv/bin/python bench/cli_startup.py --runs 60 --watch-seconds 30
    sudo .venv/bin/python bench/cli_startup.py --ctl before=/tmp/a/bin/chadthrottle-ctl \
        --ctl after=/tmp/b/bin/chadthrottle-ctl                # two installs, runs taking turns

Each command is the installed console script (``chadthrottle-ctl`` beside the
interpreter, or --ctl), run as a child process; its CPU comes from wait4's
rusage, so only that process and its children count. The commands take turns
(one run of each, then the next round), so a busy moment on the machine hits
them all alike. ``python -c pass`` with the script's own interpreter is the
floor no Python CLI can go below. Target (issue 19): under 30 ms of CPU per
call. Then a script that polls ``list --json`` once a second is compared with
``watch --json`` (one connection, one line a second): the client's CPU and the
helper's, per second.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.standalone import HelperProcess, PrivateSystemBus

from tests.support import own_names
from tests.support.idle_app import idle_app
from tests.support.netns import netns_pair
from tests.support.waiting import eventually

APP_DESKTOP_ID = own_names.desktop_id("BenchCli")
APP_ID = f"app:{APP_DESKTOP_ID}"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _interpreter_of(script: Path) -> str:
    """The interpreter on the script's #! line (what the kernel runs)."""
    first = script.read_text(errors="replace").splitlines()[0]
    return first[2:].strip().split()[0] if first.startswith("#!") else sys.executable


def _run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(CPU seconds user + sys, wall seconds, stdout) of one run, which must succeed
    (a priority may say 6, not enforced: the bench sets no link capacity)."""
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.PIPE, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        wall_s = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        error = process.stderr.read().decode(errors="replace") if process.stderr else ""
        if process.stderr:
            process.stderr.close()
        out.seek(0)
        text = out.read().decode(errors="replace")
    if process.returncode != 0 and not (argv[1:2] == ["priority"] and process.returncode == 6):
        raise RuntimeError(f"{argv} exited {process.returncode}: {error.strip()}")
    return usage.ru_utime + usage.ru_stime, wall_s, text


def _spread(values_s: list[float]) -> str:
    ordered = sorted(values_s)
    quartiles = statistics.quantiles(ordered, n=4) if len(ordered) > 1 else [ordered[0]] * 3
    return (f"{1000 * statistics.median(ordered):6.1f} ms  (IQR {1000 * quartiles[0]:5.1f}-{1000 * quartiles[2]:5.1f},"
            f" min {1000 * ordered[0]:5.1f}, max {1000 * ordered[-1]:6.1f})")  # fmt: skip


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def _commands(ctl: str, python: str) -> dict[str, list[str]]:
    return {
        "python -c pass (floor)": [python, "-c", "pass"],
        "--help": [ctl, "--help"],
        "list --json": [ctl, "list", "--json"],
        "list": [ctl, "list"],
        "limit APP --up RATE": [ctl, "limit", APP_ID, "--up", "RATE"],
        "priority APP high|normal": [ctl, "priority", APP_ID, "PRIORITY"],
    }


def _startup(ctls: dict[str, str], env: dict[str, str], runs: int) -> dict[tuple[str, str], float]:
    """Each command of each script runs times, in rounds; prints and returns
    the median CPU per (script label, command)."""
    commands = {(label, name): argv for label, ctl in ctls.items()
                for name, argv in _commands(ctl, _interpreter_of(Path(ctl))).items()}  # fmt: skip
    cpu: dict[tuple[str, str], list[float]] = {key: [] for key in commands}
    wall: dict[tuple[str, str], list[float]] = {key: [] for key in commands}
    for ctl in ctls.values():

        def listed(ctl: str = ctl) -> bool:
            answer = json.loads(_run_once([ctl, "list", "--json"], env)[2])
            return APP_ID in {app["id"] for app in answer}

        if not eventually(listed, 15.0, 0.2):
            raise RuntimeError(f"{ctl} list --json does not show {APP_ID}")

    def filled(argv: list[str], round_number: int) -> list[str]:
        # a real change each time
        rate, priority = ("1M", "high") if round_number % 2 else ("2M", "normal")
        return [{"RATE": rate, "PRIORITY": priority}.get(a, a) for a in argv]

    for argv in commands.values():  # once each first: caches warm, every command works
        _run_once(filled(argv, 1), env)
    for round_number in range(runs):
        for key, argv in commands.items():
            cpu_s, wall_s, _ = _run_once(filled(argv, round_number), env)
            cpu[key].append(cpu_s)
            wall[key].append(wall_s)
    print(f"{runs} runs of each, median (interquartile range, min, max):")
    for label, ctl in ctls.items():
        print(f"{label}: {ctl}")
        for key in (key for key in commands if key[0] == label):
            print(f"  {key[1]:24s} CPU {_spread(cpu[key])}   wall {_spread(wall[key])}")
    return {key: statistics.median(values) for key, values in cpu.items()}


def _polling(ctl: str, env: dict[str, str], helper_pid: int, seconds: float) -> None:
    """list --json once a second for seconds: the client's and the helper's CPU per second."""
    helper_before = _cpu_seconds(helper_pid)
    client_cpu_s = 0.0
    started = time.monotonic()
    for tick in range(int(seconds)):
        client_cpu_s += _run_once([ctl, "list", "--json"], env)[0]
        delay = started + tick + 1 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    elapsed = time.monotonic() - started
    helper_percent = 100 * (_cpu_seconds(helper_pid) - helper_before) / elapsed
    print(f"  polling list --json once a second for {elapsed:.0f} s: client {100 * client_cpu_s / elapsed:5.2f}% "
          f"of a core, helper {helper_percent:5.2f}%")  # fmt: skip


def _watching(ctl: str, env: dict[str, str], helper_pid: int, seconds: float) -> None:
    """watch --json for seconds lines: the client's and the helper's CPU per second."""
    count = int(seconds)
    helper_before = _cpu_seconds(helper_pid)
    try:
        cpu_s, wall_s, text = _run_once([ctl, "watch", "--json", "--count", str(count)], env)
    except RuntimeError as error:
        print(f"  watch --json: not available ({str(error).splitlines()[-1]})")
        return
    helper_percent = 100 * (_cpu_seconds(helper_pid) - helper_before) / wall_s
    lines = [json.loads(line) for line in text.splitlines()]
    if len(lines) != count:
        raise RuntimeError(f"watch --json --count {count} printed {len(lines)} lines")
    print(f"  watch --json for {wall_s:.0f} s ({count} lines, one connection): client {100 * cpu_s / wall_s:5.2f}% "
          f"of a core, {1000 * cpu_s:.0f} ms in all; helper {helper_percent:5.2f}%")  # fmt: skip


def _labelled(specs: list[str]) -> dict[str, str]:
    """--ctl [LABEL=]PATH values -> {label: resolved path}."""
    found = {}
    for spec in specs:
        label, _, path = spec.rpartition("=") if "=" in spec else (spec, "", spec)
        found[label] = str(Path(path).resolve())
    return found


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=30, help="runs of each command")
    parser.add_argument("--ctl", action="append", metavar="[LABEL=]PATH",
                        help="a chadthrottle-ctl script to measure; repeat to compare (their runs take turns); "
                             "default: the one beside this interpreter")  # fmt: skip
    parser.add_argument(
        "--watch-seconds",
        type=float,
        default=20.0,
        help="how long polling and watch are each measured, per script (0: not at all)",
    )
    arguments = parser.parse_args()
    if os.geteuid() != 0:
        print("cli_startup: run as root (namespaces, BPF, tc)", file=sys.stderr)
        return 1
    ctls = _labelled(arguments.ctl or [str(Path(sys.executable).parent / "chadthrottle-ctl")])
    print(
        f"load average {os.getloadavg()[0]:.2f}; PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r}"
    )
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
        ) as helper,
        idle_app(cgroup2_mount(), pair.host_ns, APP_DESKTOP_ID),
    ):
        env = bus.environment()
        medians = _startup(ctls, env, arguments.runs)
        for label, ctl in ctls.items():
            print(f"{label}: a script polling list --json once a second: "
                  f"{100 * medians[(label, 'list --json')]:.1f}% of a core")  # fmt: skip
            if arguments.watch_seconds > 0:
                helper_pid = helper._process.pid if helper._process else 0
                _polling(ctl, env, helper_pid, arguments.watch_seconds)
                _watching(ctl, env, helper_pid, arguments.watch_seconds)
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        if helper.returncode is not None:
            print(helper.log_text(), file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
