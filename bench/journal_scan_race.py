"""A killed shaper's journal swept by its own instance while another
instance's scan loops beside it (helper/kernel/ownership.take_over_dead).

    .venv/bin/python -m bench.journal_scan_race --scanner opens-all [--rounds 3000]
    .venv/bin/python -m bench.journal_scan_race --scanner own-instance [--rounds 3000]

Two processes on a private RUN_DIR (nothing of the machine's is touched): one
scans the dead journals in a loop as a start of another instance does, the
other 3,000 times writes a journal of two entries, lets it go unlocked (a
killed shaper's) and sweeps it once as its own successor does. opens-all: the
scanner opens and locks every journal, as every scan did before 504279e (a
lock held that moment reads as a live owner: the sweep takes nothing, CI h2);
own-instance: as now (journals named for their instance, another's not
opened). Printed: the single sweeps that took nothing, and the scanner's
passes (it died of FileNotFoundError before 46e8c97).
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
from multiprocessing.synchronize import Event
from pathlib import Path

from chadthrottle.helper.kernel import ownership

OURS, OTHER = "this-session", "other-session"


def _scan(run_dir: str, opens_all: bool, stop: Event, started: Event) -> None:
    ownership.RUN_DIR = Path(run_dir)
    if opens_all:
        ownership._tag_of = lambda path: ""  # type: ignore[assignment]  # every journal read
    heir = ownership.ObjectJournal("tc", OTHER)
    passes = 0
    started.set()
    while not stop.is_set():
        ownership.take_over_dead("tc", lambda entry: False, heir)
        passes += 1
    heir.close()
    print(f"scanner passes: {passes}", flush=True)


def _sweep() -> int:
    heir = ownership.ObjectJournal("tc", OURS)
    try:
        return len(ownership.take_over_dead("tc", lambda e: e.get("instance") == OURS, heir))
    finally:
        heir.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scanner", choices=("opens-all", "own-instance"), required=True)
    parser.add_argument("--rounds", type=int, default=3000)
    args = parser.parse_args()
    run_dir = tempfile.mkdtemp(prefix="journal-race-")
    ownership.RUN_DIR = Path(run_dir)
    stop, started = multiprocessing.Event(), multiprocessing.Event()
    scanner = multiprocessing.Process(
        target=_scan, args=(run_dir, args.scanner == "opens-all", stop, started)
    )
    scanner.start()
    started.wait()
    missed = 0
    try:
        for _ in range(args.rounds):
            dead = ownership.ObjectJournal("tc", OURS)
            for key in ("ifb:1", "hook:1"):
                dead.write({"key": key, "instance": OURS})
            dead.release()
            if _sweep() != 2:
                missed += 1
                while not _sweep():  # taken at a later try, as a retry would
                    pass
    finally:
        stop.set()
        scanner.join()
    print(f"{args.scanner}: {missed} of {args.rounds} single sweeps took nothing "
          f"(scanner exit code {scanner.exitcode})")  # fmt: skip
    for left in Path(run_dir).iterdir():
        left.unlink()
    Path(run_dir).rmdir()


if __name__ == "__main__":
    main()
