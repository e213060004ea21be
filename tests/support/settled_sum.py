"""How the end-to-end tests read a limit held over several streams: the first
4 s window once the sum has settled, judged as it comes.

Until 2026-12-04 they read 4 s windows until one was within +-10% of the
limit, for up to 15 s: that showed a window in the band occurs, not that the
limit holds from when it settled (issue 13). Settled: two 0.5 s windows in a
row within +-5% of the limit, and (assert_sums_within) no TCP sender of the
streams with segments lost, SACKed or retransmitted outstanding: its loss
recovery is over, no receiver holds data behind a hole. One 0.5 s window
within +-10% let a download's catch-up in (a first 4 s window of 1.081 at
load 10); the measurements that chose it are in docs/development.md ("Suite
time"). Two windows in band while a sender still recovered let a stall on a
hole in: the two-uplinks test read its downloads at 0.890 (1 run in 10 at
load 8-9); see download_settled for the recovery after a limit lands."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from chadthrottle.contract import Direction

from tests.support.download_settled import sender_counters, sender_recovering
from tests.support.netns import Receiver, Stream, rates_together

BAND = 0.10  # +-10% of the limit
SETTLE_WINDOW_S, SETTLE_WINDOWS, SETTLE_BAND = 0.5, 2, 0.05
SETTLE_TIMEOUT_S = 10.0
JUDGED_WINDOW_S = 4.0


def in_band(rate_bps: float, limit_bps: float, band: float = BAND) -> bool:
    return (1 - band) * limit_bps <= rate_bps <= (1 + band) * limit_bps


def settled_rates(
    receivers: Sequence[Receiver],
    limit_bps: float,
    wire: float,
    settle_timeout_s: float = SETTLE_TIMEOUT_S,
) -> list[float]:
    """Each receiver's L3 rate (payload / wire) over the first 4 s window after
    their sum settled. After settle_timeout_s without settling the 4 s window
    is read all the same: the caller judges it, nothing is skipped."""
    return settled_group_rates([receivers], limit_bps, wire, settle_timeout_s)[0]


def settled_group_rates(
    groups: Sequence[Sequence[Receiver]],
    limit_bps: float,
    wire: float,
    settle_timeout_s: float = SETTLE_TIMEOUT_S,
    recovering: Callable[[], bool] = lambda: False,
) -> list[list[float]]:
    """The same for several limits of limit_bps at once (an application's
    upload and download): every group's sum settled (and nothing
    `recovering` at the end of the settling windows), then one window."""
    return _settled_window(groups, limit_bps, wire, settle_timeout_s, recovering)[0]


def _settled_window(
    groups: Sequence[Sequence[Receiver]],
    limit_bps: float,
    wire: float,
    settle_timeout_s: float = SETTLE_TIMEOUT_S,
    recovering: Callable[[], bool] = lambda: False,
    before_window: Callable[[], object] = lambda: None,
) -> tuple[list[list[float]], float | None]:
    """settled_group_rates, and how long the settling took (None: it did not
    settle within settle_timeout_s). before_window runs just before the
    judged window opens."""
    started = time.monotonic()
    deadline, settled = started + settle_timeout_s, 0
    everyone = [receiver for group in groups for receiver in group]
    while settled < SETTLE_WINDOWS and time.monotonic() < deadline:
        rates = iter(rates_together(everyone, SETTLE_WINDOW_S))
        sums = [sum(next(rates) for _ in group) / wire for group in groups]
        in_step = all(in_band(s, limit_bps, SETTLE_BAND) for s in sums) and not recovering()
        settled = settled + 1 if in_step else 0
    took = time.monotonic() - started if settled >= SETTLE_WINDOWS else None
    before_window()
    rates = iter(rates_together(everyone, JUDGED_WINDOW_S))
    return [[next(rates) / wire for _ in group] for group in groups], took


Key = TypeVar("Key", Direction, str)


def _machine_jiffies() -> tuple[float, int, int]:
    """(now, the CPUs' stolen and softirq time so far, in clock ticks): /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [int(n) for n in stat.readline().split()[1:]]
    return time.monotonic(), fields[7], fields[6]


def _machine_said(start: tuple[float, int, int]) -> str:
    """How much of the machine's CPU time since `start` a hypervisor took (steal)
    and softirq work used: a download class whose dequeue waited lost rate
    there (band36: CI's runs with 4-6% steal read downloads at 0.845-0.900)."""
    end = _machine_jiffies()
    ticks = (end[0] - start[0]) * os.sysconf("SC_CLK_TCK") * (os.cpu_count() or 1)
    return (f"the machine's CPUs stolen {100 * (end[1] - start[1]) / ticks:.0f}%, "
            f"in softirq {100 * (end[2] - start[2]) / ticks:.0f}%")  # fmt: skip


def _senders(streams: Sequence[Stream]) -> dict[str, int]:
    """The streams' senders' tcp_info counters, summed (sender_counters)."""
    counted: dict[str, int] = {}
    for stream in streams:
        if stream.sender_netns:
            for key, n in sender_counters(stream.sender_netns, stream.port).items():
                counted[key] = counted.get(key, 0) + n
    return counted


def assert_sums_within(
    groups: Mapping[Key, list[Stream]], limit_bps: float, wire: float, what: str = ""
) -> None:
    """Each direction's streams hold limit_bps in sum (+-10%) over one window
    once all of them settled: one application limited both ways is judged in
    the time of one. Groups may also be keyed by a label of their own (several
    applications each limited both ways, each direction judged on its own).
    A failure says how long the settling took and what each direction's
    senders did in the window (sender_counters: resent segments, time held by
    the receiving application's reads or by their own send buffer): a window
    read under the limit says nothing else of why (CI 2026-12-07: 0.854-0.900
    of a download limit three times, not reproduced here; band35), and how much
    of the machine's CPU time a hypervisor took (steal) and softirq work used
    in the window: a small download class lost rate to stalls there (band36)."""
    streams = [stream for group in groups.values() for stream in group]

    def recovering() -> bool:
        return any(sender_recovering(s.sender_netns, s.port) for s in streams if s.sender_netns)

    starts: list[dict[str, int]] = []
    machine: list[tuple[float, int, int]] = []

    def before_window() -> None:
        starts.extend(_senders(g) for g in groups.values())
        machine.append(_machine_jiffies())

    rates, took = _settled_window(
        [[s.receiver for s in g] for g in groups.values()],
        limit_bps,
        wire,
        recovering=recovering,
        before_window=before_window,
    )
    machine_said = _machine_said(machine[0])
    for (direction, group), start, rate in zip(groups.items(), starts, rates, strict=True):
        total = sum(rate)
        if not in_band(total, limit_bps):
            end = _senders(group)
            senders = sum(1 for s in group if s.sender_netns)
            did = f"{senders} over {JUDGED_WINDOW_S:.0f} s: " + ", ".join(
                f"{key} {end.get(key, 0) - n}{'' if key == 'retrans' else ' ms'}"
                for key, n in start.items()
            )
            settling = f"settled after {took:.1f} s" if took is not None else "never settled"
            label = direction.value if isinstance(direction, Direction) else direction
            raise AssertionError(
                f"{what}{label}: {total / limit_bps:.3f} of {limit_bps / 2**20:.0f} MiB/s "
                f"({settling}; its senders {did if start else 'not read'}; {machine_said})"
            )
