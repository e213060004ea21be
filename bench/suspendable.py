"""A Datapath whose programs can be taken off the cgroup root and put back
within microseconds, for benchmarks that compare with and without them on one
running connection (bench/overhead.py).

The helper never does this (its programs are attached from start to stop), so
it lives here and not in helper/kernel/datapath.py (issue 18: product code
carries no benchmark hooks).
"""

from __future__ import annotations

from pathlib import Path

from chadthrottle.helper.kernel import bpf_syscalls
from chadthrottle.helper.kernel.bcc_env import DEFAULT_CACHE_DIR
from chadthrottle.helper.kernel.bpf_syscalls import CgroupAttachType
from chadthrottle.helper.kernel.datapath import Datapath


class SuspendableDatapath(Datapath):
    """Datapath with suspend() and resume(); close() removes everything either way."""

    def __init__(
        self, cgroup_root: Path | None = None, cache_dir: Path = DEFAULT_CACHE_DIR
    ) -> None:
        super().__init__(cgroup_root, cache_dir)
        self._suspended: list[tuple[int, CgroupAttachType]] = []  # loaded, taken off

    def suspend(self) -> None:
        """Take the programs off the cgroup root, keeping them and their maps
        loaded, so resume() puts the same ones back."""
        while self._attached:
            prog_fd, attach_type = self._attached[-1]
            bpf_syscalls.detach_from_cgroup(prog_fd, self._cgroup_fd, attach_type)
            self._suspended.insert(0, self._attached.pop())

    def resume(self) -> None:
        """Attach what suspend() took off."""
        while self._suspended:
            prog_fd, attach_type = self._suspended[0]
            bpf_syscalls.attach_to_cgroup(prog_fd, self._cgroup_fd, attach_type)
            self._attached.append(self._suspended.pop(0))

    def close(self) -> None:
        """Remove everything; programs taken off are unloaded with the rest."""
        self._suspended.clear()
        super().close()
