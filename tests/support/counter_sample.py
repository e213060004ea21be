"""A socket owner's byte counters as the datapath reports them (the shape of
datapath.TrafficSample), for unit tests of the accounting and usage logic."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sample:
    owner_tgid: int
    rx_bytes: int
    tx_bytes: int
    ifindex: int = 2
    netns_cookie: int = 1
    owner_start: int = 0  # the process's start (0: not known)
