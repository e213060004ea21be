"""chadthrottle-ctl watch when the helper goes away, or is not there: a named
error, status 5, one line. A module of its own: the helper here must be the
only one on the session's private bus (test_cli_watch.py keeps one running)."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from chadthrottle.helper.standalone import PrivateSystemBus

from tests.e2e.test_cli_watch import finish, next_line, watch_process
from tests.support.helper_process import HelperProcess
from tests.support.netns import NetnsPair

EXIT_HELPER_NOT_RUNNING = 5


def test_watch_says_the_helper_went_away(private_bus: PrivateSystemBus, pair: NetnsPair) -> None:
    with tempfile.TemporaryDirectory() as state_dir:
        helper = HelperProcess(private_bus.address, netns=pair.host_ns, state_dir=Path(state_dir))
        with helper:
            process = watch_process(private_bus.address, "--json", "--interval", "0.2")
            try:
                json.loads(next_line(process, 30.0))
                stopped_at = time.monotonic()
                helper.stop()
                status, _rest, err = finish(process)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.communicate()
        assert status == EXIT_HELPER_NOT_RUNNING, err
        assert err.startswith("chadthrottle-ctl: helper went away: ") and err.count("\n") == 1, err
        assert time.monotonic() - stopped_at < 10


def test_watch_without_a_helper_says_so(private_bus: PrivateSystemBus) -> None:
    process = watch_process(private_bus.address, "--json", "--count", "1")
    status, out, err = finish(process)
    assert status == EXIT_HELPER_NOT_RUNNING and out == ""
    assert err.startswith("chadthrottle-ctl: helper not running") and err.count("\n") == 1, err
