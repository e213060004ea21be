"""What tests could leave on the machine, captured before and after a session.

The suite fails when anything differs: a namespace, a device, a qdisc, a BPF
program on the cgroup root, a test cgroup, an installed policy or polkit rule,
or a daemon.
"""

from __future__ import annotations

import subprocess
from pathlib import Path


def _run(*argv: str) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def _our_cgroup_programs() -> list[str]:
    try:
        from chadthrottle.helper.kernel.cgroups import cgroup2_mount
        from chadthrottle.helper.kernel.datapath import our_programs
    except ImportError:
        return []
    return sorted(
        f"{attach_type.name}:{name}" for attach_type, _id, name in our_programs(cgroup2_mount())
    )


def _test_cgroups() -> list[str]:
    try:
        from chadthrottle.helper.kernel.cgroups import cgroup2_mount

        return sorted(p.name for p in cgroup2_mount().glob("chadthrottle-test-*"))
    except Exception:
        return []


def _daemons() -> list[str]:
    names = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            comm = (
                (proc / "comm").read_bytes().decode("utf-8", "replace").strip()
            )  # any bytes at all
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if comm in ("dbus-daemon", "polkitd") or b"chadthrottle.helper.main" in cmdline:
            names.append(comm)
    return sorted(names)


def snapshot() -> dict[str, object]:
    links = _run("ip", "-o", "link", "show")
    return {
        "network namespaces": sorted(_run("ip", "netns", "list").split()),
        "devices": sorted(
            line.split(": ")[1].split("@")[0] for line in links.splitlines() if ": " in line
        ),
        "qdiscs": sorted(_run("tc", "qdisc", "show").splitlines()),
        "BPF programs on the cgroup root": _our_cgroup_programs(),
        "test cgroups": _test_cgroups(),
        "polkit actions": sorted(
            p.name for p in Path("/usr/share/polkit-1/actions").glob("io.github.chadthrottle*")
        ),
        "polkit rules": sorted(
            p.name for p in Path("/etc/polkit-1/rules.d").glob("*chadthrottle*")
        ),
        "daemons": _daemons(),
    }


def differences(before: dict[str, object], after: dict[str, object]) -> list[str]:
    return [
        f"{key}: before {before[key]!r}, after {after[key]!r}"
        for key in before
        if before[key] != after[key]
    ]
