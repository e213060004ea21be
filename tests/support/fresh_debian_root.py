"""A clean Debian 12 root to install the package into, and the runs inside it.

The base root (debootstrap --variant=minbase, plus the test's own tools) is made
once a day and kept as a tarball in the machine's cache (CACHE_DIR), with the
.debs apt downloads into it, so a second run the same day, from any checkout,
only unpacks it; the first run of the day makes it (80-85 s in CI's fresh
clones on 2026-12-07: debootstrap 63-68 s, the tools 15 s). Each test run
unpacks a new copy under /var/tmp (on a tmpfs of its own where memory allows:
RUN_ROOT_TMPFS) and deletes it afterwards. The scripts that
run inside it are in tests/packaging/fresh_root/.

Everything mounted for a run is mounted in a mount namespace of its own
(`unshare --mount`, see `enter`), and the checks run in new network, pid and
cgroup namespaces inside a cgroup of their own: when the run ends, however it
ends, the mounts, the namespace's devices and qdiscs, its processes and the BPF
programs attached to its cgroup go with them.
"""

from __future__ import annotations

import datetime
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from tests.support import own_names

REPO_ROOT = Path(__file__).resolve().parents[2]
HERE = REPO_ROOT / "tests" / "packaging" / "fresh_root"  # the scripts that run inside the root
# On the machine, not in the checkout: CI tests a fresh clone each time, and
# each made the base root again (debootstrap 63-68 s and the tools 15 s of the
# package module's 185 s, 2026-12-07). CHADTHROTTLE_TEST_ROOT_CACHE names
# another directory.
CACHE_DIR = Path(
    os.environ.get("CHADTHROTTLE_TEST_ROOT_CACHE") or "/var/cache/chadthrottle-tests/fresh-root"
)
ENTER = HERE / "enter"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# Tools the checks use inside the root that the package does not depend on
# (systemd-nspawn boots the root with systemd: check-under-systemd).
TEST_TOOLS = ("iproute2", "bpftool", "systemd-container")
CHECK_DIR = "ct-check"  # in the root: the package, check-installed and its helpers
CHECK_FILES = (
    HERE / "check-installed",
    HERE / "check-under-systemd",
    HERE / "limit_check.py",
    REPO_ROOT / "tests" / "support" / "traffic.py",
)


class RootUnavailable(Exception):
    """No Debian root could be made (no debootstrap, or Debian's mirror out of reach)."""


def _run(argv: list[str], log: Path, timeout_s: float) -> subprocess.CompletedProcess[str]:
    """Run argv, its output appended to log; raises with the log's tail when it fails."""
    started = time.monotonic()
    with log.open("a") as log_file:
        log_file.write(f"\n$ {' '.join(argv)}\n")
        log_file.flush()
        result = subprocess.run(argv, stdout=log_file, stderr=subprocess.STDOUT, text=True,
                                timeout=timeout_s, check=False)  # fmt: skip
        log_file.write(f"[{time.monotonic() - started:.1f} s, exit status {result.returncode}]\n")
    if result.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{' '.join(argv[:6])} ... failed ({result.returncode}); {log}:\n{tail}")
    return result


# Installs run in a pid namespace of their own: the root's /proc then shows only
# their processes. Without it a maintainer script that stops a daemon by name
# (polkitd's, installed as the package's dependency) stopped every polkitd on
# the machine, the host's and other test sessions' included.
ISOLATED = ["unshare", "--mount", "--pid", "--fork", "--kill-child", "--"]


def _in_root(mode: str, root: Path, command: str) -> list[str]:
    return [*ISOLATED, str(ENTER), mode, str(root), "sh", "-c", command]


def _today() -> str:
    return datetime.date.today().strftime("%Y%m%d")


def trusted_cache_dir(path: Path) -> Path:
    """path, made if missing; refused unless it and its parent are real directories
    that only this user may write. What is cached there is unpacked and run as
    root: a tarball or a .deb someone else could replace must not be used."""
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)  # not the umask's mode
    path.mkdir(mode=0o755, exist_ok=True)
    for directory in (path.parent, path):
        info = directory.lstat()
        if (
            not stat.S_ISDIR(info.st_mode)
            or info.st_uid != os.geteuid()
            or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        ):
            raise RuntimeError(
                f"{directory}: not a directory only uid {os.geteuid()} may write "
                f"(mode {stat.filemode(info.st_mode)}, owner {info.st_uid}); the package "
                "test does not use a cache others could change (CHADTHROTTLE_TEST_ROOT_CACHE)"
            )
    return path


def base_root_tarball(log: Path) -> Path:
    """Today's base root, made if there is none (older ones are deleted)."""
    trusted_cache_dir(CACHE_DIR)
    tools = hashlib.sha256(" ".join(TEST_TOOLS).encode()).hexdigest()[:8]
    tarball = CACHE_DIR / f"{SUITE}-minbase-{_today()}-{tools}.tar"
    # One maker at a time: two sessions on one checkout (or two lanes) each
    # made it, and one's rename of the shared .tar.partial found it gone.
    with open(CACHE_DIR / "making.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return tarball if tarball.is_file() else _make_base_root(tarball, log)


def _make_base_root(tarball: Path, log: Path) -> Path:
    """debootstrap, the test's tools, a tarball (under the caller's lock)."""
    for stale in CACHE_DIR.glob(f"{SUITE}-minbase-*.tar"):
        stale.unlink()
    if shutil.which("debootstrap") is None:
        raise RootUnavailable("debootstrap is not installed (apt-get install debootstrap)")
    with _scratch_dir("base") as root:
        try:
            _run(["debootstrap", "--variant=minbase", SUITE, str(root), MIRROR], log, timeout_s=900)
        except RuntimeError as error:
            raise RootUnavailable(f"debootstrap {SUITE} from {MIRROR} failed: {error}") from None
        # The one setting that differs from a fresh install: `apt` keeps the .debs
        # it downloads (into today's cache, bind-mounted by apt_install).
        (root / "etc/apt/apt.conf.d/90ct-test-keep-debs").write_text(
            'Binary::apt::APT::Keep-Downloaded-Packages "true";\n'
        )
        _run(_in_root("install", root, f"apt-get update -q && apt-get install -y -q {' '.join(TEST_TOOLS)}"
                      " && apt-get clean"), log, timeout_s=900)  # fmt: skip
        partial = tarball.with_suffix(".tar.partial")
        _run(
            ["tar", "--numeric-owner", "-C", str(root), "-cf", str(partial), "."],
            log,
            timeout_s=600,
        )
        partial.rename(tarball)
    return tarball


# A run's root (about 1.3 GB once installed) in memory where there is room:
# deleting it from this machine's disk (ext4 mounted with `discard`) was most
# of the module's last 9.5 s in CI (2026-12-07 m4), 48 s at load 10; an unmount
# takes none; its 1.3 GB are not written back beside other tests. A tmpfs of our
# own, not /dev/shm (often nosuid, nodev: the root's setuid bus helper).
RUN_ROOT_TMPFS = "size=4g,mode=0755"
RUN_ROOT_TMPFS_NEEDS_KB = 8 * 1024 * 1024  # MemAvailable, else on disk as before


def _memory_to_spare() -> bool:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) >= RUN_ROOT_TMPFS_NEEDS_KB
    return False


@contextmanager
def _scratch_dir(kind: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"chadthrottle-test-root-{kind}-", dir="/var/tmp"))
    in_memory = False
    try:
        if kind == "run" and _memory_to_spare():  # else (or if it fails) on disk, as before
            in_memory = subprocess.run(["mount", "-t", "tmpfs", "-o", RUN_ROOT_TMPFS, "chadthrottle-test-root",
                                        str(path)], capture_output=True, timeout=60).returncode == 0  # fmt: skip
        path.chmod(0o755)  # it becomes the root's "/": services that drop root must get through it
        yield path
    finally:
        if in_memory:  # the runs' mount namespaces, which had copies of it, are gone
            subprocess.run(["umount", str(path)], check=False, capture_output=True, timeout=60)
        # Nothing is mounted below it any more (the mount namespaces are gone);
        # --one-file-system all the same, so a mistake cannot reach further.
        subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=False, timeout=300)


@contextmanager
def fresh_root(log: Path) -> Iterator[Path]:
    """A new copy of today's base root, deleted on exit."""
    tarball = base_root_tarball(log)
    with _scratch_dir("run") as root:
        _run(["tar", "--numeric-owner", "-C", str(root), "-xf", str(tarball)], log, timeout_s=600)
        yield root


def apt_install(root: Path, deb: Path, log: Path) -> None:
    """`apt install ./chadthrottle_*.deb` in root, as a user would; the .debs it
    downloads are kept in today's cache for the next run."""
    check_dir = root / CHECK_DIR
    check_dir.mkdir()
    shutil.copy2(deb, check_dir / deb.name)
    for path in CHECK_FILES:
        shutil.copy2(path, check_dir / path.name)
    archives = trusted_cache_dir(CACHE_DIR) / f"apt-archives-{_today()}"
    # dpkg without an fsync per file it unpacks (force-unsafe-io, as Debian's
    # container images have it): the copy is deleted after the run, and the
    # fsyncs of 157 packages were much of the install's time on a busy disk.
    # What is installed, and every maintainer script, is the same.
    (root / "etc/dpkg/dpkg.cfg.d/90ct-test-unsafe-io").write_text("force-unsafe-io\n")
    command = (
        f"mount --bind {archives} {root}/var/cache/apt/archives && exec {ENTER} install {root} sh -c "
        f"'apt-get update -q && cd /{CHECK_DIR} && apt -o APT::Sandbox::User=root install -y -q ./{deb.name}'"
    )
    # One apt at a time in the machine's cache: two sessions' installs (another
    # checkout's too) share its .debs and apt's lock file in it.
    with open(CACHE_DIR / "apt-archives.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for stale in CACHE_DIR.glob("apt-archives-*"):
            if stale != archives and stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
        (archives / "partial").mkdir(parents=True, exist_ok=True)
        _run([*ISOLATED, "sh", "-c", command], log, timeout_s=1200)


def _cgroup2_root() -> Path:
    from chadthrottle.helper.kernel.cgroups import cgroup2_mount

    return cgroup2_mount()


@contextmanager
def _own_cgroup() -> Iterator[Path]:
    """A cgroup for the run; the BPF programs attached to it go when it is removed."""
    cgroup = (
        _cgroup2_root() / f"{own_names.TEST_NAME_PREFIX}pkg-{os.getpid()}-{secrets.token_hex(3)}"
    )
    cgroup.mkdir()
    try:
        yield cgroup
    finally:
        # Children first (systemd-nspawn makes payload/ and supervisor/ below it).
        groups = sorted(
            (p for p in cgroup.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
        )
        deadline = time.monotonic() + 30
        while (
            "populated 1" in (cgroup / "cgroup.events").read_text() and time.monotonic() < deadline
        ):
            for group in [*groups, cgroup]:
                for pid in (group / "cgroup.procs").read_text().split():
                    subprocess.run(["kill", "-KILL", pid], check=False)
            time.sleep(0.1)
        for group in [*groups, cgroup]:
            group.rmdir()


class CheckRun(NamedTuple):
    returncode: int
    stdout: str  # its RESULT lines
    stderr: str  # what it said (also in the log)


def run_check_script(root: Path, log: Path, *arguments: str) -> CheckRun:
    """check-installed in root, in new namespaces, its output appended to log;
    its screenshot and the system bus's log (the bus-activated helper's output)
    kept beside log as last-gui.png and last-bus.log."""
    with _own_cgroup() as cgroup:
        command = (
            f"echo $$ > {cgroup}/cgroup.procs && exec unshare --mount --net --pid --cgroup --fork --kill-child "
            f"-- {ENTER} run {root} /{CHECK_DIR}/check-installed {' '.join(arguments)}"
        )
        started = time.monotonic()
        with log.open("a") as log_file:
            log_file.write(f"\n$ check-installed {' '.join(arguments)} in {root}\n")
            log_file.flush()
            said_from = log_file.tell()
            result = subprocess.run(["sh", "-c", command], stdout=subprocess.PIPE, stderr=log_file, text=True,
                                    timeout=900, check=False)  # fmt: skip
        with log.open(errors="replace") as log_file:
            log_file.seek(said_from)
            said = log_file.read()
        with log.open("a") as log_file:
            log_file.write(result.stdout)
            log_file.write(
                f"[{time.monotonic() - started:.1f} s, exit status {result.returncode}]\n"
            )
    for kept, name in (("gui.png", "last-gui.png"), ("bus.log", "last-bus.log")):
        if (root / CHECK_DIR / kept).is_file():
            shutil.copy2(root / CHECK_DIR / kept, log.with_name(name))
    return CheckRun(result.returncode, result.stdout, said)


def run_checks(root: Path, log: Path) -> dict[str, Any]:
    """check-installed in root, in new namespaces; its RESULT lines, parsed."""
    run = run_check_script(root, log)
    if run.returncode != 0:
        # what it said last (the failed step, the bus's log), not the RESULT lines after it
        raise RuntimeError(f"check-installed failed ({run.returncode}); all in {log}; it said last:\n"
                           f"{run.stderr[-8000:]}")  # fmt: skip
    results: dict[str, Any] = {}
    for line in run.stdout.split("\nRESULT "):
        name, _, value = line.removeprefix("RESULT ").partition(" ")
        try:
            results[name] = json.loads(value)
        except json.JSONDecodeError as error:  # it said nothing of which before
            raise RuntimeError(
                f"check-installed's RESULT {name} is not JSON ({error}): {value[:500]!r}; {log}"
            ) from None
    return results
