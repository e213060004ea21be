"""Build the datapath's programs with bcc, in a short-lived process.

    python -m chadthrottle.helper.kernel.program_build SOURCE_DIR [CFLAG...]

compiles SOURCE_DIR/datapath.c with bcc and the CFLAGs it is given
(BCC_KERNEL_SOURCE names the header tree) and writes the program set
(program_set.py) as JSON to stdout. The flags are the ones the program cache
keys the result by (program_cache.obtain_program_set), handed over rather than
computed again here, so what is stored is built with what its key says. It runs
as a child of the helper because bcc keeps LLVM and clang mapped for the life
of the process that used it (about 130 MiB resident); the child's maps and
compiler go when it exits, and the helper loads the result with bpf(2). It
dies with the helper (PR_SET_PDEATHSIG), even one SIGKILLed mid-compile.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import signal
import sys
from pathlib import Path

from chadthrottle.helper.kernel import socket_tagging
from chadthrottle.helper.kernel.counter_slots import slot_cpus
from chadthrottle.helper.kernel.layout import c_constants
from chadthrottle.helper.kernel.program_cache import remembered_offset_flags
from chadthrottle.helper.kernel.task_offsets import VMLINUX_BTF, offset_flags, offset_flags_of


def bpf_source_dir() -> Path:
    """The directory of bpf/ as installed (the chadthrottle.bpf package); not
    through importlib.resources, whose import costs the helper's start 28 ms."""
    import chadthrottle.bpf

    return Path(chadthrottle.bpf.__file__).parent


def compile_flags(source_dir: Path, cache_dir: Path | None = None) -> list[str]:
    """bcc's cflags: part of what the program cache is keyed by. Every constant
    the programs share with the helper comes from Python here, so each has one
    home; a #define of one in bpf/ with another value fails the build
    (macro-redefined). cache_dir: the program cache's, where the struct
    offsets found in the kernel's BTF are remembered (None: walked again)."""
    constants = {**c_constants(), **socket_tagging.c_constants(), "COUNTER_SLOT_CPUS": slot_cpus()}
    return [
        f"-I{source_dir}",
        "-Werror=macro-redefined",
        *(f"-D{name}={value}" for name, value in constants.items()),
        # the running kernel's, from its BTF
        *(
            offset_flags()
            if cache_dir is None
            else remembered_offset_flags(cache_dir, offset_flags_of)
        ),
        *mptcp_flags(),
        *one_way_flags(),
    ]


def mptcp_flags() -> list[str]:
    """-DMPTCP_PARENT_TAGS where an MPTCP subflow's packets can be given their
    connection's tag (bpf/datapath.c tag_of_socket): the kernel has MPTCP,
    bpf_skc_to_mptcp_sock (5.19) and the BTF that helper's pointer needs;
    elsewhere the programs would not load, and MPTCP sockets stay untagged."""
    release = tuple(int(part) for part in re.findall(r"\d+", os.uname().release)[:2])
    if release >= (5, 19) and Path("/proc/sys/net/mptcp").is_dir() and VMLINUX_BTF.is_file():
        return ["-DMPTCP_PARENT_TAGS=1"]
    return []


# Set to 1 in the helper's environment, the with-reading build also gets
# -DCHADT_ONE_WAY_UNVERIFIABLE: a construct every verifier refuses, in
# chadt_tc_out's one-way part, so tests and benches see the fallback without
# the reading on real parts (tests/helper/kernel/test_one_way_fallback.py).
# Set to "compile", -DCHADT_ONE_WAY_UNCOMPILABLE: an error the compiler stops
# at in bpf/one_way.h, as another clang's or kernel header's would be.
ONE_WAY_REFUSED_VARIABLE = "CHADTHROTTLE_TEST_ONE_WAY_REFUSED"
ONE_WAY_FLAG = "-DCHADT_ONE_WAY"


def one_way_flags() -> list[str]:
    """The upload's one-way reading built in (bpf/one_way.h): the programs are
    built and loaded without these flags when the kernel or the compiler
    refuses them (datapath.py), the reading off then."""
    refused = os.environ.get(ONE_WAY_REFUSED_VARIABLE)
    if refused == "1":
        return [f"{ONE_WAY_FLAG}=1", f"{ONE_WAY_FLAG}_UNVERIFIABLE=1"]
    if refused == "compile":
        return [f"{ONE_WAY_FLAG}=1", f"{ONE_WAY_FLAG}_UNCOMPILABLE=1"]
    return [f"{ONE_WAY_FLAG}=1"]


def without_one_way(cflags: list[str]) -> list[str]:
    """cflags less the one-way reading's (one_way_flags)."""
    return [flag for flag in cflags if not flag.startswith(ONE_WAY_FLAG)]


def build(source_dir: Path, cflags: list[str]) -> dict[str, object]:
    """Compile with bcc and read back what the kernel accepted: the maps bcc
    created (their specs and the BTF they were made with) and each program's
    instructions, map fds turned into map indices."""
    from bcc import BPF
    from bcc.libbcc import lib
    from chadthrottle.helper.kernel.bpf_objects import MapSpec, btf_blob, map_spec
    from chadthrottle.helper.kernel.program_set import PROGRAMS, ProgramSet, relocate

    lib.bpf_num_tables.restype = ctypes.c_size_t
    lib.bpf_num_tables.argtypes = [ctypes.c_void_p]
    lib.bpf_table_name.restype = ctypes.c_char_p
    lib.bpf_table_name.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    lib.bpf_table_fd_id.restype = ctypes.c_int
    lib.bpf_table_fd_id.argtypes = [ctypes.c_void_p, ctypes.c_size_t]

    bpf = BPF(src_file=str(source_dir / "datapath.c").encode(), cflags=cflags)
    try:
        maps: list[MapSpec] = []
        index_of_fd: dict[int, int] = {}
        btf_ids: set[int] = set()
        for table in range(lib.bpf_num_tables(bpf.module)):
            fd = lib.bpf_table_fd_id(bpf.module, table)
            spec, btf_id = map_spec(fd, lib.bpf_table_name(bpf.module, table).decode())
            index_of_fd[fd] = len(maps)
            maps.append(spec)
            if btf_id:  # bcc gives BTF to the maps whose types it found there
                btf_ids.add(btf_id)
        if len(btf_ids) != 1:
            raise RuntimeError(
                f"the maps were not made with one BTF object (BTF ids {sorted(btf_ids)})"
            )
        programs = {name: relocate(bpf.dump_func(name.encode()), index_of_fd) for name in PROGRAMS}
        program_set = ProgramSet(btf_blob(btf_ids.pop()), tuple(maps), programs)
        program_set.check()
        return program_set.to_json()
    finally:
        bpf.cleanup()


PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """SIGKILL this build when the helper that started it dies (a SIGKILLed
    helper cannot kill it), and exit now if it already has: its pid is in
    program_cache.BUILD_PARENT_VARIABLE, and a child whose parent died before
    the prctl has been handed to another parent."""
    from chadthrottle.helper.kernel.program_cache import BUILD_PARENT_VARIABLE

    parent = os.environ.get(BUILD_PARENT_VARIABLE)
    if parent is None:  # run by hand
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    if str(os.getppid()) != parent:
        sys.exit(3)


def main(argv: list[str]) -> int:
    die_with_parent()
    if not argv or not Path(argv[0]).is_dir():
        print(
            "usage: python -m chadthrottle.helper.kernel.program_build SOURCE_DIR [CFLAG...]",
            file=sys.stderr,
        )
        return 2
    if "BCC_KERNEL_SOURCE" not in os.environ:
        print("program_build: BCC_KERNEL_SOURCE is not set", file=sys.stderr)
        return 2
    try:
        result = build(Path(argv[0]), argv[1:])
    except Exception as error:  # bcc raises bare Exception on compile errors
        print(f"program_build: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
