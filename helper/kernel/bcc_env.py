"""Find kernel headers for bcc, building a merged tree when the distribution
splits them.

bcc compiles the programs in bpf/ at start-up and needs a kernel header tree.
When the running kernel has its own (/lib/modules/$(uname -r)/build) we use it;
otherwise Debian's linux-headers-<ver>-common and -<arch> halves are merged into
one symlink tree under a cache directory, which works for the cgroup_skb and
cls_bpf programs we load (they use no version-specific kernel structs). The
tree is built aside (headers-*.tmpPID, locked while it grows) and renamed; what
a killed helper left aside is removed by the next start (remove_dead_merges).
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import logging
import os
import platform
import re
import shutil
import threading
from pathlib import Path

from chadthrottle.helper.errors import BackendUnavailable, StartCancelled, raise_if_stopping

log = logging.getLogger("chadthrottle.kernel.bcc")

DEFAULT_CACHE_DIR = Path("/var/cache/chadthrottle")
_STAGING_NAME = re.compile(r"headers-.+\.tmp([0-9]{1,10})")
_HELPER_ARGUMENTS = (b"chadthrottle.helper.main", b"chadthrottle-helper")


def _own_headers() -> Path | None:
    """The running kernel's own tree, if it can be read: the systemd unit's
    ProtectKernelModules= makes /lib/modules inaccessible (EACCES)."""
    build = Path("/lib/modules") / platform.release() / "build"
    try:
        return build if (build / "include").is_dir() else None
    except PermissionError:
        return None


def _debian_halves() -> tuple[Path, Path] | None:
    for arch_dir in sorted(glob.glob("/usr/src/linux-headers-*-amd64"), reverse=True):
        common = Path(arch_dir.removesuffix("-amd64") + "-common")
        if common.is_dir():
            return common, Path(arch_dir)
    return None


def _may_be_a_helper(pid: int) -> bool:
    """pid runs a helper, which may be merging (or we cannot tell): its tree stays."""
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError):
        return False  # gone
    except OSError:
        return True  # alive, unreadable (hidepid): not proven otherwise
    return any(argument.rsplit(b"/", 1)[-1] in _HELPER_ARGUMENTS for argument in arguments)


def remove_dead_merges(cache_dir: Path) -> list[Path]:
    """Remove the trees that merges of killed helpers left aside in cache_dir
    (a SIGKILL in the merge, seconds long, leaves one for good). Only our
    own: a directory named headers-*.tmpPID, ours (uid), whose pid is not ours
    and runs no helper, and which no merge holds locked. Returns them."""
    try:
        entries = list(os.scandir(cache_dir))
    except FileNotFoundError:
        return []
    removed = []
    for entry in entries:
        match = _STAGING_NAME.fullmatch(entry.name)
        if match is None or int(match[1]) == os.getpid() or _may_be_a_helper(int(match[1])):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
            fd = os.open(entry.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            if os.fstat(fd).st_uid != os.geteuid():
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a merge is under way in it
            shutil.rmtree(entry.path, ignore_errors=True)
        finally:
            os.close(fd)
        log.info("removed %s, left aside by a header merge whose process is gone", entry.path)
        removed.append(Path(entry.path))
    return removed


def _merge_tree(
    common: Path, arch: Path, target: Path, stopping: threading.Event | None = None
) -> None:
    """Symlink both halves into target, the arch half winning (like cp -rs; cp -rsf).
    Seconds of work under load: a stop given meanwhile ends it, the half-made
    tree removed. The tree grows aside, locked (flock) so that no other start
    takes it for a dead helper's."""
    staging = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    held = os.open(staging, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        _fill_tree(common, arch, staging, target, stopping)
    finally:
        os.close(held)


def _fill_tree(
    common: Path, arch: Path, staging: Path, target: Path, stopping: threading.Event | None
) -> None:
    """The merge proper, under the staging tree's lock."""
    try:
        for half in (common, arch):
            for dirpath, _dirnames, filenames in os.walk(half):
                raise_if_stopping(stopping, "merging the kernel headers")
                rel = Path(dirpath).relative_to(half)
                (staging / rel).mkdir(parents=True, exist_ok=True)
                for name in filenames:
                    link = staging / rel / name
                    if link.is_symlink() or link.exists():
                        link.unlink()
                    link.symlink_to(Path(dirpath) / name)
    except StartCancelled:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


def kernel_source_dir(
    cache_dir: Path = DEFAULT_CACHE_DIR, stopping: threading.Event | None = None
) -> Path:
    """A header tree bcc can compile against; raises BackendUnavailable with the
    fix (StartCancelled once stopping is set while it merges one)."""
    own = _own_headers()
    if own is not None:
        return own
    halves = _debian_halves()
    if halves is None:
        raise BackendUnavailable(
            f"no kernel headers for {platform.release()}: install linux-headers-amd64 "
            "(Debian) or your distribution's headers for the running kernel"
        )
    common, arch = halves
    remove_dead_merges(cache_dir)
    target = cache_dir / f"headers-{arch.name}"
    if not (target / "include" / "linux" / "bpf.h").exists():
        log.info("merging %s and %s into %s for bcc", common, arch, target)
        target.parent.mkdir(parents=True, exist_ok=True)
        _merge_tree(common, arch, target, stopping)
    return target


def header_tree_identity() -> str:
    """Which header tree bcc compiles against (BCC_KERNEL_SOURCE, else the tree
    kernel_source_dir would give), named without merging one: its version.h
    followed through a merged tree's symlinks to the installed file, and that
    file's SHA-256. Part of the program cache's key (program_cache.cache_key):
    under the unit (ProtectKernelModules) the tree is Debian's newest
    linux-headers halves whatever kernel runs, so upgrading them changes what
    a build gives (a compile failure they caused is tried again, review34a).
    "none" where there is no tree, "unreadable: ..." where its version.h is not."""
    named = os.environ.get("BCC_KERNEL_SOURCE")
    if named:
        tree: Path | None = Path(named)
    else:
        tree = _own_headers()
        if tree is None:
            halves = _debian_halves()
            tree = None if halves is None else halves[1]  # version.h is in the arch half
    if tree is None:
        return "none"
    version = tree / "include" / "generated" / "uapi" / "linux" / "version.h"
    try:
        real = version.resolve()
        digest = hashlib.sha256(real.read_bytes()).hexdigest()
    except OSError as error:
        return f"unreadable: {error.strerror or error}"
    return f"{real}, {digest}"


def prepare_bcc_environment(cache_dir: Path = DEFAULT_CACHE_DIR) -> None:
    """Point bcc at a usable header tree (BCC_KERNEL_SOURCE), once per process."""
    if "BCC_KERNEL_SOURCE" not in os.environ:
        os.environ["BCC_KERNEL_SOURCE"] = str(kernel_source_dir(cache_dir))
