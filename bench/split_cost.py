"""What Tracking.split costs a tick while exited socket owners are remembered.

    .venv/bin/python -m bench.split_cost [--samples 1000 10000 65536] [--rounds 50]

Since exited owners are remembered (rates.EXITED_OWNERS_KEPT, up to 4,096 for
EXITED_OWNERS_KEPT_TICKS), split() walks every sample every tick, not only at
ticks where a process exited. Times, per tick, on the real Tracking and
RateMeter (pure logic: no kernel, no /proc; the index is empty, so samples
carry the start the kernel tags them with, as on a kernel with BTF):

- split() with no exited owner remembered and none gone (its shortcut);
- split() with one owner gone this tick and none remembered: what every
  tick with an exit cost before owners were remembered (the same walk);
- split() with EXITED_OWNERS_KEPT remembered (the walk), a tenth of the
  samples theirs;
- the same tick's count() (RateMeter.update of the living samples), which
  walks every sample anyway, for scale.

--samples: counters read a tick (one per socket owner and interface; the
traffic map holds 65,536 at the most, bpf/maps.h MAX_TRAFFIC_KEYS).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from functools import partial

from chadthrottle.helper.engine.rates import EXITED_OWNERS_KEPT
from chadthrottle.helper.engine.tracking import Tracking
from chadthrottle.helper.identity.index import ApplicationIndex
from chadthrottle.helper.kernel.datapath import TrafficSample
from chadthrottle.helper.kernel.layout import owner_key

START = 1_000_000  # every owner's start (clock ticks): a kernel that tags them


def _median_ms(work: Callable[[], object], rounds: int) -> tuple[float, float, float]:
    """(median, min, max) ms of rounds runs."""
    times = []
    for _ in range(rounds):
        begin = time.perf_counter()
        work()
        times.append((time.perf_counter() - begin) * 1000)
    return statistics.median(times), min(times), max(times)


def _samples(owners: range, per_owner: int) -> list[TrafficSample]:
    return [
        TrafficSample(1, pid, 2 + i, START, 10_000 * pid, 10 * pid, 5_000 * pid, 5 * pid)
        for pid in owners
        for i in range(per_owner)
    ]


def _tracking(exited: int, living: range) -> Tracking:
    """A Tracking whose meter knows living's owners and remembers exited exited ones."""
    tracking = Tracking(ApplicationIndex(list_pids=lambda: ()), datapath=None)  # type: ignore[arg-type]
    meter = tracking.meter
    for pid in living:
        meter.remember(owner_key(pid, START), f"exe:/usr/bin/app{pid % 200}", 1000)
    gone = set()
    for pid in range(living.stop, living.stop + exited):
        meter.remember(owner_key(pid, START), f"exe:/usr/bin/short{pid % 50}", 1000)
        gone.add(owner_key(pid, START))
    meter.retire(gone, [])
    assert len(meter.exited_owners()) == exited
    return tracking


def _count(tracking: Tracking, alive: list[TrafficSample], now: list[float]) -> None:
    """One tick's count() of the living samples, a second after the last."""
    now[0] += 1.0
    tracking.meter.update(alive, now[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, nargs="+", default=[1000, 10_000, 65_536])
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    print(f"load {os.getloadavg()}")
    print(
        "samples | split, none remembered | split, 1 gone | split, 4096 remembered | count()"
        " (ms: median [min-max])"
    )
    for total in args.samples:
        per_owner = 2  # a socket owner on two interfaces
        living = range(10, 10 + (total * 9 // 10) // per_owner)
        late = (total - len(living) * per_owner) // per_owner  # exited owners still counted
        samples = _samples(living, per_owner)
        samples += _samples(range(living.stop, living.stop + late), per_owner)
        quiet, busy = _tracking(0, living), _tracking(EXITED_OWNERS_KEPT, living)
        ending, alive = busy.split(samples, set())
        assert len(ending) == late * per_owner and len(alive) == len(living) * per_owner
        cells = [
            _median_ms(partial(quiet.split, samples, set()), args.rounds),
            _median_ms(
                partial(quiet.split, samples, {owner_key(living.start, START)}), args.rounds
            ),
            _median_ms(partial(busy.split, samples, set()), args.rounds),
            _median_ms(partial(_count, busy, alive, [0.0]), args.rounds),
        ]
        print(
            f"{len(samples)} | " + " | ".join(f"{m:.3f} [{lo:.3f}-{hi:.3f}]" for m, lo, hi in cells)
        )
    print(f"load {os.getloadavg()}")


if __name__ == "__main__":
    main()
