"""tests/support/tun_link.py: a relay that does not stop on SIGTERM within
RELAY_STOP_S still leaves nothing behind. Until 2026-12-05 the wait's
timeout went up unhandled: this process's tun files stayed open, the relay
ran on holding its own, and both devices stayed in their namespaces."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import tun_link as tun_link_module
from tests.support.netns import netns_pair
from tests.support.requirements import require_root

# Holds the tun files it is given and ignores SIGTERM: a relay stuck in a write.
DEAF = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(flush=True); time.sleep(60)"


def _deaf_relay(first: int, second: int) -> subprocess.Popen[bytes]:
    relay = subprocess.Popen([sys.executable, "-c", DEAF], pass_fds=(first, second),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    assert relay.stdout is not None
    relay.stdout.readline()  # SIGTERM is ignored from here on
    relay.stdout.close()
    return relay


def _device_in(netns: str, name: str) -> bool:
    shown = subprocess.run(["ip", "-n", netns, "link", "show", "dev", name], capture_output=True)
    return shown.returncode == 0


def test_a_relay_deaf_to_sigterm_is_killed_and_the_devices_go(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    require_root()
    monkeypatch.setattr(tun_link_module, "RELAY_STOP_S", 0.3)
    started: list[subprocess.Popen[bytes]] = []

    def recorded(first: int, second: int) -> subprocess.Popen[bytes]:
        started.append(_deaf_relay(first, second))
        return started[-1]

    monkeypatch.setattr(tun_link_module, "_start_relay", recorded)
    with netns_pair() as pair:
        with (
            pytest.raises(RuntimeError, match=r"did not stop in 0\.3 s of SIGTERM"),
            tun_link_module.tun_link(pair) as tun,
        ):
            assert _device_in(pair.host_ns, tun.host_if)
        assert len(started) == 2 and all(relay.poll() is not None for relay in started)
        assert not _device_in(pair.host_ns, tun.host_if)
        assert not _device_in(pair.peer_ns, tun.peer_if)
