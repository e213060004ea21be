"""Which enforcement backends this kernel supports, and why not when it doesn't."""

from __future__ import annotations

import gzip
from pathlib import Path

from chadthrottle.contract import BackendInfo, Direction

TC_CONFIG = {
    "CONFIG_NET_SCH_HTB": "HTB qdisc",
    "CONFIG_NET_SCH_INGRESS": "ingress/clsact qdisc",
    "CONFIG_IFB": "IFB device",
    "CONFIG_NET_CLS_BPF": "cls_bpf classifier",
    "CONFIG_NET_ACT_MIRRED": "mirred action",
    "CONFIG_NET_SCH_FIFO": "bfifo qdisc",
}


def kernel_config(path: Path = Path("/proc/config.gz")) -> dict[str, str] | None:
    """The running kernel's config, or None when the kernel does not expose it."""
    try:
        text = gzip.decompress(path.read_bytes()).decode()
    except OSError:
        return None
    config = {}
    for line in text.splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            key, value = line.split("=", 1)
            config[key] = value
    return config


def tc_missing(config: dict[str, str] | None) -> list[str]:
    """Kernel features the tc backend needs and this kernel lacks."""
    if config is None:
        return []  # unknown: try, and report the kernel's refusal if it comes
    return [f"{name} ({option})" for option, name in TC_CONFIG.items() if config.get(option) not in ("y", "m")]


def describe_backends(active: set[Direction], config: dict[str, str] | None) -> list[BackendInfo]:
    missing = tc_missing(config)
    tc = BackendInfo(
        name="tc",
        available=not missing,
        reason=("kernel lacks: " + ", ".join(missing)) if missing else "",
        active_directions=tuple(sorted(d.value for d in active)),
    )
    ebpf = BackendInfo(
        name="ebpf",
        available=False,
        reason="the policing backend is not built yet; tc shapes both directions",
        active_directions=(),
    )
    return [tc, ebpf]
