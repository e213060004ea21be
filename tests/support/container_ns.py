"""A container in miniature behind the helper's namespace: a network namespace
of its own, joined to the helper's by a veth (on a bridge there, as docker0,
with bridge=True), whose traffic the helper's namespace routes out through its
uplink (the way a container, `ip netns exec` or a sandbox with a veth reaches
the internet). Masqueraded out of the helper's uplink as docker does (nft,
scripts/install-deps), or, with masquerade=False, routed: the modem and the
internet get a route back to it.

  container --veth-- helper's namespace --veth-- modem --veth-- internet
  container --veth-- helper's namespace --veth-- internet  (no modem: internet None)
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from bench.bottleneck import Internet
from tests.support.netns import NetnsPair, extra_link, nsenter_argv


@dataclass(frozen=True)
class Container:
    netns: str
    addr: str
    host_if: str  # its veth's end in the helper's namespace
    bridge: str = ""  # the bridge that end is on (bridge=True), the container's gateway

    @property
    def netns_link(self) -> str:
        """As /proc/PID/ns/net reads for a process in it: net:[inode]."""
        return f"net:[{os.stat(f'/run/netns/{self.netns}').st_ino}]"

    def path_to(self, internet: Internet) -> NetnsPair:
        """The container and the internet as a NetnsPair, for start_stream
        (its application in the container, its server in the internet)."""
        return NetnsPair(peer_ns=internet.netns, host_ns=self.netns, peer_if="", host_if="",
                         peer_addr=internet.addr, host_addr=self.addr, peer_addr6="", host_addr6="")  # fmt: skip

    def path_to_peer(self, pair: NetnsPair) -> NetnsPair:
        """The container and the pair's peer namespace (the internet when
        there is no modem), for start_stream."""
        return NetnsPair(peer_ns=pair.peer_ns, host_ns=self.netns, peer_if="", host_if="",
                         peer_addr=pair.peer_addr, host_addr=self.addr, peer_addr6="", host_addr6="")  # fmt: skip


def _masquerade(table: str, out_if: str, source: str) -> str:
    return (f"table ip {table} {{\n chain post {{\n  type nat hook postrouting priority srcnat;\n"
            f'  oifname "{out_if}" ip saddr {source} masquerade\n }}\n}}\n')  # fmt: skip


def _run(*argv: str, stdin: str | None = None) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, input=stdin)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")


def _gateway(netns: str, to: str) -> str:
    routes = subprocess.run(["ip", "-n", netns, "-j", "route", "get", to],
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    return str(json.loads(routes)[0]["gateway"])


def _bridged(netns: str, port: str, gateway: str) -> str:
    """A bridge in netns with port on it and the port's address (the
    container's gateway, /24) moved to it, as docker0 holds its containers'
    veths; the bridge's name."""
    bridge = f"ctbr{secrets.token_hex(4)}"
    _run("ip", "-n", netns, "link", "add", bridge, "type", "bridge")
    try:
        _run("ip", "-n", netns, "addr", "del", f"{gateway}/24", "dev", port)
        _run("ip", "-n", netns, "link", "set", port, "master", bridge)
        _run("ip", "-n", netns, "addr", "add", f"{gateway}/24", "dev", bridge)
        _run("ip", "-n", netns, "link", "set", bridge, "up")
    except BaseException:
        subprocess.run(["ip", "-n", netns, "link", "del", bridge], capture_output=True)
        raise
    return bridge


@contextlib.contextmanager
def routed_container(
    pair: NetnsPair,
    internet: Internet | None,
    owner: str,
    masquerade: bool = False,
    bridge: bool = False,
) -> Iterator[Container]:
    """A new namespace (named after owner, an engineer's or test's tag) behind
    pair.host_ns, routed to the internet behind the modem; the helper's
    namespace forwards and gets a default route through the modem (a real
    host has one). internet None: the pair's peer namespace is the internet,
    on the uplink's subnet (no default route added). masquerade: its packets
    leave pair.host_if with the uplink's address and a port of conntrack's
    choosing (an nft table of its own), and nothing routes back to the
    container's address. bridge: the veth's end in the helper's namespace is
    on a bridge of its own that holds the container's gateway address, as
    docker0. What this made or changed is undone on exit."""
    name = f"ctc{owner}-{secrets.token_hex(3)}"
    helper_ns = pair.host_ns
    forwarding = subprocess.run(nsenter_argv(helper_ns, ["sysctl", "-n", "net.ipv4.ip_forward"]),
                                capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    with extra_link(name, helper_ns) as link:
        # link.host_* is the container's side, link.peer_* the helper namespace's
        added: list[list[str]] = []
        try:
            _run(*nsenter_argv(helper_ns, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]))
            bridged = _bridged(helper_ns, link.peer_if, link.peer_addr) if bridge else ""
            if bridged:
                added.append(["ip", "-n", helper_ns, "link", "del", bridged])
            _run("ip", "-n", name, "route", "add", "default", "via", link.peer_addr)
            for netns, via in ((helper_ns, pair.peer_addr),) if internet else ():
                _run("ip", "-n", netns, "route", "add", "default", "via", via)
                added.append(["ip", "-n", netns, "route", "del", "default", "via", via])
            back: tuple[tuple[str, str], ...] = (
                (
                    (internet.modem_ns, pair.host_addr),
                    (internet.netns, _gateway(internet.netns, pair.host_addr)),
                )
                if internet
                else ((pair.peer_ns, pair.host_addr),)
            )
            if masquerade:
                table = f"ctc{owner}{secrets.token_hex(3)}"
                _run(
                    *nsenter_argv(helper_ns, ["nft", "-f", "-"]),
                    stdin=_masquerade(table, pair.host_if, link.host_addr),
                )
                added.append(nsenter_argv(helper_ns, ["nft", "delete", "table", "ip", table]))
                back = ()
            for netns, via in back:
                _run("ip", "-n", netns, "route", "add", f"{link.host_addr}/32", "via", via)
                added.append(["ip", "-n", netns, "route", "del", f"{link.host_addr}/32"])
            yield Container(name, link.host_addr, link.peer_if, bridged)
        finally:
            for argv in reversed(added):
                subprocess.run(argv, capture_output=True)
            subprocess.run(nsenter_argv(helper_ns, ["sysctl", "-qw", f"net.ipv4.ip_forward={forwarding}"]),
                           capture_output=True)  # fmt: skip
