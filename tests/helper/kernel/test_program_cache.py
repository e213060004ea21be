"""The compiled program set is stored per kernel, source, compile flags and
bcc, used while they stay the same, rebuilt when any changes, and refused
(then rebuilt and replaced) when the stored file cannot be trusted. Real bcc
builds in a child process, real loads into the kernel; a build of sources,
flags and header tree the module already compiled is answered with that
compile's set (`compiles_once`)."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import shutil
import struct
import threading
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path

import pytest
from chadthrottle.helper.kernel import program_cache
from chadthrottle.helper.kernel.bcc_env import kernel_source_dir
from chadthrottle.helper.kernel.compiler_identity import compiler_identity
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.program_build import bpf_source_dir, compile_flags
from chadthrottle.helper.kernel.program_cache import (
    CACHE_FILE,
    CacheRefused,
    KnownRefused,
    cache_key,
    obtain_program_set,
    read_cached,
    remember_refused,
    write_cache,
)
from chadthrottle.helper.kernel.program_set import PROGRAMS, LoadedPrograms, ProgramSet

from tests.support.requirements import require

NOBODY = 65534


def _copy_of_bpf(directory: Path) -> Path:
    directory.mkdir()
    for entry in resources.files("chadthrottle.bpf").iterdir():
        if entry.name.endswith((".c", ".h")):
            (directory / entry.name).write_bytes(entry.read_bytes())
    return directory


def _inputs(source_dir: Path, cflags: list[str]) -> tuple[object, ...] | None:
    """What a build compiles: each .c and .h file's bytes (what bcc reads of
    the folder), the flags and the header tree (None: no tree named, the
    build would merge one itself)."""
    headers = os.environ.get("BCC_KERNEL_SOURCE")
    if headers is None:
        return None
    files = hashlib.sha256()
    for path in sorted(source_dir.glob("*.[ch]")):
        files.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return files.hexdigest(), tuple(cflags), headers


@pytest.fixture(scope="module", autouse=True)
def compiles_once() -> Iterator[dict[str, int]]:
    """Each distinct build once, for real (bcc in the child, what it gave loaded
    by the tests), then its set for a build of the same inputs. The tests judge
    whether the cache builds (the origin), what it refuses, stores and trusts,
    and that the kernel takes the set; a repeat of a compile already made (the
    same bytes: two builds compared equal) adds only its 3-4 s, and 9 of the
    module's 16 builds are repeats (docs/development.md, "Suite time"). The
    flags name the sources' folder (-I), so a copy elsewhere is compiled
    anew. A failed build is not kept. Yields the counts of both kinds."""
    real = program_cache.build_in_child
    made: dict[tuple[object, ...], ProgramSet] = {}
    counts = {"built": 0, "repeated": 0}

    def once(source_dir: Path, cache_dir: Path, cflags: list[str],
             stopping: threading.Event | None = None) -> ProgramSet:  # fmt: skip
        inputs = _inputs(source_dir, cflags)
        if inputs is not None and inputs in made:
            counts["repeated"] += 1
            return made[inputs]
        program_set = real(source_dir, cache_dir, cflags, stopping)
        counts["built"] += 1
        if inputs is not None:
            made[inputs] = program_set
        return program_set

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(program_cache, "build_in_child", once)
        yield counts
    print(f"\nprogram builds of the module: {counts}")


@pytest.fixture
def headers(kernel_ready: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Builds use the shared header tree (no merge per test)."""
    monkeypatch.setenv("BCC_KERNEL_SOURCE", str(kernel_source_dir(kernel_ready)))


@pytest.fixture
def sources(tmp_path: Path, headers: None) -> Path:
    """A copy of bpf/ that a test may change."""
    return _copy_of_bpf(tmp_path / "bpf")


@pytest.fixture(scope="module")
def built_once(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """Unchanged sources and a good stored file for them (one build for the module)."""
    root = tmp_path_factory.mktemp("built_once")
    root.chmod(0o755)
    shared = _copy_of_bpf(root / "bpf")
    cache = root / "cache"
    cache.mkdir(mode=0o755)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BCC_KERNEL_SOURCE", str(kernel_source_dir(Path("/var/cache/chadthrottle"))))
        obtain_program_set(cache, shared, compile_flags(shared))
    return shared, (cache / CACHE_FILE).read_bytes()


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "cache"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    return directory


def _obtain(cache_dir: Path, sources: Path, extra_flags: tuple[str, ...] = (),
            kernel: tuple[str, str] | None = None) -> str:  # fmt: skip
    program_set, origin = obtain_program_set(
        cache_dir, sources, compile_flags(sources) + list(extra_flags), kernel
    )
    loaded = LoadedPrograms(program_set)  # whatever it came from, the kernel takes it
    try:
        assert set(loaded.program_fds) == set(PROGRAMS)
    finally:
        loaded.close()
    return origin


def test_a_stored_set_is_used_until_kernel_source_or_flags_change(
    cache_dir: Path, sources: Path
) -> None:
    assert _obtain(cache_dir, sources) == "built"
    stored = cache_dir / CACHE_FILE
    assert (stored.stat().st_uid, stored.stat().st_mode & 0o777) == (0, 0o600)
    assert _obtain(cache_dir, sources) == "cache"

    another_kernel = (platform.release() + "-other", platform.version())
    assert _obtain(cache_dir, sources, kernel=another_kernel) == "built"
    assert _obtain(cache_dir, sources, kernel=another_kernel) == "cache"
    assert _obtain(cache_dir, sources) == "built"  # back on the running kernel

    with open(sources / "maps.h", "a") as header:
        header.write("/* a changed header */\n")
    assert _obtain(cache_dir, sources) == "built"
    assert _obtain(cache_dir, sources) == "cache"

    assert _obtain(cache_dir, sources, extra_flags=("-DCHADT_TEST_FLAG=1",)) == "built"
    assert _obtain(cache_dir, sources, extra_flags=("-DCHADT_TEST_FLAG=1",)) == "cache"


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _cut_short(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def _give_to_nobody(path: Path) -> None:
    os.chown(path, NOBODY, NOBODY)


def _make_group_writable(path: Path) -> None:
    path.chmod(0o620)


def _replace_with_a_symlink(path: Path) -> None:
    elsewhere = path.with_name("elsewhere.json")
    shutil.copy2(path, elsewhere)
    path.unlink()
    path.symlink_to(elsewhere)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_flip_a_byte, "checksum"),
        (_cut_short, "checksum"),
        (_give_to_nobody, f"owned by uid {NOBODY}"),
        (_make_group_writable, "writable by group or others"),
        (_replace_with_a_symlink, "Too many levels of symbolic links"),
    ],
    ids=["corrupt", "partial", "foreign-owned", "group-writable", "symlink"],
)
def test_an_untrustworthy_file_is_refused_rebuilt_and_replaced(
    cache_dir: Path,
    headers: None,
    built_once: tuple[Path, bytes],
    damage: Callable[[Path], None],
    reason: str,
) -> None:
    sources, good = built_once
    stored = cache_dir / CACHE_FILE
    stored.write_bytes(good)
    stored.chmod(0o600)
    assert _obtain(cache_dir, sources) == "cache"
    damage(stored)
    key = cache_key(sources, compile_flags(sources))
    with pytest.raises(CacheRefused, match=reason):
        read_cached(cache_dir, key)
    assert _obtain(cache_dir, sources) == "built"
    assert not stored.is_symlink() and (stored.stat().st_uid, stored.stat().st_mode & 0o777) == (
        0,
        0o600,
    )
    read_cached(cache_dir, key)  # the replacement is trusted
    assert _obtain(cache_dir, sources) == "cache"


def test_a_directory_others_may_write_is_neither_read_nor_written(
    cache_dir: Path, headers: None, built_once: tuple[Path, bytes]
) -> None:
    sources, _good = built_once  # unchanged sources: the module's compile of them
    cache_dir.chmod(0o777)
    assert _obtain(cache_dir, sources) == "built"
    assert not (cache_dir / CACHE_FILE).exists()
    with pytest.raises(CacheRefused, match="writable by group or others"):
        read_cached(cache_dir, cache_key(sources, compile_flags(sources)))


def test_the_flags_the_set_is_stored_under_are_the_ones_it_was_compiled_with(
    cache_dir: Path, sources: Path
) -> None:
    """The build child compiles with the cache key's flags, not flags of its
    own: a flag only the caller passes reaches the compiler (it made the build
    fail here, while the child computed its flags itself it was built without
    it and stored under a key that named it)."""
    from chadthrottle.helper.errors import BackendUnavailable

    with open(sources / "datapath.c", "a") as source:
        source.write("\n#ifdef CHADT_CALLERS_FLAG\n#error the caller's flag reached bcc\n#endif\n")
    with pytest.raises(BackendUnavailable, match="the caller's flag reached bcc"):
        _obtain(cache_dir, sources, extra_flags=("-DCHADT_CALLERS_FLAG=1",))
    assert not (cache_dir / CACHE_FILE).exists()


def test_a_source_that_does_not_compile_is_a_named_error(cache_dir: Path, sources: Path) -> None:
    from chadthrottle.helper.errors import BackendUnavailable

    with open(sources / "datapath.c", "a") as source:
        source.write("\nthis is not C;\n")
    with pytest.raises(BackendUnavailable, match="did not compile"):
        _obtain(cache_dir, sources)
    assert not (cache_dir / CACHE_FILE).exists()


EXIT_ONLY = bytes([0x95, 0, 0, 0, 0, 0, 0, 0])  # returns r0 unset: the verifier refuses it


def test_a_stored_set_the_kernel_refuses_is_compiled_again(cache_dir: Path, headers: None) -> None:
    source_dir = bpf_source_dir()
    flags = compile_flags(source_dir)
    good, _origin = obtain_program_set(cache_dir, source_dir, flags)
    key = cache_key(source_dir, flags)
    write_cache(
        cache_dir, key, ProgramSet(good.btf, good.maps, {**good.programs, "chadt_sock": EXIT_ONLY})
    )
    assert read_cached(cache_dir, key).programs["chadt_sock"] == EXIT_ONLY  # trusted, but wrong
    datapath = Datapath(cache_dir=cache_dir)
    datapath.open()
    try:
        assert datapath.program_origin == "built"
    finally:
        datapath.close()
    assert read_cached(cache_dir, key).programs["chadt_sock"] == good.programs["chadt_sock"]


def _shared_object(path: Path, needed: list[str]) -> None:
    """A minimal ELF64 shared object whose dynamic section names `needed` (DT_NEEDED):
    what compiler_identity reads of libbcc, nothing more."""
    strings = b"\0" + b"".join(name.encode() + b"\0" for name in needed)
    offsets = [strings.index(b"\0" + name.encode() + b"\0") + 1 for name in needed]
    strings += b"\0" * (-len(strings) % 8)
    dynamic = b"".join(struct.pack("<qQ", 1, offset) for offset in offsets)
    dynamic += struct.pack("<qQ", 0, 0)
    str_at, dyn_at = 64, 64 + len(strings)
    shoff = dyn_at + len(dynamic)
    header = b"\x7fELF\x02\x01\x01" + b"\0" * 9
    header += struct.pack("<HHIQQQIHHHHHH", 3, 62, 1, 0, 0, shoff, 0, 64, 56, 0, 64, 3, 0)
    sections = b"\0" * 64  # the null section
    sections += struct.pack("<IIQQQQIIQQ", 0, 3, 0, 0, str_at, len(strings), 0, 0, 1, 0)
    sections += struct.pack("<IIQQQQIIQQ", 0, 6, 0, 0, dyn_at, len(dynamic), 1, 0, 8, 16)
    path.write_bytes(header + strings + dynamic + sections)


def test_a_bcc_built_against_another_llvm_is_another_key(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key holds the LLVM libbcc links (its DT_NEEDED, read without loading it): a
    refusal remembered, or a set stored, with bcc on LLVM 14 is tried afresh once bcc
    is rebuilt against LLVM 16, the Python bcc's version unchanged. Before k31 the key
    had bcc's version alone and the refusal stood."""
    libraries = tmp_path / "lib"
    libraries.mkdir()
    monkeypatch.setenv("LD_LIBRARY_PATH", str(libraries))
    source_dir = bpf_source_dir()
    _shared_object(
        libraries / "libbcc.so.0", ["libclang-cpp.so.14", "libLLVM-14.so.1", "libc.so.6"]
    )
    for name in ("libclang-cpp.so.14", "libLLVM-14.so.1"):
        _shared_object(libraries / name, [])
    on_14 = cache_key(source_dir, ["-DX=1"])
    assert on_14["compiler"]["libLLVM-14.so.1"].startswith("libLLVM-14.so.1, ")
    assert "libc.so.6" not in on_14["compiler"]
    remember_refused(
        cache_dir, on_14, "the kernel refused the BPF programs: [Errno 7] x", CACHE_FILE
    )
    with pytest.raises(KnownRefused):
        read_cached(cache_dir, cache_key(source_dir, ["-DX=1"]))
    _shared_object(libraries / "libbcc.so.0", ["libclang-cpp.so.16", "libLLVM-16.so.1"])
    for name in ("libclang-cpp.so.16", "libLLVM-16.so.1"):
        _shared_object(libraries / name, [])
    on_16 = cache_key(source_dir, ["-DX=1"])
    assert on_16["bcc"] == on_14["bcc"] and on_16 != on_14
    with pytest.raises(CacheRefused, match="another kernel"):
        read_cached(cache_dir, on_16)


def test_the_key_names_the_llvm_this_machines_bcc_links() -> None:
    """Where bcc is installed (CI, the development machine: Debian's libbpfcc on
    libLLVM-14), its libbcc is found as the loader finds it and its LLVM named."""
    require(importlib.util.find_spec("bcc") is not None,
            "needs bcc (Debian: python3-bpfcc) visible to this Python")  # fmt: skip
    identity = compiler_identity()
    assert identity["libbcc.so.0"] != "not found", identity
    assert any(name.startswith("libLLVM") for name in identity), identity


def _header_tree(root: Path, version_h: str) -> Path:
    """A kernel header tree's version.h (all the key reads of it), as Debian installs
    it, and a tree of symlinks to it as bcc_env merges Debian's halves."""
    installed = root / "usr-src" / "include" / "generated" / "uapi" / "linux"
    installed.mkdir(parents=True)
    (installed / "version.h").write_text(version_h)
    merged = root / "merged" / "include" / "generated" / "uapi" / "linux"
    merged.mkdir(parents=True)
    (merged / "version.h").symlink_to(installed / "version.h")
    return root / "merged"


def test_another_kernel_header_tree_is_another_key(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key names the header tree bcc compiles against (its version.h, through the
    merged tree's symlinks to the installed file): the unit's is Debian's newest
    linux-headers whatever kernel runs, so a compile failure the headers caused,
    remembered, is tried afresh once they are upgraded. Before review34a the key had
    no such field and the refusal stood; two merged trees of one install are one key."""
    source_dir = bpf_source_dir()
    old = _header_tree(tmp_path / "6.1.0-57", "#define LINUX_VERSION_SUBLEVEL 158\n")
    monkeypatch.setenv("BCC_KERNEL_SOURCE", str(old))
    on_old = cache_key(source_dir, ["-DX=1"])
    assert on_old["headers"].startswith(str(tmp_path / "6.1.0-57" / "usr-src")), on_old["headers"]
    said = "the BPF programs did not compile: datapath.c:1:2: error: no member named 'x'"
    remember_refused(cache_dir, on_old, said, CACHE_FILE)
    again = tmp_path / "again"
    (again / "include" / "generated" / "uapi" / "linux").mkdir(parents=True)
    (again / "include" / "generated" / "uapi" / "linux" / "version.h").symlink_to(
        tmp_path / "6.1.0-57" / "usr-src" / "include" / "generated" / "uapi" / "linux" / "version.h"
    )
    monkeypatch.setenv("BCC_KERNEL_SOURCE", str(again))
    with pytest.raises(KnownRefused):  # the same install through another merged tree
        read_cached(cache_dir, cache_key(source_dir, ["-DX=1"]))
    new = _header_tree(tmp_path / "6.1.0-58", "#define LINUX_VERSION_SUBLEVEL 159\n")
    monkeypatch.setenv("BCC_KERNEL_SOURCE", str(new))
    on_new = cache_key(source_dir, ["-DX=1"])
    assert on_new["kernel_release"] == on_old["kernel_release"] and on_new != on_old
    with pytest.raises(CacheRefused, match="another kernel"):
        read_cached(cache_dir, on_new)
