"""Which root qdisc the tc shaper may replace: pure logic over what netlink reports."""

from __future__ import annotations

import pytest

from chadthrottle.helper.kernel.interfaces import Qdisc


@pytest.mark.parametrize("kind", ["noqueue", "pfifo_fast", "mq", "fq_codel", "fq", "cake", "fq_pie", "sfq"])
def test_a_root_the_kernel_attached_may_be_replaced(kind: str) -> None:
    """net.core.default_qdisc may name any of these; the kernel gives it handle 0."""
    assert Qdisc(kind, 0).is_default


@pytest.mark.parametrize("kind", ["fq_codel", "cake", "htb", "tbf"])
def test_a_root_someone_added_is_not_the_kernels(kind: str) -> None:
    assert not Qdisc(kind, 0x8001 << 16).is_default
