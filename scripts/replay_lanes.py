"""Replay pytest-xdist's --dist loadfile on two lanes from a collection and a
JUnit file's test times: how long each lane would take (without collection),
and what a change to one module or to the scheduling would do.

    .venv/bin/python -m pytest --collect-only -q -m "not machine_alone" tests > collect.txt
    .venv/bin/python scripts/replay_lanes.py collect.txt artifacts/junit.xml
    .venv/bin/python scripts/replay_lanes.py collect.txt artifacts/junit.xml --package-held --package-s 50

Files go out in xdist's order (most tests first); a lane asks for the next one
when two or fewer of its tests are left. --package-held keeps the Debian package
module for lane 0 until half the other files went out (ed679e6's scheduler, reverted:
docs/development.md, sixteenth round);
--package-s sets that module's time; --module-s PATH=SECONDS (repeatable) any
module's, spread over its tests as they were (what a change to it would save).
Tests missing from the JUnit file count 0 s.
"""

from __future__ import annotations

import argparse
import collections
import xml.etree.ElementTree as ET

PACKAGE = "tests/packaging/test_debian_package.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("collection")
    parser.add_argument("junit")
    parser.add_argument("--package-held", action="store_true")
    parser.add_argument("--package-s", type=float)
    parser.add_argument("--module-s", action="append", default=[], metavar="PATH=SECONDS")
    args = parser.parse_args()
    took: dict[str, float] = {}
    for case in ET.parse(args.junit).getroot().iter("testcase"):
        path = case.get("classname", "").replace(".", "/") + ".py"
        took[f"{path}::{case.get('name')}"] = float(case.get("time", 0))
    files: dict[str, list[float]] = {}
    with open(args.collection) as listing:
        for line in listing:
            if "::" in line:
                test = line.strip()
                files.setdefault(test.split("::")[0], []).append(took.get(test, 0.0))
    if args.package_s is not None and PACKAGE in files:
        files[PACKAGE] = [args.package_s / len(files[PACKAGE])] * len(files[PACKAGE])
    for setting in args.module_s:
        path, _, seconds = setting.partition("=")
        was = sum(files[path]) or 1.0
        files[path] = [t * float(seconds) / was for t in files[path]]
    queue = collections.OrderedDict(sorted(files.items(), key=lambda item: -len(item[1])))
    half = len(queue) // 2
    clock, pending = [0.0, 0.0], [[], []]  # type: ignore[var-annotated]
    released = -1.0

    def give(lane: int) -> None:
        nonlocal released
        if not queue:
            return
        if args.package_held and PACKAGE in queue:
            others = len(queue) - 1
            if lane == 0 and others <= half:
                queue.move_to_end(PACKAGE, last=False)
            elif others:
                queue.move_to_end(PACKAGE)
            else:
                return
        path, times = queue.popitem(last=False)
        if path == PACKAGE:
            released = clock[lane]
        pending[lane] += times

    for lane in (0, 1):
        give(lane)
    for lane in (0, 1):
        give(lane)
    while pending[0] or pending[1]:
        lane = min((n for n in (0, 1) if pending[n]), key=lambda n: clock[n] + pending[n][0])
        clock[lane] += pending[lane].pop(0)
        if len(pending[lane]) <= 2:
            give(lane)
        for other in (0, 1):
            if not pending[other] and queue:
                clock[other] = max(clock[other], clock[lane])
                give(other)
    print(
        f"lanes: {clock[0]:.0f} s, {clock[1]:.0f} s of tests; package module given at {released:.0f} s"
    )


if __name__ == "__main__":
    main()
