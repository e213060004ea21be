"""A download and an upload at once, each its own limited application, read
held to their limit by the link tree's tc programs over the same window.

Shared by the tests that prove the tc backend limits on a kind of link
(`test_tc_shaper`'s link without Ethernet headers) or with a kind of program
set (`test_one_way_fallback`'s set built without the one-way reading)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from chadthrottle.contract import Direction
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.htb import ClassSpec
from chadthrottle.helper.kernel.tc_shaper import TcShaper

from tests.support.netns import NetnsPair, Stream, rates_together, start_stream, tc_dump


@contextmanager
def streams_held_to(
    link: NetnsPair,
    datapath: Datapath,
    shaper: TcShaper,
    limit: ClassSpec,
    slots: Mapping[Direction, int],
    ports: Mapping[Direction, int],
    programs: tuple[str, ...],
    tmp_path: Path,
) -> Iterator[dict[Direction, Stream]]:
    """Yield the two streams once each direction read within 10% of `limit`
    (the peers connect only once the applications are limited), with `programs`
    attached in the link's host namespace; the streams stopped and the classes gone after."""
    limited = tmp_path / "limited"
    streams = {direction: start_stream(link, ports[direction], direction.value, seconds=30,
                                       app_serves=True, peer_when=limited)
               for direction in Direction}  # fmt: skip
    try:
        for direction, stream in streams.items():
            datapath.set_process_slot(stream.app_pid, slots[direction])
        shaper.reconcile({direction: {slots[direction]: limit} for direction in Direction})
        limited.touch()
        shown = tc_dump(link.host_ns)
        assert all(program in shown for program in programs), shown
        time.sleep(2.0)  # slow start overfills the leaf queue at first (no window clamp here)
        rates = rates_together([streams[d].receiver for d in Direction], 4.0)
        for direction, rate in zip(Direction, rates, strict=True):
            read = rate * 1500 / 1448  # L3, as the limit counts
            assert 0.9 * limit.rate_bps <= read <= 1.1 * limit.rate_bps, (
                f"{direction.value}: read {read / limit.rate_bps:.3f} of the limit"
            )
        yield streams
    finally:
        for stream in streams.values():
            stream.stop()
        shaper.reconcile({})
