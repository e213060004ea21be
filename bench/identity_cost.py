"""What stable identity (issue 14) costs the helper's once-a-second /proc work.

    sudo .venv/bin/python -m bench.identity_cost [--each 100] [--entries 300] [--rounds 20]

Starts --each real processes of three kinds (a plain program; a program in
an AppImage-like mount with $APPIMAGE set, whose environment is read; a
program an installed .desktop file runs), writes --entries .desktop files
(a desktop's /usr/share/applications has a few hundred) into the catalog's
data directory, and times, on the real /proc:

- read_process + identify per process, by kind (what a new or exec'd process
  costs the index);
- a full read of every process (ApplicationIndex.refresh(full=True): every
  10th tick, and a lookup of an unknown id at most twice a second);
- a steady tick (refresh(): a stat of /proc/PID and a readlink per known
  process), and how many processes it re-read (the pid's process may be
  another: its /proc/PID inode changed);
- the catalog: parsing every .desktop file once, and a match once parsed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from chadthrottle.helper.identity import applications
from chadthrottle.helper.identity.applications import identify
from chadthrottle.helper.identity.desktop_catalog import DesktopCatalog
from chadthrottle.helper.identity.index import ApplicationIndex
from chadthrottle.helper.identity.processes import ProcessInfo, read_process, read_sandbox_facts


def _median_ms(work: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _start(argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, env={"PATH": "/usr/bin:/bin", **(env or {})})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--each", type=int, default=100, help="processes of each kind")
    parser.add_argument("--entries", type=int, default=300, help=".desktop files in the catalog")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ct-identity-bench-") as temporary:
        root = Path(temporary)
        apps = root / "applications"
        apps.mkdir()
        program = root / "bin" / "ct-desktop-program"
        program.parent.mkdir()
        shutil.copy("/bin/sleep", program)
        for index in range(args.entries - 1):
            filler = root / "bin" / f"filler-{index}"
            filler.write_bytes(b"\x7fELF")
            filler.chmod(0o755)
            (apps / f"org.bench.Filler{index}.desktop").write_text(
                f"[Desktop Entry]\nType=Application\nName=Filler {index}\nIcon=x\nExec={filler} %U\n"
                + "".join(f"Name[l{n}]=Filler {index} {n}\n" for n in range(40))
            )  # translations, as real files have
        (apps / "org.bench.Program.desktop").write_text(
            f"[Desktop Entry]\nName=Program\nExec={program}\n"
        )
        catalog = DesktopCatalog(system_dirs=lambda: [apps], home_of=lambda uid: None)
        applications.identify.__defaults__ = (catalog,)  # the index's identify() reads this catalog

        mount = root / ".mount_BenchAb12"
        mount.mkdir()
        shutil.copy("/bin/sleep", mount / "AppRun")
        kinds: dict[str, list[subprocess.Popen[bytes]]] = {
            "plain": [],
            "appimage": [],
            "desktop": [],
        }
        try:
            for _ in range(args.each):
                kinds["plain"].append(_start(["/bin/sleep", "600"]))
                kinds["appimage"].append(_start([str(mount / "AppRun"), "600"],
                                                {"APPIMAGE": str(root / "Bench.AppImage"), "APPDIR": str(mount)}))  # fmt: skip
                kinds["desktop"].append(_start([str(program), "600"]))
            time.sleep(0.5)  # every child has exec'd
            start = time.perf_counter()
            catalog.match(("exe", str(program)))
            cold_ms = (time.perf_counter() - start) * 1000
            match_us = _median_ms(
                lambda: [catalog.match(("exe", str(program))) for _ in range(1000)], args.rounds
            )
            print(f"catalog: {args.entries} .desktop files parsed once in {cold_ms:.1f} ms; "
                  f"a match after that {match_us:.2f} us")  # fmt: skip
            for kind, processes in kinds.items():
                pids = [process.pid for process in processes]
                ids = {identify(read_process(pid)).app_id for pid in pids}  # type: ignore[arg-type, union-attr]
                read = [read_process(pid) for pid in pids]
                per_us = (
                    _median_ms(
                        lambda pids=pids: [identify(read_process(pid)) for pid in pids], args.rounds
                    )
                    * 1000
                    / len(pids)
                )  # type: ignore[arg-type]
                alone_us = (
                    _median_ms(lambda read=read: [identify(info) for info in read], args.rounds)
                    * 1000
                    / len(pids)
                )  # type: ignore[arg-type]
                facts_us = _median_ms(lambda read=read: [read_sandbox_facts(info.pid, info.exe, info.cgroup) for info in read],
                                      args.rounds) * 1000 / len(pids)  # type: ignore[union-attr]  # fmt: skip
                print(f"{kind:8}: read_process + identify {per_us:6.1f} us a process, of which identify "
                      f"{alone_us:5.1f} us and the sandbox facts {facts_us:5.1f} us  (id: {sorted(ids)[0]})")  # fmt: skip
            reads: list[int] = []

            def counted(pid: int) -> ProcessInfo | None:
                reads.append(pid)
                return read_process(pid)

            index = ApplicationIndex(read=counted)
            total = len(os.listdir("/proc"))
            full_ms = _median_ms(lambda: index.refresh(full=True), args.rounds)
            index.refresh(full=True)
            reads.clear()
            tick_ms = _median_ms(index.refresh, args.rounds)
            print(f"index, {total} /proc entries: a full read {full_ms:.1f} ms, a steady tick {tick_ms:.2f} ms "
                  f"(processes read: {len(reads) / args.rounds:.1f} a tick on average, every 10th tick reading all)")  # fmt: skip
        finally:
            for processes in kinds.values():
                for process in processes:
                    process.kill()
                    process.wait()


if __name__ == "__main__":
    main()
