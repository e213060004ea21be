"""The split run's scheduler (tests/support/package_lane.py) gives the Debian
package module to the lane that began its preparation at collection, after
half the other files, and to any lane if that one is gone. Driven the way
pytest-xdist's controller drives it, with stand-in workers (pure logic: which
lane is sent which test)."""

from __future__ import annotations

from types import SimpleNamespace

from tests.support.package_lane import PACKAGE_LANE, PACKAGE_MODULE, scheduler

OTHER_FILES = [f"tests/e2e/test_f{n}.py" for n in range(8)]


GIVEN: list[tuple[str, int]] = []  # (lane, first test index) of each send, in order


class Lane:
    """What the scheduler needs of a pytest-xdist WorkerController."""

    def __init__(self, name: str) -> None:
        self.gateway = SimpleNamespace(id=name)
        self.shutting_down = False
        self.sent: list[int] = []

    def send_runtest_some(self, indexes: list[int]) -> None:
        self.sent += indexes
        GIVEN.append((self.gateway.id, indexes[0]))

    def shutdown(self) -> None:
        self.shutting_down = True


def _collection() -> list[str]:
    # Most tests first, as loadfile orders files: the package module's 9 put
    # it first in the queue.
    tests = [f"{PACKAGE_MODULE}::test_{n}" for n in range(9)]
    for path in OTHER_FILES:
        tests += [f"{path}::test_a", f"{path}::test_b"]
    return tests


def _run(crash_package_lane: bool = False) -> dict[str, list[str]]:
    """Every test of _collection run to the end, each lane finishing one test
    in turn; which files each lane was given (and GIVEN: in what order)."""
    GIVEN.clear()
    config = SimpleNamespace(
        getvalue=lambda name: ["popen", "popen"] if name == "tx" else None,
        option=SimpleNamespace(loadscopereorder=True),
    )
    chosen = scheduler(config, None)
    lanes = [Lane("gw0"), Lane("gw1")]
    collection = _collection()
    for lane in lanes:
        chosen.add_node(lane)
        chosen.add_node_collection(lane, collection)
    chosen.schedule()
    done = {lane.gateway.id: 0 for lane in lanes}
    if crash_package_lane:
        chosen.remove_node(lanes[0])
        lanes[0].shutting_down = True
        lanes[0].sent, lanes = [], lanes[1:]
    for _ in range(10 * len(collection)):
        for lane in lanes:
            if done[lane.gateway.id] < len(lane.sent):
                chosen.mark_test_complete(lane, lane.sent[done[lane.gateway.id]])
                done[lane.gateway.id] += 1
        if chosen.tests_finished:
            break
    assert chosen.tests_finished
    return {
        lane.gateway.id: list(dict.fromkeys(collection[i].split("::")[0] for i in lane.sent))
        for lane in lanes
    }


def test_the_package_module_goes_to_its_lane_after_half_the_other_files() -> None:
    files = _run()
    assert PACKAGE_MODULE in files[PACKAGE_LANE]
    assert PACKAGE_MODULE not in files["gw1"]
    order = [_collection()[first].split("::")[0] for _, first in GIVEN]
    assert order.index(PACKAGE_MODULE) >= len(OTHER_FILES) // 2, order
    assert sorted(files[PACKAGE_LANE] + files["gw1"]) == sorted([PACKAGE_MODULE, *OTHER_FILES])


def test_when_its_lane_is_gone_another_lane_runs_it() -> None:
    files = _run(crash_package_lane=True)
    assert sorted(files["gw1"]) == sorted([PACKAGE_MODULE, *OTHER_FILES])
