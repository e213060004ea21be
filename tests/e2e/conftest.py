"""End-to-end fixtures: the real helper, on the private system bus with a real
polkitd, running inside the "host" namespace of a veth pair, so its uplink is
the veth and the applications' traffic crosses real qdiscs.

One helper per test module (about 0.4 s to start with the programs cached;
a compile, 1.3 s to more than 30 s under load, is done before the timed start:
tests/support/helper_process.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.standalone import PrivateSystemBus

from tests.support.helper_process import TESTS_HOOK_LINGER_S, HelperProcess
from tests.support.netns import NetnsPair, netns_pair, tc_dump
from tests.support.requirements import require_program, require_root

MiB = 1024 * 1024


@dataclass(frozen=True)
class Stack:
    bus_address: str
    pair: NetnsPair
    helper: HelperProcess
    cgroup_root: Path

    def tc_state(self) -> str:
        return tc_dump(self.pair.host_ns)

    def idle_tc_state(self, timeout_s: float = 15.0) -> str:
        """The tc state once lifted limits have drained away (they linger ~1-2 s;
        on a loaded machine, whose ticks run late, more than 5 s was seen): no
        HTB left, and the same in two dumps in a row (a dump is `ip link` then
        `tc`: one taken while the root went away said htb in the first and
        noqueue in the second)."""
        deadline = time.monotonic() + timeout_s
        previous, state = None, self.tc_state()
        while ("htb" in state or state != previous) and time.monotonic() < deadline:
            time.sleep(0.1)
            previous, state = state, self.tc_state()
        return state


@pytest.fixture
def pair(private_bus: PrivateSystemBus) -> Iterator[NetnsPair]:
    """A network namespace pair of its own, for a test that starts its own
    helper(s) in it (restarts, SIGKILL) rather than using the module's stack."""
    require_root()
    require_program("nsenter")
    with netns_pair() as created:
        yield created


@pytest.fixture(scope="module")
def stack(
    request: pytest.FixtureRequest,
    private_bus: PrivateSystemBus,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """The helper with --backend auto, or another backend through indirect
    parametrization: pytestmark = pytest.mark.parametrize("stack", ["ebpf"], indirect=True).
    Its hooks go with their last class unless the module sets
    HELPER_HOOK_LINGER_S (None: the product's linger; tests/support/helper_process.py)."""
    require_root()
    require_program("nsenter")
    backend = getattr(request, "param", "auto")
    linger_s = getattr(request.module, "HELPER_HOOK_LINGER_S", TESTS_HOOK_LINGER_S)
    state_dir = tmp_path_factory.mktemp("helper-state")
    with (
        netns_pair() as pair,
        HelperProcess(
            private_bus.address,
            netns=pair.host_ns,
            state_dir=state_dir,
            backend=backend,
            hook_linger_s=linger_s,
        ) as helper,
    ):
        yield Stack(private_bus.address, pair, helper, cgroup2_mount())
        if helper.returncode is not None:
            pytest.fail(f"the helper died during the tests:\n{helper.log_text()}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """Attach the helper's log to a failing end-to-end test's report."""
    outcome = yield
    report = outcome.get_result()
    stack = getattr(item, "funcargs", {}).get("stack")
    if report.failed and isinstance(stack, Stack):
        report.sections.append(("helper log", stack.helper.log_text()[-20000:]))
