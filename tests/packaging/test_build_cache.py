"""`chadthrottle-helper build-cache` (the package's postinst runs it): the BPF
programs compiled into the cache a start reads, nothing attached, and an
install that goes on when it fails. (The first start after a real install
reading them: test_debian_package.py.)"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from tests.support.requirements import require, require_program, require_root

REPO_ROOT = Path(__file__).resolve().parents[2]
POSTINST = REPO_ROOT / "packaging" / "debian" / "postinst"


def _build_cache(cache_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chadthrottle.helper.main", "--cache-dir", str(cache_dir),
         "build-cache"],
        capture_output=True, text=True, timeout=600, check=False, cwd=REPO_ROOT,
    )  # fmt: skip


def test_build_cache_fills_an_empty_cache_that_the_next_run_reads(tmp_path: Path) -> None:
    require_root()
    require(importlib.util.find_spec("bcc") is not None, "needs bcc (python3-bpfcc)")
    cache_dir = tmp_path / "cache"
    first = _build_cache(cache_dir)
    assert first.returncode == 0, first.stderr
    assert "the BPF programs are compiled into" in first.stderr, first.stderr
    assert (cache_dir / "bpf-programs.json").is_file()
    # the same way a start goes (Datapath.load_programs): what it stored is what it reads
    second = _build_cache(cache_dir)
    assert second.returncode == 0, second.stderr
    assert "the BPF programs are already in" in second.stderr, second.stderr
    assert "compiling" not in second.stderr, second.stderr


def test_postinst_goes_on_when_the_build_fails(tmp_path: Path) -> None:
    """A helper that cannot build (here a stand-in that fails) is reported on
    stderr and the install succeeds: the first start compiles, as before.
    Run in a mount namespace of its own with the stand-in laid over /usr/bin
    and an empty /run (no bus, no systemd to tell)."""
    require_root()
    require_program("unshare")
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    stand_in = stubs / "chadthrottle-helper"
    stand_in.write_text(
        "#!/bin/sh\necho 'chadthrottle-helper: build-cache: no bcc here' >&2\nexit 1\n"
    )
    stand_in.chmod(0o755)
    script = (
        "mount --make-rprivate / && "
        f"mount -t overlay overlay -o lowerdir={stubs}:/usr/bin /usr/bin && "
        "mount -t tmpfs tmpfs /run && "
        f"exec sh {POSTINST} configure"
    )
    run = subprocess.run(
        ["unshare", "--mount", "--", "sh", "-c", script],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "no bcc here" in run.stderr, run.stderr
    assert "the BPF programs could not be built now (exit status 1)" in run.stderr, run.stderr
