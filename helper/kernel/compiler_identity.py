"""Which LLVM the installed bcc compiles with, read without loading either.

Part of the program cache's key (program_cache.cache_key): a remembered
refusal of the one-way set, or a stored set, was made by one compiler; a bcc
rebuilt against another LLVM (Debian's libbpfcc moving from libLLVM-14 to -16,
say) must try again. The Python bcc's version.py does not change with that,
and importing bcc, or opening libbcc with ctypes, maps LLVM into the helper
(about 130 MiB, the reason the build runs in a child: program_build.py). So
libbcc.so.0 is found as the dynamic loader would find it (LD_LIBRARY_PATH,
/etc/ld.so.conf's directories, the usual ones) and its ELF dynamic section
read for what it links (DT_NEEDED): LLVM's and clang's libraries by soname,
each with the file that name resolves to and its size (a rebuild of the same
soname differs there). A libbcc linked with LLVM statically names no
libLLVM: its own file and size then stand for it.
"""

from __future__ import annotations

import glob
import os
import struct
import sys
from pathlib import Path

LIBBCC = "libbcc.so.0"  # what bcc/libbcc.py opens
_COMPILER_PREFIXES = ("libLLVM", "libclang")
_DT_NEEDED = 1
_SHT_DYNAMIC = 6
_MAX_NEEDED = 256


def compiler_identity() -> dict[str, str]:
    """{soname: "resolved file name, size"} for libbcc and the LLVM/clang
    libraries it links; {"libbcc.so.0": "not found"} where there is none."""
    directories = library_directories()
    found = _find(LIBBCC, directories)
    if found is None:
        return {LIBBCC: "not found"}
    identity = {LIBBCC: _described(found)}
    try:
        needed = needed_libraries(found)
    except (OSError, ValueError, struct.error) as error:  # a truncated or foreign file
        identity["needed"] = f"unreadable: {error}"
        return identity
    for name in needed:
        if name.startswith(_COMPILER_PREFIXES):
            at = _find(name, directories)
            identity[name] = "not found" if at is None else _described(at)
    return identity


def _described(path: Path) -> str:
    try:
        return f"{path.resolve().name}, {path.stat().st_size} bytes"
    except OSError as error:
        return f"unreadable: {error.strerror}"


def _find(name: str, directories: list[Path]) -> Path | None:
    for directory in directories:
        candidate = directory / name
        if candidate.exists():
            return candidate
    return None


def library_directories(conf: Path = Path("/etc/ld.so.conf")) -> list[Path]:
    """Where the dynamic loader looks, in its order: LD_LIBRARY_PATH, then
    ld.so.conf's directories (its includes followed), then the defaults."""
    found = [Path(part) for part in os.environ.get("LD_LIBRARY_PATH", "").split(":") if part]
    found += _conf_directories(conf, depth=0)
    multiarch = getattr(sys.implementation, "_multiarch", "")
    for base in ("/lib", "/usr/lib"):
        found += [Path(base, multiarch)] if multiarch else []
    found += [Path("/lib64"), Path("/usr/lib64"), Path("/lib"), Path("/usr/lib")]
    return list(dict.fromkeys(found))


def _conf_directories(conf: Path, depth: int) -> list[Path]:
    if depth > 4:
        return []
    try:
        lines = conf.read_text(errors="replace").splitlines()
    except OSError:
        return []
    found: list[Path] = []
    for line in lines:
        line = line.partition("#")[0].strip()
        if line.startswith("include "):
            pattern = line.removeprefix("include ").strip()
            if not pattern.startswith("/"):
                pattern = str(conf.parent / pattern)
            for included in sorted(glob.glob(pattern)):
                found += _conf_directories(Path(included), depth + 1)
        elif line.startswith("/"):
            found.append(Path(line))
    return found


def needed_libraries(path: Path) -> list[str]:
    """An ELF shared object's DT_NEEDED names, from its section headers (the
    .dynamic section and the string table it links); ValueError if it is not
    one this can read."""
    with open(path, "rb") as elf:
        ident = elf.read(64)
        if len(ident) < 52 or ident[:4] != b"\x7fELF" or ident[4] not in (1, 2):
            raise ValueError(f"{path} is not an ELF file")
        wide, order = ident[4] == 2, "<" if ident[5] == 1 else ">"
        if wide:
            shoff, = struct.unpack_from(order + "Q", ident, 0x28)  # fmt: skip
            shentsize, shnum = struct.unpack_from(order + "HH", ident, 0x3A)
        else:
            shoff, = struct.unpack_from(order + "I", ident, 0x20)  # fmt: skip
            shentsize, shnum = struct.unpack_from(order + "HH", ident, 0x2E)
        if not shoff or not shnum or shnum > 4096:
            raise ValueError(f"{path} has no section headers")
        elf.seek(shoff)
        table = elf.read(shentsize * shnum)
        sections = [_section(table, index * shentsize, order, wide) for index in range(shnum)]
        dynamic = next((s for s in sections if s[0] == _SHT_DYNAMIC), None)
        if dynamic is None or dynamic[3] >= shnum:
            return []  # linked statically: nothing needed
        _, offset, size, link = dynamic
        _, str_offset, str_size, _ = sections[link]
        elf.seek(offset)
        entries = elf.read(min(size, 1 << 20))
        elf.seek(str_offset)
        strings = elf.read(min(str_size, 16 << 20))
    step, form = (16, order + "qQ") if wide else (8, order + "iI")
    names: list[str] = []
    for start in range(0, len(entries) - step + 1, step):
        tag, value = struct.unpack_from(form, entries, start)
        if tag == 0:
            break
        if tag == _DT_NEEDED and value < len(strings) and len(names) < _MAX_NEEDED:
            names.append(strings[value : strings.index(b"\0", value)].decode(errors="replace"))
    return names


def _section(table: bytes, at: int, order: str, wide: bool) -> tuple[int, int, int, int]:
    """(sh_type, sh_offset, sh_size, sh_link) of the section header at `at`."""
    if wide:
        _, kind, _, _, offset, size, link = struct.unpack_from(order + "IIQQQQI", table, at)
    else:
        _, kind, _, _, offset, size, link = struct.unpack_from(order + "IIIIIII", table, at)
    return kind, offset, size, link
