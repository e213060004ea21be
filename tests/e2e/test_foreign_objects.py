"""The attack of issue 20: tc objects that only look like the helper's.

A user's htb root and a tbf root with the helper's handle (c7ad:), and a device
named like the helper's IFBs, all in the namespace the real helper runs in.
Before, every start deleted them (the tbf made the helper exit with "failed:
'rate'"). They must survive the helper's start, a limit, clearing it and its
stop byte for byte, and the helper must start and serve all the same. (Until
2026-12-03 an upload limit was refused on such a device; uploads are caught on
its egress hook now, and its root is not the helper's to replace.)
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

from chadthrottle.contract import Direction
from chadthrottle.helper.standalone import PrivateSystemBus

from tests.support.download_settled import (
    LANDING_SLACK_BYTES,
    Landing,
    wait_until_download_settled,
)
from tests.support.helper_calls import call_helper
from tests.support.helper_process import HelperProcess
from tests.support.netns import NetnsPair, start_stream

LIMIT_BPS = 1024 * 1024
START_TIMEOUT_S = 150.0  # another session's helper may hold the datapath lock


def _run(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def _user_objects(pair: NetnsPair) -> tuple[str, str, str]:
    """A veth pair with the user's htb c7ad: (and a class) on one end and tbf
    c7ad: on the other, and an IFB named ctifb<N>; all up, so the helper sees
    the veths as uplinks."""
    tag = pair.host_ns[-6:]
    user_htb, user_tbf, user_ifb = f"cth{tag}h", f"cth{tag}t", "ctifb3"
    ip = ("ip", "-n", pair.host_ns)
    _run(*ip, "link", "add", user_htb, "type", "veth", "peer", "name", user_tbf)
    _run(*ip, "link", "add", user_ifb, "type", "ifb")
    for name in (user_htb, user_tbf, user_ifb):
        _run(*ip, "link", "set", name, "up")
    tc = ("tc", "-n", pair.host_ns)
    _run(*tc, "qdisc", "add", "dev", user_htb, "root", "handle", "c7ad:", "htb", "default", "ffff")
    _run(
        *tc,
        "class",
        "add",
        "dev",
        user_htb,
        "parent",
        "c7ad:",
        "classid",
        "c7ad:ffff",
        "htb",
        "rate",
        "5mbit",
    )
    _run(*tc, "qdisc", "add", "dev", user_tbf, "root", "handle", "c7ad:", "tbf", "rate", "1gbit", "burst", "1mb",
         "latency", "50ms")  # fmt: skip
    return user_htb, user_tbf, user_ifb


def _json_dump(pair: NetnsPair, devices: tuple[str, ...]) -> str:
    """`tc -j` qdiscs, classes and filters and `ip -j link` of the user's
    devices, without the counters the kernel bumps as they send."""
    parts = [_run("ip", "-n", pair.host_ns, "-j", "link", "show", "dev", name) for name in devices]
    for name in devices:
        for what in (
            ("qdisc", "show"),
            ("class", "show"),
            ("filter", "show"),
            ("filter", "show", "ingress"),
        ):
            parts.append(_run("tc", "-n", pair.host_ns, "-j", *what[:2], "dev", name, *what[2:]))
    return re.sub(
        r'"direct_packets_stat": ?\d+',
        '"direct_packets_stat": N',
        json.dumps([_parsed(p) for p in parts]),
    )


def _roots(pair: NetnsPair, devices: tuple[str, ...]) -> list[str]:
    return [
        _run("tc", "-n", pair.host_ns, "qdisc", "show", "dev", name, "root") for name in devices
    ]


def _parsed(text: str) -> object:
    """JSON where this iproute2 prints it (not for classes), else the text."""
    try:
        return json.loads(text) if text.strip() else []
    except ValueError:
        return text


def test_objects_that_look_like_the_helpers_survive_it_and_do_not_stop_it(
    private_bus: PrivateSystemBus, pair: NetnsPair, tmp_path: Path
) -> None:
    devices = _user_objects(pair)
    before = _json_dump(pair, devices)
    stream = start_stream(pair, 5650, "down", seconds=120)
    try:
        with HelperProcess(private_bus.address, netns=pair.host_ns, state_dir=tmp_path / "state",
                           start_timeout_s=START_TIMEOUT_S) as helper:  # fmt: skip
            assert _json_dump(pair, devices) == before, (
                "the helper's start changed the user's objects"
            )
            assert (
                call_helper(helper._bus_address, lambda c: c.list_applications()) is not None
            )  # it serves
            log_text = helper.log_text()
            for name in devices:
                assert "left alone: " in log_text and name in log_text, (
                    f"{name} was not reported:\n{log_text}"
                )

            app_id = call_helper(helper._bus_address,
                                 lambda c: c.set_limit(f"pid:{stream.app_pid}", Direction.DOWN, LIMIT_BPS))  # fmt: skip
            landing = Landing.now(stream.receiver, pair.host_ns, 5650)
            wait_until_download_settled(
                stream.receiver,
                pair.host_ns,
                5650,
                LIMIT_BPS * 1448 / 1500,
                sender_netns=pair.peer_ns,
            )
            rate = stream.receiver.rate_bps(2.0) * 1500 / 1448
            assert rate <= 1.15 * LIMIT_BPS, (
                f"the download limit does not hold: {rate / LIMIT_BPS:.2f}x"
            )
            excess = landing.excess_bytes(LIMIT_BPS * 1448 / 1500)
            assert excess <= LANDING_SLACK_BYTES, (
                f"{excess / 1e6:.1f} MB above the limit since it was set"
            )
            roots = _roots(pair, devices)
            # uploads are caught on the devices' egress hooks, before their roots: those stay as they are
            call_helper(helper._bus_address, lambda c: c.set_limit(app_id, Direction.UP, LIMIT_BPS))
            assert _roots(pair, devices) == roots, "an upload limit changed the user's root qdiscs"
            call_helper(helper._bus_address, lambda c: c.clear_limit(app_id))
            time.sleep(1.5)  # the lifted limit's classes drain and go
            assert helper.stop() == 0, helper.log_text()
        assert _json_dump(pair, devices) == before, "the user's objects changed"
    finally:
        stream.stop()
