"""The tc objects the helper makes in an application's own network namespace
(issue 13) live and die like those in its own: the helper's stop removes
them, a SIGKILLed helper's are adopted by the next one (the limit holds) or,
when the application is gone, removed by it, and a namespace that disappears
while limited just loses its shaper. Byte for byte: the namespace ends as it
was found."""

from __future__ import annotations

import contextlib
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from chadthrottle.contract import Direction
from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.kernel.ownership import RUN_DIR
from chadthrottle.helper.standalone import PrivateSystemBus

from bench.clsact_graft import has_clsact
from bench.toggle_graft import ClsactWatch
from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.helper_process import PRODUCT_HOOK_LINGER, TESTS_HOOK_LINGER_S, HelperProcess
from tests.support.netns import (
    NetnsPair,
    Stream,
    app_scope,
    entered_netns,
    extra_link,
    netns_pair,
    start_stream,
    tc_dump,
)
from tests.support.requirements import require_program, require_root
from tests.support.waiting import eventually

MiB = 1024 * 1024
LIMIT_BPS = 2 * MiB
WIRE = 1448 / 1500
START_TIMEOUT_S = 150.0  # another session's helper may hold the datapath lock


@dataclass
class World:
    bus: PrivateSystemBus
    pair: NetnsPair  # the helper's namespace and the "internet"
    app: NetnsPair  # the application's namespace, its host side
    stream: Stream
    state_dir: Path
    helpers: list[HelperProcess]

    def start_helper(self, hook_linger_s: float | None = TESTS_HOOK_LINGER_S) -> HelperProcess:
        helper = HelperProcess(self.bus.address, netns=self.pair.host_ns, state_dir=self.state_dir,
                               start_timeout_s=START_TIMEOUT_S, hook_linger_s=hook_linger_s)  # fmt: skip
        self.helpers.append(helper)
        helper.start()
        return helper

    def configuration(self) -> str:
        """The application namespace's devices, qdiscs, classes and filters,
        without program ids and action indexes (an adopted filter gets the
        new helper's program in place)."""
        dump = re.sub(
            r"direct_packets_stat \d+", "direct_packets_stat N", tc_dump(self.app.host_ns)
        )
        dump = re.sub(r"\bid \d+ name chadt_", "id N name chadt_", dump)
        return re.sub(r"\tindex \d+ ref", "\tindex N ref", dump)

    def download_share(self, seconds: float = 4.0) -> float:
        return self.stream.receiver.rate_bps(seconds) / WIRE / LIMIT_BPS


@pytest.fixture
def world(private_bus: PrivateSystemBus, tmp_path: Path) -> Iterator[World]:
    """A download by an application in its own namespace (own app scope, peer
    in another), no helper yet; everything is stopped and removed on exit."""
    require_root()
    require_program("nsenter")
    tag = secrets.token_hex(3)
    with contextlib.ExitStack() as stack:
        pair = stack.enter_context(netns_pair())
        app = stack.enter_context(extra_link(f"ctapp-{tag}", pair.peer_ns))
        scope = stack.enter_context(
            app_scope(cgroup2_mount(), own_names.desktop_id(f"NsLife{tag}"))
        )
        peer_scope = stack.enter_context(
            app_scope(cgroup2_mount(), own_names.desktop_id(f"NsLifePeer{tag}"))
        )
        stream = start_stream(
            app, 5870, "down", app_cgroup=scope, peer_cgroup=peer_scope, seconds=300
        )
        stack.callback(stream.stop)
        created = World(private_bus, pair, app, stream, tmp_path / "state", [])
        try:
            yield created
        finally:
            for helper in reversed(created.helpers):
                helper.close()


def _limit(world: World) -> str:
    """The app's download limited; its id."""
    app: str = call_helper(
        world.bus.address,
        lambda c: c.set_limit(f"pid:{world.stream.app_pid}", Direction.DOWN, LIMIT_BPS),
    )
    return app


def _limit_shaped(world: World) -> str:
    """The app's download limited and its namespace's shaper up; the app's id."""
    app = _limit(world)
    assert eventually(lambda: "htb c7ad:" in world.configuration(), 5.0), (
        "nothing shapes in the app's namespace"
    )
    return app


def _journals_of(helpers: list[HelperProcess]) -> list[Path]:
    pids = [helper._process.pid for helper in helpers if helper._process is not None]
    return [path for pid in pids for path in RUN_DIR.glob(f"tc-{pid}-*.journal")]


def test_a_killed_helpers_objects_in_another_namespace_are_adopted_and_a_stop_removes_them(
    world: World,
) -> None:
    untouched = world.configuration()
    first = world.start_helper()
    _limit_shaped(world)
    time.sleep(2.0)
    limited = world.configuration()
    first.kill()
    second = world.start_helper()
    assert eventually(lambda: "adopted download shaping" in second.log_text(), 10.0), (
        second.log_text()
    )
    time.sleep(3.0)  # the takeover finishes 1.5 s after the rules are restored
    assert world.configuration() == limited, (
        "the restart re-created or left objects in the app's namespace"
    )
    share = world.download_share()
    assert 0.9 <= share <= 1.1, f"{share:.3f} of the limit after the restart"
    second.stop()
    assert world.configuration() == untouched, (
        "the helper's stop left objects in the app's namespace"
    )
    assert _journals_of(world.helpers) == []


def test_a_killed_helpers_objects_in_another_namespace_are_removed_when_its_application_is_gone(
    world: World,
) -> None:
    untouched = world.configuration()
    first = world.start_helper()
    _limit_shaped(world)
    first.kill()
    world.stream.stop()  # the application exits while no helper runs
    second = world.start_helper()
    assert eventually(lambda: world.configuration() == untouched, 10.0), second.log_text()
    second.stop()
    assert _journals_of(world.helpers) == []


def test_a_killed_helpers_objects_in_another_namespace_go_when_the_test_closes_it(
    world: World,
) -> None:
    """No successor starts: the test's close of the SIGKILLed helper removes
    what it left in the namespace the test runs in, as a successor's start
    would (tests/support/helper_process.py): a test helper whose limited
    application lived in the machine's own namespace left its clsact, filter
    and IFB on eth0 so (clsact34). Here the close runs in the application's
    namespace, which stands for the machine's."""
    untouched = world.configuration()
    first = world.start_helper()
    _limit_shaped(world)
    first.kill()
    assert world.configuration() != untouched
    with entered_netns(world.app.host_ns):
        first.close()
    assert world.configuration() == untouched, "the killed helper's objects stayed"


def test_a_namespace_that_disappears_while_limited_just_loses_its_shaper(world: World) -> None:
    helper = world.start_helper()
    _limit_shaped(world)
    world.stream.stop()  # the container stops: its processes end and its name goes
    subprocess.run(["ip", "netns", "del", world.app.host_ns], check=True)
    assert eventually(lambda: "stopped shaping in namespace" in helper.log_text(), 5.0), (
        helper.log_text()
    )
    assert helper.returncode is None
    assert not re.search(r"ERROR|Traceback", helper.log_text()), helper.log_text()


# --- a shaper lingers after its namespace's last limit (as tc_shaper.HOOK_LINGER_S) ---
TOGGLES, ON_S, OFF_S = 2, 0.5, 1.0  # before: the shaper closed at each clear (2 grafts)


def _clear(world: World, app: str) -> None:
    call_helper(world.bus.address, lambda c: c.clear_limit(app))


def _lingering(world: World) -> str:
    """Cleared, and past the class's 1 s retirement: what stays is the linger."""
    app = _limit_shaped(world)
    _clear(world, app)
    time.sleep(1.5)
    return world.configuration()


def test_a_limit_toggled_in_another_namespace_grafts_its_clsact_once_and_goes_after_the_linger(
    world: World,
) -> None:
    untouched = world.configuration()
    assert "clsact" not in untouched, "the app's uplink has a clsact already: no graft to count"
    helper = world.start_helper(PRODUCT_HOOK_LINGER)
    with ClsactWatch(world.app) as watch:
        for _ in range(TOGGLES):
            app = _limit(world)
            assert eventually(lambda: has_clsact(world.app), 3.0, 0.02), "no hook in the namespace"
            time.sleep(ON_S)  # the user's toggling: its period is what is tested
            _clear(world, app)
            time.sleep(OFF_S)
    assert watch.grafts == 1, f"the clsact was grafted {watch.grafts} times in {TOGGLES} toggles"
    assert eventually(lambda: world.configuration() == untouched, 10.0), (
        "objects left in the app's namespace after the last clear"
    )
    # logged after its objects went (NamespaceShapers._close): the log may lag them
    assert eventually(lambda: "stopped shaping in namespace" in helper.log_text(), 5.0), (
        helper.log_text()
    )


def test_a_shaper_lingering_in_another_namespace_when_the_helper_is_killed_is_removed_by_its_successor(
    world: World,
) -> None:
    untouched = world.configuration()
    first = world.start_helper(PRODUCT_HOOK_LINGER)
    assert "clsact" in _lingering(world), "the namespace's hook went at the clear"
    first.kill()
    second = world.start_helper(PRODUCT_HOOK_LINGER)
    assert eventually(lambda: world.configuration() == untouched, 10.0), (
        f"the killed helper's lingering objects stayed:\n{second.log_text()[-3000:]}"
    )
    second.stop()
    assert _journals_of(world.helpers) == []


def _far_end_there(world: World) -> bool:
    """The app's veth's end in the peer's namespace: it goes when the app's
    namespace is freed, which nothing holding it (a thread, a socket) allows."""
    shown = subprocess.run(["ip", "-n", world.app.peer_ns, "-o", "link", "show"],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    return f" {world.app.peer_if}@" in shown


def test_a_namespace_that_disappears_while_its_shaper_lingers_is_let_go(world: World) -> None:
    helper = world.start_helper(PRODUCT_HOOK_LINGER)
    assert "clsact" in _lingering(world), "the namespace's hook went at the clear"
    world.stream.stop()  # the container stops: its processes end and its name goes
    subprocess.run(["ip", "netns", "del", world.app.host_ns], check=True)
    assert eventually(lambda: not _far_end_there(world), 5.0), (
        "the deleted namespace is still alive: the helper holds it, with its IFBs"
    )
    # logged after its objects went (NamespaceShapers._close): the log may lag them
    assert eventually(lambda: "stopped shaping in namespace" in helper.log_text(), 5.0), (
        helper.log_text()
    )
    assert helper.returncode is None
    assert not re.search(r"ERROR|WARNING.*lingering|Traceback", helper.log_text()), (
        helper.log_text()
    )
