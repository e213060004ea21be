"""Fixtures for tests that touch the real kernel: root, BPF, tc, namespaces."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.htb_change import ClassChanger
from chadthrottle.helper.kernel.tc_shaper import TcShaper
from pyroute2 import IPRoute

from tests.support.netns import NetnsPair, entered_netns, netns_pair, tc_shaper_in
from tests.support.requirements import require, require_program, require_root


def _bcc_importable() -> bool:
    try:
        import bcc  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture
def kernel_ready(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root, bcc and iproute2; returns the cache dir (merged kernel headers,
    compiled programs) the tests share."""
    require_root()
    require(_bcc_importable(), "needs bcc (Debian: python3-bpfcc) visible to this Python")
    require_program("tc")
    require_program("nsenter")
    return Path("/var/cache/chadthrottle")


@pytest.fixture
def pair(kernel_ready: Path) -> Iterator[NetnsPair]:
    with netns_pair() as created:
        yield created


@pytest.fixture
def datapath(kernel_ready: Path) -> Iterator[Datapath]:
    path = Datapath(cache_dir=kernel_ready)
    path.open()
    try:
        yield path
    finally:
        path.close()


@pytest.fixture
def shaper(pair: NetnsPair, datapath: Datapath) -> Iterator[TcShaper]:
    """A TcShaper on the pair's host namespace, with the real datapath's programs."""
    with tc_shaper_in(pair.host_ns, datapath) as created:
        yield created


@pytest.fixture
def netlink(pair: NetnsPair) -> Iterator[tuple[IPRoute, ClassChanger]]:
    """A netlink socket in the pair's host namespace and a class changer beside it."""
    with entered_netns(pair.host_ns):
        ipr = IPRoute()
        changer = ClassChanger.beside(ipr.fileno())
    assert changer is not None
    try:
        yield ipr, changer
    finally:
        changer.close()
        ipr.close()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP listener on loopback (an ephemeral port): connections to tag and pass on."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server
