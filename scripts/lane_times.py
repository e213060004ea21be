"""Where a run's wall time went, from its JUnit files: each lane's tests' sum
against its span (first set-up to last end), the gaps between one test's end
and the next's start in the same lane (collection, module set-up or tear-down
outside a test's time, a lane waiting), and each lane's biggest files.

    .venv/bin/python scripts/lane_times.py artifacts/junit.xml artifacts/junit-alone.xml

Needs the "lane" and "started" properties tests/conftest.py gives each test
(runs before 2026-12-07 13:00 UTC have none). A test's time is its set-up,
call and tear-down (pytest's JUnit "time").
"""

from __future__ import annotations

import argparse
import collections
import itertools
import xml.etree.ElementTree as ET
from typing import NamedTuple


class Test(NamedTuple):
    lane: str
    started: float
    took: float
    module: str
    name: str


def tests_of(path: str) -> list[Test]:
    found = []
    for case in ET.parse(path).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        if "lane" not in props or "started" not in props:
            continue
        module = case.get("classname", "")
        if module.rpartition(".")[2][:1].isupper():  # a class in the module
            module = module.rpartition(".")[0]
        found.append(Test(f"{path}:{props['lane']}", float(props["started"] or 0),
                          float(case.get("time", 0)), module, case.get("name", "")))  # fmt: skip
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("junit", nargs="+")
    parser.add_argument("--gap-s", type=float, default=2.0, help="list gaps at least this long")
    parser.add_argument("--top", type=int, default=8, help="files listed per lane")
    args = parser.parse_args()
    lanes: dict[str, list[Test]] = collections.defaultdict(list)
    for path in args.junit:
        for test in tests_of(path):
            lanes[test.lane].append(test)
    if not lanes:
        raise SystemExit("no test with lane and started properties in these files")
    for lane, tests in sorted(lanes.items()):
        tests.sort(key=lambda t: t.started)
        first, last = tests[0].started, max(t.started + t.took for t in tests)
        total = sum(t.took for t in tests)
        print(f"{lane}: {len(tests)} tests, {total:.1f} s of tests over {last - first:.1f} s "
              f"(outside tests {last - first - total:.1f} s)")  # fmt: skip
        for before, after in itertools.pairwise(tests):
            gap = after.started - (before.started + before.took)
            if gap >= args.gap_s:
                print(f"  gap {gap:6.1f} s at +{after.started - first:6.1f} s: "
                      f"{before.module} -> {after.module}")  # fmt: skip
        by_module: collections.Counter[str] = collections.Counter()
        for test in tests:
            by_module[test.module] += test.took
        for module, took in by_module.most_common(args.top):
            print(f"  {took:7.1f} s {module}")


if __name__ == "__main__":
    main()
