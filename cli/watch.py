"""chadthrottle-ctl watch: the applications once a second over one connection.

For status bars and scripts that would otherwise start `list --json` every
second: one process, one bus connection, and per line only the two calls
(ListApplications, GetLimitsPaused), so the client costs a few milliseconds
of CPU a second instead of a whole start-up. With --json each line is one JSON
object: {"time": unix seconds, "paused": bool, "applications": [entries as
`list --json` prints them]}.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from chadthrottle.cli.output import applications_report, plain
from chadthrottle.helper_errors import NO_REPLY, HelperClientError

TYPE_CHECKING = (
    False  # not typing's: importing typing costs a CLI call ~2 ms (mypy reads this name alike)
)
if TYPE_CHECKING:
    from typing import TextIO

    from chadthrottle.blocking_client import BlockingHelperClient

MIN_INTERVAL_S = 0.1
MAX_INTERVAL_S = 3600.0


class HelperGone(Exception):
    """The helper (or the bus) went away while watching."""


def watch_line(client: BlockingHelperClient, as_json: bool) -> str:
    """One report: a JSON object on one line, or the table and its notes."""
    apps = client.list_applications()
    paused = client.get_limits_paused()
    if not as_json:
        return applications_report(apps, paused) + "\n"
    import json  # here: `chadthrottle-ctl --help` imports this module too

    report = {
        "time": round(time.time(), 3),
        "paused": paused,
        "applications": [plain(app) for app in apps],
    }
    return json.dumps(report, separators=(",", ":"), ensure_ascii=True)


def watch(client: BlockingHelperClient, *, as_json: bool, interval_s: float, count: int | None,
          out: TextIO | None = None, clock: Callable[[], float] = time.monotonic,
          sleep: Callable[[float], None] = time.sleep) -> None:  # fmt: skip
    """Print a report every interval_s (on a fixed schedule, so lines do not
    drift), count of them or until stopped. Raises HelperGone when the helper
    stops answering after having answered."""
    out = out or sys.stdout
    due = clock()
    printed = 0
    while count is None or printed < count:
        try:
            line = watch_line(client, as_json)
        except HelperClientError as error:
            if printed and (error.helper_missing or error.name == NO_REPLY):
                raise HelperGone(error.message or error.name) from None
            raise
        out.write(line + "\n")
        out.flush()
        printed += 1
        if count is not None and printed >= count:
            return
        due += interval_s
        delay = due - clock()
        if delay > 0:
            sleep(delay)
        else:
            due = clock()  # fell behind (a slow answer): no burst of lines to catch up
