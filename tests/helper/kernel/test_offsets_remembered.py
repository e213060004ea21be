"""A warm start takes the kernel's struct offsets from the program cache's
directory instead of walking the BTF's ~126,000 types (0.065 s of CPU, a sixth
of the start): remembered under the blob's digest and task_offsets.py's, so
another kernel's BTF, or another walk, finds them afresh; a file that is not
root's alone, or not what its checksum says, is not believed."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from chadthrottle.helper.kernel import program_cache, task_offsets
from chadthrottle.helper.kernel.program_build import bpf_source_dir, compile_flags
from chadthrottle.helper.kernel.program_cache import OFFSETS_FILE, remembered_offset_flags
from chadthrottle.helper.kernel.task_offsets import VMLINUX_BTF, offset_flags_of

from tests.helper.kernel.test_task_offsets import _nested_blob
from tests.support.requirements import require


class _Walks:
    """offset_flags_of, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, blob: bytes | None) -> list[str]:
        self.calls += 1
        return offset_flags_of(blob)


def test_a_second_start_does_not_walk_the_kernels_btf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As two helper starts: each with task_offsets' in-memory table empty.
    Before, compile_flags walked at every start (it took no cache directory)."""
    require(VMLINUX_BTF.is_file(), f"needs the kernel's BTF at {VMLINUX_BTF}")
    source = bpf_source_dir()
    walked = compile_flags(source)
    monkeypatch.setattr(task_offsets, "_TABLES", {})
    assert compile_flags(source, tmp_path) == walked  # walked, and remembered
    monkeypatch.setattr(task_offsets, "_TABLES", {})
    monkeypatch.setattr(task_offsets, "_type_table", _no_walk)
    assert compile_flags(source, tmp_path) == walked
    offsets = [flag for flag in walked if "_OFFSET=" in flag]
    assert len(offsets) == 5 and not any(flag.endswith("=0") for flag in offsets), offsets


def _no_walk(blob: bytes) -> None:
    raise AssertionError("the kernel's BTF was walked again")


def test_another_btf_gets_its_own_offsets(tmp_path: Path) -> None:
    cache, btf = tmp_path / "cache", tmp_path / "vmlinux"
    walks = _Walks()
    btf.write_bytes(_nested_blob(dev_at=16))
    assert "-DSKB_DEV_OFFSET=16" in remembered_offset_flags(cache, walks, btf)
    assert "-DSKB_DEV_OFFSET=16" in remembered_offset_flags(cache, walks, btf)
    assert walks.calls == 1
    btf.write_bytes(_nested_blob(dev_at=24))  # a kernel that moved sk_buff's dev
    assert "-DSKB_DEV_OFFSET=24" in remembered_offset_flags(cache, walks, btf)
    assert walks.calls == 2


def test_another_walk_finds_them_afresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache, btf = tmp_path / "cache", tmp_path / "vmlinux"
    btf.write_bytes(_nested_blob(dev_at=24))
    walks = _Walks()
    remembered_offset_flags(cache, walks, btf)
    monkeypatch.setattr(program_cache, "_walker_digest", lambda: "task_offsets.py changed")
    remembered_offset_flags(cache, walks, btf)
    assert walks.calls == 2


def _forge(cache: Path, btf: Path, mode: int, checksum: bool = True) -> None:
    """The remembered file for btf as it would be stored, its sk_buff dev at 8."""
    remembered_offset_flags(cache, offset_flags_of, btf)
    path = cache / OFFSETS_FILE
    document = json.loads(path.read_bytes().partition(b"\n")[2])
    document["flags"] = [flag.replace("=24", "=8") for flag in document["flags"]]
    body = json.dumps(document, sort_keys=True).encode()
    digest = hashlib.sha256(body).hexdigest() if checksum else "0" * 64
    path.write_bytes(digest.encode() + b"\n" + body)
    os.chmod(path, mode)


@pytest.mark.parametrize(
    ("mode", "checksum", "believed"),
    [(0o600, True, True), (0o666, True, False), (0o600, False, False)],
    ids=["root's alone", "writable by others", "checksum wrong"],
)
def test_a_remembered_file_is_believed_only_when_trusted(
    tmp_path: Path, mode: int, checksum: bool, believed: bool
) -> None:
    """The first case shows the forged file is read at all; the others that it
    is then not believed (the offsets are walked, and stored again)."""
    cache, btf = tmp_path / "cache", tmp_path / "vmlinux"
    btf.write_bytes(_nested_blob(dev_at=24))
    _forge(cache, btf, mode, checksum)
    flags = remembered_offset_flags(cache, offset_flags_of, btf)
    assert ("-DSKB_DEV_OFFSET=8" in flags) is believed
    assert ("-DSKB_DEV_OFFSET=24" in flags) is not believed


def test_a_remembered_flag_that_is_not_an_offset_is_not_given_to_the_compiler(
    tmp_path: Path,
) -> None:
    """The file's flags go to the compiler's command line: a root-owned file
    with a good checksum but a flag of another shape (an include path, a
    define with text) is walked again, not believed."""
    cache, btf = tmp_path / "cache", tmp_path / "vmlinux"
    btf.write_bytes(_nested_blob(dev_at=24))
    remembered_offset_flags(cache, offset_flags_of, btf)
    path = cache / OFFSETS_FILE
    document = json.loads(path.read_bytes().partition(b"\n")[2])
    document["flags"] = [*document["flags"], "-I/tmp/elsewhere"]
    body = json.dumps(document, sort_keys=True).encode()
    path.write_bytes(hashlib.sha256(body).hexdigest().encode() + b"\n" + body)
    assert "-I/tmp/elsewhere" not in remembered_offset_flags(cache, offset_flags_of, btf)
