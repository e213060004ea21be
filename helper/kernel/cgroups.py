"""Where cgroup v2 lives, found from /proc/self/mountinfo, never hard-coded:
desktops mount it at /sys/fs/cgroup, hybrid systems at /sys/fs/cgroup/unified."""

from __future__ import annotations

from pathlib import Path

from chadthrottle.helper.errors import BackendUnavailable


def cgroup2_mount(mountinfo: str | None = None) -> Path:
    """The mount point of the cgroup v2 hierarchy."""
    if mountinfo is None:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    for line in mountinfo.splitlines():
        fields = line.split(" - ", 1)
        if len(fields) == 2 and fields[1].split(" ", 1)[0] == "cgroup2":
            return Path(fields[0].split()[4])
    raise BackendUnavailable(
        "no cgroup v2 hierarchy is mounted (mount -t cgroup2 none /sys/fs/cgroup)"
    )


def process_cgroup_path(pid: int, root: Path) -> Path | None:
    """The cgroup v2 directory of a process, or None if it has exited."""
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("0::"):
            return root / line[3:].lstrip("/")
    return None
