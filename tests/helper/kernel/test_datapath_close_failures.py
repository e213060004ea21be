"""A datapath that could not undo what it set says so when it closes
(Datapath.close raises, once it has done all the rest), so the helper does
not write its run record "stopped" ("its limits are off") while a program of
it stays attached (a policer's limits hold on in it). The real datapath; the
detach made to report a failure after it really detached, so nothing is left
on the machine (review25)."""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path

import pytest
from chadthrottle.helper.kernel import bpf_syscalls
from chadthrottle.helper.kernel.datapath import Datapath


def _reporting(errno_code: int) -> Callable[[int, int, int], None]:
    """detach_from_cgroup that detaches, then says it failed with errno_code."""
    real = bpf_syscalls.detach_from_cgroup

    def detach(prog_fd: int, cgroup_fd: int, attach_type: int) -> None:
        real(prog_fd, cgroup_fd, attach_type)  # type: ignore[arg-type]
        raise OSError(errno_code, "said by the test")

    return detach


def test_a_program_it_could_not_detach_fails_the_close(
    kernel_ready: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: logged, close returned, and the run record said stopped."""
    path = Datapath(cache_dir=kernel_ready)
    path.open()
    monkeypatch.setattr(bpf_syscalls, "detach_from_cgroup", _reporting(errno.EPERM))
    with pytest.raises(OSError, match="said by the test"):
        path.close()
    path.close()  # the rest was done: nothing left to undo, nothing raised


def test_a_program_already_detached_is_no_failure(
    kernel_ready: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOENT: not attached (someone detached it): nothing of it holds."""
    path = Datapath(cache_dir=kernel_ready)
    path.open()
    monkeypatch.setattr(bpf_syscalls, "detach_from_cgroup", _reporting(errno.ENOENT))
    path.close()
