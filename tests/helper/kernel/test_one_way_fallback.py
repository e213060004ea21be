"""The programs with the upload's one-way reading sit at the verifier's edge
(chadt_tc_out): where a kernel or a compiler refuses them, the datapath is
built and loaded without it, whole (limits, counting), the reading off and
said why, and the refusal remembered so the next start loads the plain set
from the cache (review32 K8). The refusal is a real one: the build with the
reading gets -DCHADT_ONE_WAY_UNVERIFIABLE (program_build.ONE_WAY_REFUSED_VARIABLE),
a map value read without its NULL check in chadt_tc_out, which the kernel's
verifier refuses; the loader is the product's."""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path

import pytest
from chadthrottle.contract import Direction
from chadthrottle.helper.errors import BackendUnavailable
from chadthrottle.helper.kernel import program_cache
from chadthrottle.helper.kernel.bcc_env import kernel_source_dir
from chadthrottle.helper.kernel.bpf_objects import ProgramRejected
from chadthrottle.helper.kernel.datapath import Datapath, _verifier_refused, _why
from chadthrottle.helper.kernel.htb import ClassSpec
from chadthrottle.helper.kernel.one_way import UploadQueueReader, one_way_notes
from chadthrottle.helper.kernel.program_build import ONE_WAY_REFUSED_VARIABLE
from chadthrottle.helper.kernel.program_cache import (
    CACHE_FILE,
    PLAIN_CACHE_FILE,
    compiler_error_line,
)
from chadthrottle.helper.kernel.program_set import ProgramSet

from tests.support.held_streams import streams_held_to
from tests.support.netns import NetnsPair, tc_shaper_in

LIMIT = ClassSpec(rate_bps=1_000_000, burst_bytes=131072)
SLOTS = {Direction.DOWN: 3, Direction.UP: 4}


@pytest.fixture
def cache_dir(tmp_path: Path, kernel_ready: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache of the test's own (the shared one keeps the set with the reading), and the
    shared header tree (no merge per test)."""
    monkeypatch.setenv("BCC_KERNEL_SOURCE", str(kernel_source_dir(kernel_ready)))
    directory = tmp_path / "cache"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    tmp_path.chmod(0o755)
    return directory


def test_a_refused_reading_leaves_the_datapath_whole_limiting_and_counting(
    pair: NetnsPair, cache_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(ONE_WAY_REFUSED_VARIABLE, "1")
    datapath = Datapath(cache_dir=cache_dir)
    datapath.open()
    try:
        # the reading's build was refused by the verifier, and said so
        assert "refused" in datapath.one_way_off, datapath.one_way_off
        assert datapath.one_way_maps() is None
        reader = UploadQueueReader(datapath)
        reader.start(1)
        assert reader.look() is None and reader.reading_from is None
        assert reader.off == datapath.one_way_off
        with tc_shaper_in(pair.host_ns, datapath) as shaper:
            _limits_and_counts(pair, datapath, shaper, tmp_path)
    finally:
        datapath.close()
    remembered = json.loads((cache_dir / CACHE_FILE).read_bytes().partition(b"\n")[2])
    assert "refused" in remembered and "programs" not in remembered
    assert (cache_dir / PLAIN_CACHE_FILE).exists()
    # the next start skips the refused build: the plain set from the cache, no compile
    again = Datapath(cache_dir=cache_dir)
    started = time.monotonic()
    again.open()
    try:
        took = time.monotonic() - started
        assert again.program_origin == "cache" and "remembered" in again.one_way_off
        assert again.one_way_maps() is None
    finally:
        again.close()
    assert took < 5.0, took  # a compile here is 1-3 s; a cached load 0.1-0.3 s


def _limits_and_counts(pair: NetnsPair, datapath: Datapath, shaper: object, tmp_path: Path) -> None:
    """A download and an upload, each its own limited application: each held to its
    limit by the link tree's tc programs, and each counted by the cgroup programs."""
    from chadthrottle.helper.kernel.tc_shaper import TcShaper

    assert isinstance(shaper, TcShaper)
    ports = {Direction.DOWN: 5690, Direction.UP: 5691}
    with streams_held_to(pair, datapath, shaper, LIMIT, SLOTS, ports,
                         ("chadt_tc_in", "chadt_tc_out"), tmp_path) as streams:  # fmt: skip
        counted = {sample.owner_tgid: sample for sample in datapath.read_traffic()}
        # 6 s at the limit and more: each application's own direction counted
        down, up = counted[streams[Direction.DOWN].app_pid], counted[streams[Direction.UP].app_pid]
        assert down.rx_bytes >= 4 * LIMIT.rate_bps, down
        assert up.tx_bytes >= 4 * LIMIT.rate_bps, up


def test_a_too_complex_refusal_is_remembered_whatever_errno_the_kernel_gives_it() -> None:
    """The refusal the reading risks, "The sequence of 8193 jumps is too complex" (owd29k), is
    E2BIG on this 6.18 kernel but EFAULT before the kernel's "fix the return value of
    push_stack" (2025-09; Debian's 6.1 and 6.12): not remembered there, every start compiled
    the refused set again (review33a M4). An EFAULT or ENOMEM of no such log stays transient."""

    def refused(number: int, log: str) -> BackendUnavailable:
        error = BackendUnavailable("the kernel refused the BPF programs")
        error.__cause__ = ProgramRejected(number, f"chadt_tc_out: {os.strerror(number)}\n{log}")
        return error

    too_complex = "The sequence of 8193 jumps is too complex.\nprocessed 163857 insns"
    for number in (errno.E2BIG, errno.EFAULT, errno.ENOMEM, errno.EACCES):
        assert _verifier_refused(refused(number, too_complex)), number
    assert not _verifier_refused(refused(errno.EFAULT, "0: (bf) r6 = r1\n"))
    assert not _verifier_refused(refused(errno.ENOMEM, ""))


def test_a_compilers_refusal_is_told_by_its_error_line() -> None:
    """A failed build's message begins "In file included from ...": ListBackends' note
    said only that (review33a L2, an #error under CHADT_ONE_WAY); it tells the error."""
    failed = BackendUnavailable(
        "the BPF programs did not compile: In file included from /virtual/main.c:75:\n"
        "/usr/lib/chadthrottle/bpf/one_way.h:27:2: error: unknown type name 'u128'\n"
        "1 error generated."
    )
    assert _why(failed) == (
        "the BPF programs did not compile: "
        "/usr/lib/chadthrottle/bpf/one_way.h:27:2: error: unknown type name 'u128'"
    )
    refused = BackendUnavailable("the kernel refused the BPF programs: [Errno 13] x\nerror: y")
    assert _why(refused) == "the kernel refused the BPF programs: [Errno 13] x"


def test_a_compile_failure_of_the_reading_is_remembered(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The build with the reading failing in the compiler (-DCHADT_ONE_WAY_UNCOMPILABLE:
    an #error in bpf/one_way.h) is remembered under its key as a verifier's refusal is:
    the next start loads the plain set from the cache and compiles nothing. Before k31
    each start compiled the failing set again before the plain one (3.5 s a start)."""
    monkeypatch.setenv(ONE_WAY_REFUSED_VARIABLE, "compile")
    builds: list[list[str]] = []
    real_build = program_cache.build_in_child

    def counted(source_dir: Path, cache: Path, cflags: list[str], *rest: object) -> ProgramSet:
        builds.append(cflags)
        return real_build(source_dir, cache, cflags, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(program_cache, "build_in_child", counted)
    datapath = Datapath(cache_dir=cache_dir)
    datapath.open()
    try:
        assert datapath.one_way_maps() is None
        said = datapath.one_way_off
        assert "did not compile" in said and "error:" in said and "UNCOMPILABLE" in said, said
    finally:
        datapath.close()
    assert len(builds) == 2, builds  # the failing one, then the plain one
    remembered = json.loads((cache_dir / CACHE_FILE).read_bytes().partition(b"\n")[2])
    assert "did not compile" in remembered["refused"] and "programs" not in remembered
    builds.clear()
    again = Datapath(cache_dir=cache_dir)
    again.open()
    try:
        assert builds == [], "a start compiled again"
        assert again.program_origin == "cache" and again.one_way_maps() is None
        # the note still tells the compiler's error line, and that it was remembered
        note = one_way_notes(again)
        assert len(note) == 1 and "error:" in note[0] and "remembered" in note[0], note
    finally:
        again.close()


def test_only_a_compilers_error_in_the_source_counts_as_its_refusal() -> None:
    """What is remembered is the compiler naming an error in the source, the same again
    for the same key; a header missing from the kernel's tree (not in the key), a
    killed or timed-out build, is tried again at the next start."""
    included = "In file included from /virtual/main.c:75:\n"
    error = '/usr/lib/chadthrottle/bpf/one_way.h:33:2: error: "a test\'s compile failure"'
    assert compiler_error_line(f"program_build: x\n{included}{error}\n1 error generated.") == error
    macro = "<command line>:3:9: error: 'X' macro redefined [-Werror,-Wmacro-redefined]"
    assert compiler_error_line(macro) == macro
    fatal = "/virtual/main.c:38:10: fatal error: 'uapi/linux/bpf.h' file not found"
    assert compiler_error_line(fatal) is None
    assert compiler_error_line("the build was killed by SIGKILL.") is None
    assert compiler_error_line("error: cannot allocate memory") is None
