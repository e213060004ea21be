"""A reverse lookup the resolver does not answer must not stop the window.

walk28 (Xvfb, a machine whose DNS server did not answer): every time the
connections table asked for a remote host's name, the whole GUI stood still
for the resolver's 10 s: no repaint, no input, no poll (holes in every graph).
CPython 3.11's socket.getnameinfo keeps the GIL while it waits, so the lookup
pool's thread stopped every other thread. Here the real pool and the system's
real resolver wait on a name server that never answers (a UDP socket nobody
reads, in a private network and mount namespace), and the calling thread must
go on running meanwhile.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.requirements import require_program, require_root

CHILD = textwrap.dedent(
    """
    import json, select, socket, subprocess, sys, time
    subprocess.run(["mount", "--bind", sys.argv[1], "/etc/resolv.conf"], check=True)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 53))  # takes the query, never answers
    from chadthrottle.gui.models.reverse_dns import ReverseDnsCache
    address = "192.0.2.77"  # documentation range: no /etc/hosts line, no name
    dns = ReverseDnsCache()
    assert dns.name_of(address) is None
    asked = False
    while dns._pending and not asked:  # until the query reaches the server
        asked = bool(select.select([silent], [], [], 0)[0])
        time.sleep(0.002)
    turns = 0
    while dns._pending:  # the lookup waits on the silent server
        turns += 1
        time.sleep(0.005)
    print(json.dumps({"asked_while_waiting": asked, "turns_while_waiting": turns}))
    dns.close()
    """
)


def test_the_window_thread_runs_while_a_reverse_lookup_waits(tmp_path: Path) -> None:
    require_root()
    require_program("unshare")
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:2 attempts:1\n")
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        ["unshare", "--mount", "--net", "--", sys.executable, "-c", CHILD, str(resolv)],
        capture_output=True, text=True, check=False, cwd=repo,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    # The server saw the query while the lookup still waited: the thread that
    # asked was running then, not only after the lookup gave up.
    assert seen["asked_while_waiting"], seen
    # ...and kept running through the resolver's 2 s wait (one turn is 5 ms of
    # sleep: a stopped thread gets none; 20 is a tenth of the wait).
    assert seen["turns_while_waiting"] >= 20, seen
