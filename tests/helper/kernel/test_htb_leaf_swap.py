"""Swapping a TBF leaf for a bfifo (htb.HtbHierarchy._bfifo_leaf) with a
kernel that refuses the delete: the hierarchy must not forget a TBF the
kernel still has (review L3), or every later sync would try to replace a
bfifo over it, which the kernel refuses (EINVAL), for as long as it runs."""

from __future__ import annotations

import errno

import pytest
from chadthrottle.contract import Direction
from chadthrottle.helper.errors import KernelError
from chadthrottle.helper.kernel.htb import HtbHierarchy
from pyroute2.netlink.exceptions import NetlinkError


class _Kernel:
    """An IPRoute stand-in that refuses a delete with the given errno."""

    def __init__(self, delete_errno: int) -> None:
        self.delete_errno = delete_errno
        self.calls: list[tuple[str, tuple[object, ...]]] = []

    def tc(self, command: str, *args: object, **_kwargs: object) -> None:
        self.calls.append((command, args))
        if command == "del":
            raise NetlinkError(self.delete_errno)


def _hierarchy(kernel: _Kernel) -> HtbHierarchy:
    hierarchy = HtbHierarchy(kernel, 3, Direction.UP)  # type: ignore[arg-type]
    hierarchy._tbf[1] = None  # a TBF leaf, as made or adopted
    return hierarchy


def test_a_tbf_the_kernel_would_not_delete_is_still_known() -> None:
    kernel = _Kernel(errno.EBUSY)
    hierarchy = _hierarchy(kernel)
    with pytest.raises(KernelError):
        hierarchy._bfifo_leaf(1, 75_000)
    assert 1 in hierarchy._tbf and [c for c, _ in kernel.calls] == ["del"]


def test_a_tbf_already_gone_is_replaced_by_the_bfifo() -> None:
    kernel = _Kernel(errno.ENOENT)
    hierarchy = _hierarchy(kernel)
    hierarchy._bfifo_leaf(1, 75_000)
    assert 1 not in hierarchy._tbf and hierarchy._leaf_limits[1] == 75_000
    assert [c for c, _ in kernel.calls] == ["del", "replace"]
