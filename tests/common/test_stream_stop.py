"""tests/support/netns.Stream.stop ends the traffic a shell started as its
child (start_stream's child_after_s, child_when), not only the shell. Until
2026-12-05 the child was left: a download's sink whose peer's close could not
reach it (the quota test's block still in force after a failed assertion)
held the pipe its reader thread read, so the reader outlived stop()'s 5 s
wait and met its pipe closed (ValueError in the thread: this test FAILED so
with the old stop); the child went only when it next wrote to that pipe."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.netns import _descendants, netns_pair, start_stream
from tests.support.requirements import require_root
from tests.support.waiting import eventually


def test_stopping_a_stream_ends_the_child_its_shell_started() -> None:
    require_root()
    with netns_pair() as pair:
        stream = start_stream(pair, 5873, "down", child_after_s=0.1, seconds=60)
        children: list[int] = []
        try:
            assert eventually(lambda: stream.receiver.total_bytes() > 0, 10), "no download"
            children = _descendants(stream.app.pid)
            assert children, "no child of the shell"
            # the peer's close cannot reach the sink now, as through a block
            subprocess.run(
                ["ip", "-n", pair.host_ns, "link", "set", pair.host_if, "down"], check=True
            )
        finally:
            stream.stop()
        gone = eventually(lambda: not any(Path(f"/proc/{pid}").exists() for pid in children), 5)
        assert gone, f"the shell's child {children} outlived stop()"
        assert not stream.receiver._thread.is_alive()
