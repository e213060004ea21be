"""The system's resolver tells "no name" from "no answer" (docs/gui.md, the
connections table's Remote host).

Offline, every remote host read "no name", its tooltip "reverse DNS gave
none": gethostbyaddr's TRY_AGAIN (no name server answered) was taken for the
resolver's "this address has no name" (HOST_NOT_FOUND). The real resolver of
the C library, in a private network and mount namespace: once with a name
server that never answers, once with hosts looked up in /etc/hosts only.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.requirements import require_program, require_root

CHILD = textwrap.dedent(
    """
    import socket, subprocess, sys
    resolv, nsswitch = sys.argv[1], sys.argv[2]
    subprocess.run(["mount", "--bind", resolv, "/etc/resolv.conf"], check=True)
    if nsswitch:
        subprocess.run(["mount", "--bind", nsswitch, "/etc/nsswitch.conf"], check=True)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 53))  # takes the query, never answers
    from chadthrottle.gui.models.reverse_dns import LookupFailed, system_resolver
    try:
        print("name:", system_resolver("192.0.2.77"))  # no /etc/hosts line
    except LookupFailed as failed:
        print("no answer:", failed)
    """
)


@pytest.mark.parametrize(("hosts", "said"), [("files dns", "no answer:"), ("files", "name: None")])
def test_no_answer_is_not_no_name(tmp_path: Path, hosts: str, said: str) -> None:
    require_root()
    require_program("unshare")
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    nsswitch = tmp_path / "nsswitch.conf"
    nsswitch.write_text(f"hosts: {hosts}\n")
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        ["unshare", "--mount", "--net", "--", sys.executable, "-c", CHILD, str(resolv), str(nsswitch)],
        capture_output=True, text=True, check=False, cwd=repo,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith(said), done.stdout
