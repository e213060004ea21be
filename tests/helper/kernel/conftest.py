"""Fixtures for tests that touch the real kernel: root, BPF, tc, namespaces."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.netns import NetnsPair, netns_pair
from tests.support.requirements import require, require_program, require_root


def _bcc_importable() -> bool:
    try:
        import bcc  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture
def kernel_ready(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root, bcc and iproute2; returns a cache dir for the merged kernel headers."""
    require_root()
    require(_bcc_importable(), "needs bcc (Debian: python3-bpfcc) visible to this Python")
    require_program("tc")
    require_program("nsenter")
    return Path("/var/cache/chadthrottle")


@pytest.fixture
def pair(kernel_ready: Path) -> Iterator[NetnsPair]:
    with netns_pair() as created:
        yield created
