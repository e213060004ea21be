"""A test that SIGKILLs its helper and then fails before a successor starts
must not leave the killed helper's programs on the cgroup root: the product
detaches a dead helper's programs only when the next helper starts, so the
tests' HelperProcess.close detaches them as that start would
(tests/support/helper_process.py). Before 2026-12-06 they stayed attached
past the test (this test FAILED so) and the session's leak check reported them."""

from __future__ import annotations

from pathlib import Path

from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.kernel.datapath import our_programs
from chadthrottle.helper.kernel.ownership import RUN_DIR
from chadthrottle.helper.standalone import PrivateSystemBus

from tests.support.helper_process import HelperProcess
from tests.support.netns import NetnsPair


def _attached() -> set[int]:
    return {prog_id for _, prog_id, _ in our_programs(cgroup2_mount())}


def test_a_killed_helper_closed_without_a_successor_leaves_no_program(
    private_bus: PrivateSystemBus, pair: NetnsPair, tmp_path: Path
) -> None:
    helper = HelperProcess(private_bus.address, netns=pair.host_ns, state_dir=tmp_path / "state")
    ids: set[int] = set()
    try:
        helper.start()
        (record,) = RUN_DIR.glob(f"datapath-{helper.pid}-*.ids")
        ids = {int(word) for word in record.read_text().split()}
        assert len(ids) == 4 and ids <= _attached(), (ids, _attached())
        assert helper.kill() == -9  # what a test does, then fails before the next start
    finally:
        helper.close()
    left = ids & _attached()
    assert not left, f"the killed helper's programs {sorted(left)} stayed on the cgroup root"
