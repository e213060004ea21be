"""The compiled programs, kept per kernel and source, so a start skips bcc.

Compiling bpf/datapath.c with bcc takes about 0.8 s and leaves LLVM mapped in
the process that did it. The helper instead loads a ProgramSet: read from
CACHE_FILE when it was built for this kernel (release and build), these
sources (every file in bpf/), these compile flags, this bcc with its LLVM
(compiler_identity.py) and this kernel header tree (bcc_env.header_tree_identity),
else built by program_build.py in a child process and stored.

The programs with the upload's one-way reading are kept in CACHE_FILE, those
without it (built where the kernel refused the others: datapath.py) in
PLAIN_CACHE_FILE; a refusal, the verifier's or the compiler's (CompileFailed),
is kept in place of the refused set, keyed as a set is (remember_refused), so
such a start loads the plain set at once.

The helper loads what the file says into the kernel as root, so the file is
trusted only when it and its directory are owned by root and writable by
nobody else, its checksum matches and it parses into a complete set; anything
else is refused with the reason logged, rebuilt and replaced.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import platform
import re
import secrets
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chadthrottle.helper.errors import BackendUnavailable, raise_if_stopping
from chadthrottle.helper.kernel import task_offsets
from chadthrottle.helper.kernel.bcc_env import header_tree_identity, kernel_source_dir
from chadthrottle.helper.kernel.compiler_identity import compiler_identity
from chadthrottle.helper.kernel.program_set import InvalidProgramSet, ProgramSet
from chadthrottle.helper.kernel.task_offsets import VMLINUX_BTF, read_btf

log = logging.getLogger("chadthrottle.kernel.program_cache")

CACHE_FILE = "bpf-programs.json"
# the programs without the upload's one-way reading (datapath.py: where the kernel or the
# compiler refuses them with it), kept beside the others: each start would build both else
PLAIN_CACHE_FILE = "bpf-programs-plain.json"
OFFSETS_FILE = "btf-offsets.json"  # remembered_offset_flags
CACHE_FORMAT = 1
MAX_CACHE_BYTES = 8 << 20
BUILD_TIMEOUT_S = 120.0
STOP_POLL_S = 0.05  # how soon a stop kills the build child
# A stop's signals, blocked in the build child from its start: under systemd a
# stop signals every process of the unit, and the child, dying of it before
# the helper's own handler had said "stopping", was taken for a failed compile
# unless the handler said so within a wait (1 s, until 2026-12-06: also what
# any other signal's death cost). The helper kills the child itself on a stop.
CHILD_BLOCKED_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})
# The helper's pid, for the child to check after setting PR_SET_PDEATHSIG.
BUILD_PARENT_VARIABLE = "CHADTHROTTLE_BUILD_PARENT"


class CacheRefused(Exception):
    """The stored program set cannot be used; the message says why."""


class KnownRefused(BackendUnavailable):
    """The kernel or the compiler refused the programs built from this key
    before (remember_refused): building them again would be refused again."""


class CompileFailed(BackendUnavailable):
    """The compiler refused the source: its diagnostics name an error in it
    (clang's "FILE:LINE:COLUMN: error: ..."), the same again for the same key.
    Not a build killed, timed out or stopped, nor a "fatal error" (a header
    missing from the kernel's header tree: the key names the tree, by its
    version.h, not whether it is whole)."""

    def __init__(self, message: str, error_line: str) -> None:
        super().__init__(message)
        self.error_line = error_line  # the compiler's first error line


# clang's diagnostic of an error in the source ("fatal error:" does not match)
_COMPILER_ERROR = re.compile(r"^\S[^\n]*:\d+:\d+: error: .*$", re.MULTILINE)


def compiler_error_line(said: str) -> str | None:
    """The first line of a failed build's output where the compiler names an
    error in the source (CompileFailed); None when there is none."""
    found = _COMPILER_ERROR.search(said)
    return None if found is None else found.group(0)


def _bcc_version() -> str:
    """bcc's version, read without importing bcc (that maps LLVM)."""
    spec = importlib.util.find_spec("bcc")
    if spec is None or spec.origin is None:
        return "none"
    try:
        return (Path(spec.origin).parent / "version.py").read_text().strip()
    except OSError:
        return "unknown"


def cache_key(
    source_dir: Path, cflags: list[str], kernel: tuple[str, str] | None = None
) -> dict[str, Any]:
    """What a stored set was built from; any difference means rebuild.
    kernel: (release, build version), the running kernel's by default."""
    release, version = kernel or (platform.release(), platform.version())
    sources = {path.name: hashlib.sha256(path.read_bytes()).hexdigest()
               for path in sorted(source_dir.iterdir()) if path.suffix in (".c", ".h")}  # fmt: skip
    return {"format": CACHE_FORMAT, "kernel_release": release, "kernel_version": version, "bcc": _bcc_version(),
            "compiler": compiler_identity(), "headers": header_tree_identity(), "sources": sources,
            "cflags": cflags}  # fmt: skip


def _check_trusted(info: os.stat_result, what: str) -> None:
    if info.st_uid != 0:
        raise CacheRefused(f"{what} is owned by uid {info.st_uid}, not root")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise CacheRefused(
            f"{what} is writable by group or others (mode {stat.S_IMODE(info.st_mode):o})"
        )


def _checked_directory(cache_dir: Path) -> None:
    try:
        info = os.lstat(cache_dir)
    except FileNotFoundError:
        raise CacheRefused(f"{cache_dir} does not exist") from None
    if not stat.S_ISDIR(info.st_mode):
        raise CacheRefused(f"{cache_dir} is not a directory")
    _check_trusted(info, str(cache_dir))


def _read_trusted(cache_dir: Path, name: str) -> bytes:
    """The body of cache_dir/name if the file and its directory are root's
    alone and it matches its checksum; raises CacheRefused saying why not."""
    _checked_directory(cache_dir)
    path = cache_dir / name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        raise CacheRefused("nothing stored yet") from None
    except OSError as error:
        raise CacheRefused(f"{path}: {error.strerror}") from None
    with os.fdopen(fd, "rb") as stored:
        info = os.fstat(stored.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise CacheRefused(f"{path} is not a regular file")
        _check_trusted(info, str(path))
        if info.st_size > MAX_CACHE_BYTES:
            raise CacheRefused(f"{path} is {info.st_size} bytes, more than {MAX_CACHE_BYTES}")
        text = stored.read(MAX_CACHE_BYTES + 1)
    checksum, _, body = text.partition(b"\n")
    if checksum.decode(errors="replace") != hashlib.sha256(body).hexdigest():
        raise CacheRefused(f"{path} does not match its checksum (corrupt or cut short)")
    return body


def read_cached(cache_dir: Path, key: dict[str, Any], name: str = CACHE_FILE) -> ProgramSet:
    """The stored set if it is trustworthy and was built from key; raises
    CacheRefused saying why not, or KnownRefused if the kernel refused what
    key builds (remember_refused)."""
    path = cache_dir / name
    body = _read_trusted(cache_dir, name)
    try:
        document = json.loads(body)
    except ValueError as error:
        raise CacheRefused(f"{path} is not JSON: {error}") from None
    if not isinstance(document, dict) or document.get("key") != key:
        raise CacheRefused("it was built for another kernel, source, compile flags or bcc")
    if isinstance(document.get("refused"), str):  # its first line (the log was logged)
        said = document["refused"].partition("\n")[0]
        raise KnownRefused(f"{said} (remembered in {path})")
    try:
        return ProgramSet.from_json(document.get("programs"))
    except InvalidProgramSet as error:
        raise CacheRefused(f"{path}: {error}") from None


def _write_trusted(cache_dir: Path, name: str, body: bytes) -> None:
    """Store body with its checksum as cache_dir/name (root-only, written
    aside and renamed: readers see the old file or the whole new one)."""
    cache_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    _checked_directory(cache_dir)
    aside = cache_dir / f".{name}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as stored:
            stored.write(hashlib.sha256(body).hexdigest().encode() + b"\n" + body)
            stored.flush()
            os.fsync(stored.fileno())
        os.replace(aside, cache_dir / name)
    except BaseException:
        aside.unlink(missing_ok=True)
        raise


def write_cache(
    cache_dir: Path, key: dict[str, Any], program_set: ProgramSet, name: str = CACHE_FILE
) -> None:
    """Store the set, as _write_trusted does."""
    body = json.dumps({"key": key, "programs": program_set.to_json()}, sort_keys=True).encode()
    _write_trusted(cache_dir, name, body)


def remember_refused(cache_dir: Path, key: dict[str, Any], reason: str, name: str) -> None:
    """Store, in place of the set, that the kernel or the compiler refused what
    key builds (the verifier's word, or the compiler's error line first): the
    next start with the same key skips it at once (KnownRefused) instead of
    compiling it again. A new kernel, bcc, LLVM, source or flag makes another
    key, tried afresh. Not stored: only a slower start."""
    body = json.dumps({"key": key, "refused": reason[:4000]}, sort_keys=True).encode()
    try:
        _write_trusted(cache_dir, name, body)
    except (OSError, CacheRefused) as error:
        log.warning("could not remember the refused BPF programs in %s: %s", cache_dir, error)


def remembered_offset_flags(
    cache_dir: Path, walk: Callable[[bytes | None], list[str]], btf: Path = VMLINUX_BTF
) -> list[str]:
    """walk(the kernel's BTF blob): task_offsets' -D flags of the struct
    offsets the programs need, part of the key a stored set is checked
    against. Walking the BTF's ~126,000 types takes 0.065 s of CPU, a sixth of
    a warm start; what it found is kept in OFFSETS_FILE beside the programs,
    under the blob's digest and that of the code that walked it
    (task_offsets.py), and taken from there while both are the same (reading
    and hashing the blob: 0.01 s). The file is trusted as the program set's is;
    one that is not, or that cannot be written, only costs the walk."""
    blob = read_btf(btf)
    if blob is None:
        return walk(None)
    key = {"btf": hashlib.sha256(blob).hexdigest(), "code": _walker_digest()}
    try:
        document = json.loads(_read_trusted(cache_dir, OFFSETS_FILE))
        flags = document["flags"] if document["key"] == key else None
        if isinstance(flags, list) and all(
            isinstance(f, str) and _OFFSET_FLAG.fullmatch(f) for f in flags
        ):
            return flags  # each a -DNAME=offset, as the walk writes them: nothing else reaches the compiler
    except (CacheRefused, ValueError, KeyError, TypeError):
        pass
    flags = walk(blob)
    body = json.dumps({"key": key, "flags": flags}, sort_keys=True).encode()
    try:
        _write_trusted(cache_dir, OFFSETS_FILE, body)
    except (OSError, CacheRefused) as error:
        log.warning("could not store the kernel's struct offsets in %s: %s", cache_dir, error)
    return flags


_OFFSET_FLAG = re.compile(r"-D[A-Z_]+=\d+")


def _walker_digest() -> str:
    """task_offsets.py's digest: a change to what it looks for, or how, walks again."""
    try:
        return hashlib.sha256(Path(task_offsets.__file__).read_bytes()).hexdigest()
    except (OSError, TypeError):  # no source beside the bytecode: never the same
        return secrets.token_hex(16)


def _run_build(
    command: list[str], environment: dict[str, str], stopping: threading.Event | None
) -> tuple[int, bytes, bytes]:
    """Run the build child to its end (returncode, stdout, stderr). Once
    stopping is set it is killed and reaped at once (StartCancelled): a stop
    during a cold start must not wait out the compiler; only this ends it on
    a stop (it starts with CHILD_BLOCKED_SIGNALS blocked), so a child that died
    of a signal is a failed build, told at once. The child also sets
    PR_SET_PDEATHSIG (program_build.py), so a SIGKILLed helper takes it along."""
    deadline = time.monotonic() + BUILD_TIMEOUT_S
    # The child inherits this thread's signal mask across fork and exec.
    unblocked = signal.pthread_sigmask(signal.SIG_BLOCK, CHILD_BLOCKED_SIGNALS)
    try:
        # -P and cwd "/": the module comes from where the helper's does, never
        # from whatever directory the helper was started in (it runs as root).
        child = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=environment, cwd="/",
        )  # fmt: skip
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)
    with child:
        try:
            while True:
                try:
                    out, err = child.communicate(timeout=STOP_POLL_S)
                    break
                except subprocess.TimeoutExpired:
                    raise_if_stopping(stopping, "compiling the BPF programs")
                    if time.monotonic() >= deadline:
                        raise BackendUnavailable(
                            f"compiling the BPF programs took more than {BUILD_TIMEOUT_S:.0f} s"
                        ) from None
        except BaseException:
            child.kill()
            child.communicate()  # reaped: no zombie, no stray compiler
            raise
    return child.returncode, out, err


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def build_in_child(
    source_dir: Path, cache_dir: Path, cflags: list[str], stopping: threading.Event | None = None
) -> ProgramSet:
    """Compile with bcc and cflags in a child process (program_build.py);
    StartCancelled if stopping is set meanwhile."""
    if importlib.util.find_spec("bcc") is None:
        raise BackendUnavailable(
            "bcc is not installed: install python3-bpfcc (Debian) and use a Python that sees it"
        )
    environment = dict(os.environ)
    if "BCC_KERNEL_SOURCE" not in environment:  # set by hand: that tree
        environment["BCC_KERNEL_SOURCE"] = str(kernel_source_dir(cache_dir, stopping))
    environment[BUILD_PARENT_VARIABLE] = str(os.getpid())
    command = [sys.executable, "-P", "-m", "chadthrottle.helper.kernel.program_build",
               str(source_dir), *cflags]  # fmt: skip
    returncode, stdout, stderr = _run_build(command, environment, stopping)
    if returncode != 0:
        said = stderr.decode(errors="replace").strip()[-3000:]
        if returncode < 0:  # not a stop's (CHILD_BLOCKED_SIGNALS): the OOM killer's, a crash
            said = f"the build was killed by {_signal_name(-returncode)}. {said}".strip()
        error_line = compiler_error_line(said) if returncode == 1 else None
        if error_line is not None:
            raise CompileFailed(f"the BPF programs did not compile: {said}", error_line)
        raise BackendUnavailable(f"the BPF programs did not compile: {said}")
    try:
        return ProgramSet.from_json(json.loads(stdout))
    except (ValueError, InvalidProgramSet) as error:
        raise BackendUnavailable(
            f"the BPF program build gave an unusable result: {error}"
        ) from None


def obtain_program_set(
    cache_dir: Path,
    source_dir: Path,
    cflags: list[str],
    kernel: tuple[str, str] | None = None,
    use_cache: bool = True,
    stopping: threading.Event | None = None,
    name: str = CACHE_FILE,
    remember_failure: bool = False,
) -> tuple[ProgramSet, str]:
    """The program set for this kernel and source, and where it came from:
    "cache", or "built" (and stored when the cache directory allows).
    use_cache False builds whatever is stored (the kernel refused it).
    stopping set gives up a build (StartCancelled), storing nothing. name: the
    variant's file in cache_dir (CACHE_FILE, PLAIN_CACHE_FILE). KnownRefused
    when the kernel refused what these flags build (remember_refused), or the
    compiler did and remember_failure was set then: a variant the helper can
    do without (the one-way reading's), whose compile failure each start
    would otherwise pay again (3.5 s, k31) before building the other."""
    key = cache_key(source_dir, cflags, kernel)
    try:
        if use_cache:
            return read_cached(cache_dir, key, name), "cache"
    except CacheRefused as reason:
        log.info("compiling the BPF programs: the stored ones are not used (%s)", reason)
    try:
        program_set = build_in_child(source_dir, cache_dir, key["cflags"], stopping)
    except CompileFailed as error:
        if remember_failure:
            said = f"the BPF programs did not compile: {error.error_line}"
            remember_refused(cache_dir, key, f"{said}\n{error}", name)
        raise
    try:
        write_cache(cache_dir, key, program_set, name)
    except (OSError, CacheRefused) as error:
        log.warning("could not store the compiled BPF programs in %s: %s", cache_dir, error)
    return program_set, "built"
