"""The helper's estimation (helper/engine/estimation.py) reads the upload's one-way queue
while it estimates: started on the link tree's upload IFB at its first tick, each tick's
reading handed to the estimator (Sample.upload_queue), stopped when estimation is switched
off and on close. Real datapath, link tree and traffic (test_one_way_upload.py's modem)."""

from __future__ import annotations

import statistics
import time
from typing import Any

from chadthrottle.contract import Direction, LinkShapingInfo
from chadthrottle.helper.engine.capacity_estimate import Sample
from chadthrottle.helper.engine.estimation import LinkEstimation
from chadthrottle.helper.kernel.datapath import Datapath
from chadthrottle.helper.kernel.layout import OneWayControl
from chadthrottle.helper.kernel.one_way import UploadQueueReader
from chadthrottle.helper.kernel.one_way_reading import UploadQueueReading
from chadthrottle.helper.kernel.priority_classes import LinkShaping
from chadthrottle.helper.kernel.tc_shaper import TcShaper
from pyroute2 import IPRoute

from bench.bottleneck import modem
from tests.helper.kernel.test_one_way_upload import BUFFER_MS, DOWN_BPS, UP_BPS, bulk_upload
from tests.support.netns import NetnsPair, entered_netns

TICKS = 8
TICK_S = 0.5  # shorter than the helper's second: the test's time


class Engine:
    def __init__(self) -> None:
        self.shaping = LinkShapingInfo(down_set_bps=DOWN_BPS, up_set_bps=UP_BPS, estimate=True)

    def link_shaping(self) -> LinkShapingInfo:
        return self.shaping

    def set_estimated_capacity(self, direction: Direction, bps: int | None) -> None:
        pass


def _control(datapath: Datapath) -> OneWayControl:
    maps = datapath.one_way_maps()
    assert maps is not None, datapath.one_way_off  # built with the reading here
    control = maps[0].get(0)
    assert isinstance(control, OneWayControl)
    return control


def test_estimation_reads_the_upload_while_it_estimates(
    pair: NetnsPair, shaper: TcShaper, datapath: Datapath
) -> None:
    with modem(pair, DOWN_BPS, UP_BPS, BUFFER_MS) as internet:
        shaper.set_link(Direction.DOWN, LinkShaping(capacity_bps=DOWN_BPS))
        shaper.set_link(Direction.UP, LinkShaping(capacity_bps=UP_BPS))
        shaper.reconcile({})
        (ifb,) = {hook.ifb.ifindex for hook in shaper._hooks[Direction.UP].values()}
        with entered_netns(pair.host_ns):
            estimation = LinkEstimation(make_ipr=IPRoute, one_way=UploadQueueReader(datapath))
        engine = Engine()
        handed: list[UploadQueueReading | None] = []
        try:
            with (
                bulk_upload(pair.host_ns, internet.netns, internet.addr),
                entered_netns(pair.host_ns),
            ):
                estimation.tick(engine)  # starts afresh, and the reading with it
                assert _control(datapath).on == 1 and _control(datapath).ifb_ifindex == ifb
                estimator = estimation._estimator
                assert estimator is not None
                update = estimator.update

                def recorded(sample: Sample) -> Any:
                    handed.append(sample.upload_queue)
                    return update(sample)

                estimator.update = recorded  # type: ignore[method-assign]
                for _ in range(TICKS):
                    time.sleep(TICK_S)  # the traffic of a tick: each tick reads what came since
                    estimation.tick(engine)
                engine.shaping = LinkShapingInfo(down_set_bps=DOWN_BPS, up_set_bps=UP_BPS)
                estimation.tick(engine)  # estimation off: the reading stops
                assert _control(datapath).on == 0
                engine.shaping = LinkShapingInfo(
                    down_set_bps=DOWN_BPS, up_set_bps=UP_BPS, estimate=True
                )
                estimation.tick(engine)
                assert _control(datapath).on == 1
        finally:
            estimation.close()
        assert _control(datapath).on == 0  # closed: stopped
    assert len(handed) == TICKS, handed
    read = [reading for reading in handed if reading is not None and reading.queue_ms is not None]
    assert len(read) >= TICKS - 2, handed  # the first has no floor yet
    # shaped under the modem: the queue beyond us reads near empty. Judged by the median: a
    # tick of a loaded CI lane can read one or two ACKs, or a 5-8 ms look (docs/benchmarks/
    # priorities.md, owd29k); the reading's own quality is test_one_way_upload.py's
    assert statistics.median(reading.queue_ms or 0.0 for reading in read) < 5.0, handed
    assert max(reading.readings for reading in read) >= 3, handed
