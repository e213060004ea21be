"""The tests' harness readies the program set a helper will load (tests/support/
helper_process.ready_programs, before each timed start). Where the kernel refused the
set with the upload's one-way reading, the refusal is kept in that set's place
(program_cache.remember_refused) and the helper loads the set without it: the harness
read the refusal as a failure (KnownRefused), so on such a machine every helper start
after the first one failed in set-up (review33a M2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from chadthrottle.helper.kernel.bcc_env import kernel_source_dir
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.program_build import bpf_source_dir, compile_flags
from chadthrottle.helper.kernel.program_cache import (
    CACHE_FILE,
    PLAIN_CACHE_FILE,
    cache_key,
    remember_refused,
)

from tests.support.helper_process import ready_programs


def test_the_harness_readies_the_plain_set_where_the_reading_was_refused(
    tmp_path: Path, kernel_ready: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BCC_KERNEL_SOURCE", str(kernel_source_dir(kernel_ready)))
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir(mode=0o755)
    cache_dir.chmod(0o755)
    tmp_path.chmod(0o755)
    source_dir = bpf_source_dir()
    # as a helper leaves it where the verifier refused the set with the reading
    refusal = "the kernel refused the BPF programs: [Errno 7] chadt_tc_out: Argument list too long"
    remember_refused(
        cache_dir, cache_key(source_dir, compile_flags(source_dir)), refusal, CACHE_FILE
    )
    origin = ready_programs(cache_dir)
    assert "without the one-way reading" in origin, origin
    assert (cache_dir / PLAIN_CACHE_FILE).exists()
    # and it is the set the helper loads there: from the cache, no compile in the timed start
    datapath = Datapath(cache_dir=cache_dir)
    datapath.open()
    try:
        assert datapath.program_origin == "cache", datapath.program_origin
        assert "remembered" in datapath.one_way_off and datapath.one_way_maps() is None
    finally:
        datapath.close()
