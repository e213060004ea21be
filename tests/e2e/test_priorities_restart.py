"""Priorities across a SIGKILL (issue 16): the next helper adopts the link
tree as it was, keeps the priority and the capacity from the stored rules,
traffic flows through it (and its TCP round trip is listed); priority normal and the capacity off then leave
the interface exactly as it was. A module of its own: it runs its own
helpers, which the module helper of test_priorities.py would keep off the bus."""

from __future__ import annotations

from pathlib import Path

from chadthrottle.helper.engine.rule_store import RULES_FILE
from chadthrottle.helper.standalone import PrivateSystemBus

from tests.e2e.test_priorities import _configuration, _listed, _waiting_app
from tests.support import own_names
from tests.support.helper_calls import call_helper, set_priority_when_listed
from tests.support.helper_process import HelperProcess
from tests.support.netns import NetnsPair, start_stream
from tests.support.waiting import eventually


def _holds(path: Path, *texts: str) -> bool:
    """The file (replaced whole by a rename, never half written) holds every text."""
    try:
        content = path.read_text()
    except FileNotFoundError:
        return False
    return all(text in content for text in texts)


def test_a_restarted_helper_adopts_the_link_tree_and_keeps_priorities(
    private_bus: PrivateSystemBus, pair: NetnsPair, tmp_path: Path
) -> None:
    bus, untouched = private_bus.address, _configuration(pair.host_ns)
    desktop_id = own_names.desktop_id("TestKeep", fresh=True)
    app_id = f"app:{desktop_id}"
    helpers = [HelperProcess(bus, netns=pair.host_ns, state_dir=tmp_path / "state")]
    try:
        with _waiting_app(desktop_id, pair.host_ns) as scope:
            helpers[0].start()
            call_helper(bus, lambda c: c.set_link_capacity(2_000_000, 1_000_000, False))
            set_priority_when_listed(bus, app_id, "high")
            assert eventually(
                lambda: call_helper(bus, lambda c: c.get_link_shaping()).up_shaping, 5.0
            )
            shaped = _configuration(pair.host_ns)
            assert "c7ad:fffe" in shaped and shaped != untouched
            stored = tmp_path / "state" / RULES_FILE  # written within 0.1 s (BackgroundSaver)
            assert eventually(lambda: _holds(stored, app_id, '"high"', '"link"'), 5.0), (
                "the priority and the capacity did not reach the disk"
            )
            helpers[0].kill()
            helpers.append(HelperProcess(bus, netns=pair.host_ns, state_dir=tmp_path / "state"))
            helpers[1].start()
            rules = call_helper(bus, lambda c: c.list_rules())
            assert {(r.app_id, r.direction, r.priority) for r in rules} == {
                (app_id, "down", "high"),
                (app_id, "up", "high"),
            }
            assert eventually(lambda: _configuration(pair.host_ns) == shaped, 5.0), (
                "the link tree was not adopted as it was"
            )
            shaping = call_helper(bus, lambda c: c.get_link_shaping())
            assert (shaping.down_set_bps, shaping.up_capacity_bps, shaping.down_shaping) == (
                2_000_000,
                1_000_000,
                True,
            )
            stream = start_stream(
                pair, 5871, "down", seconds=10, app_cgroup=scope
            )  # the application's class
            try:
                assert eventually(lambda: stream.receiver.total_bytes() > 1_000_000, 5.0), (
                    "no traffic through the tree"
                )
                assert eventually(lambda: _listed(bus, app_id).rtt_us > 0, 5.0), (
                    "no round-trip time of its TCP socket"
                )
            finally:
                stream.stop()
            set_priority_when_listed(bus, app_id, "normal")
            call_helper(bus, lambda c: c.set_link_capacity(0, 0, False))
            assert eventually(lambda: _configuration(pair.host_ns) == untouched, 10.0), (
                _configuration(pair.host_ns)
            )
    finally:
        for helper in helpers:
            helper.close()
