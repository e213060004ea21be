"""What the upload's one-way reading costs the programs' build and the helper's
start (issue 16, k31).

    python -m bench.one_way_build verifier [--source DIR]
    python -m bench.one_way_build starts [--rounds N]

verifier: builds the programs with the reading and without it (bcc, in a
child, as the helper does) from bpf/ or DIR, loads each set and prints, for
each tc program, its instructions, its translated size and the instructions
the verifier walked (bpf_prog_info.verified_insns): chadt_tc_out sits near the
verifier's edge with the reading (docs/helper.md, *Cache*).

starts: Datapath.open() N times in a fresh cache directory with the reading's
set failing in the compiler (CHADTHROTTLE_TEST_ONE_WAY_REFUSED=compile: an
#error in bpf/one_way.h), each open's time, where its programs came from and
why the reading is off. Since k31 the failure is remembered: the first open
compiles both sets, the next ones none.

Run another version's with PYTHONPATH=DIR (DIR holding its chadthrottle
package, as bench/helper_start.py --before takes it). Needs root.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from chadthrottle.helper.kernel.bcc_env import DEFAULT_CACHE_DIR, kernel_source_dir
from chadthrottle.helper.kernel.bpf_syscalls import _program_info
from chadthrottle.helper.kernel.program_build import (
    ONE_WAY_REFUSED_VARIABLE,
    bpf_source_dir,
    compile_flags,
    without_one_way,
)
from chadthrottle.helper.kernel.program_cache import build_in_child
from chadthrottle.helper.kernel.program_set import LoadedPrograms

VERIFIED_INSNS_OFFSET = 216  # struct bpf_prog_info's verified_insns (5.16 on)


def verifier(source: Path) -> None:
    flags = compile_flags(source, DEFAULT_CACHE_DIR)
    for label, cflags in (("with the reading", flags), ("without", without_one_way(flags))):
        program_set = build_in_child(source, DEFAULT_CACHE_DIR, cflags)
        loaded = LoadedPrograms(program_set)
        try:
            for name, fd in sorted(loaded.program_fds.items()):
                if not name.startswith("chadt_tc"):
                    continue
                info = _program_info(fd)
                xlated = int.from_bytes(info[20:24], "little")
                verified = int.from_bytes(
                    info[VERIFIED_INSNS_OFFSET : VERIFIED_INSNS_OFFSET + 4], "little"
                )
                print(f"{label:17} {name:15} insns {len(program_set.programs[name]) // 8:5}  "
                      f"xlated {xlated:6} B  verified_insns {verified:6}")  # fmt: skip
        finally:
            loaded.close()


def starts(rounds: int) -> None:
    from chadthrottle.helper.kernel.datapath import Datapath

    os.environ[ONE_WAY_REFUSED_VARIABLE] = "compile"
    with tempfile.TemporaryDirectory(prefix="chadthrottle-bench-one-way-") as top:
        os.chmod(top, 0o755)  # the cache trusts a directory only root may write
        cache = Path(top) / "cache"
        cache.mkdir(mode=0o755)
        for index in range(rounds):
            started = time.monotonic()
            datapath = Datapath(cache_dir=cache)
            datapath.open()
            took = time.monotonic() - started
            datapath.close()
            print(f"open {index}: {took * 1000:6.0f} ms, programs from the "
                  f"{datapath.program_origin}; off: {datapath.one_way_off[:100]}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    measured = commands.add_parser("verifier")
    measured.add_argument("--source", type=Path, default=None, help="a bpf/ directory")
    timed = commands.add_parser("starts")
    timed.add_argument("--rounds", type=int, default=4)
    arguments = parser.parse_args()
    os.environ.setdefault("BCC_KERNEL_SOURCE", str(kernel_source_dir(DEFAULT_CACHE_DIR)))
    if arguments.command == "verifier":
        verifier((arguments.source or bpf_source_dir()).resolve())
    else:
        starts(arguments.rounds)


if __name__ == "__main__":
    main()
