"""The open connections of a set of processes, from /proc.

Each process's own /proc/<pid>/net tables are read, so sockets in other network
namespaces are found too; a socket is matched to a process by its inode.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass

TCP_STATES = {
    "01": "ESTABLISHED",
    "02": "SYN_SENT",
    "03": "SYN_RECV",
    "04": "FIN_WAIT1",
    "05": "FIN_WAIT2",
    "06": "TIME_WAIT",
    "07": "CLOSE",
    "08": "CLOSE_WAIT",
    "09": "LAST_ACK",
    "0A": "LISTEN",
    "0B": "CLOSING",
}
TABLES = (("tcp", "tcp", 4), ("tcp6", "tcp", 6), ("udp", "udp", 4), ("udp6", "udp", 6))


@dataclass(frozen=True)
class Connection:
    protocol: str  # "tcp" or "udp"
    local: str  # "address:port", IPv6 in brackets
    remote: str
    state: str
    pid: int
    inode: int = 0  # the socket's, to find its counters (kernel/socket_diag.py)
    reader: int = 0  # a pid in the socket's network namespace, to read its counters through


def _address(hex_address: str, family: int) -> str:
    """/proc/net hex "0100007F:1F90" -> "127.0.0.1:8080" (words in host order)."""
    host_hex, port_hex = hex_address.split(":")
    raw = bytes.fromhex(host_hex)
    # the kernel prints each 32-bit word in host (little-endian) order
    host = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    address = ipaddress.ip_address(host)
    port = int(port_hex, 16)
    if family == 6:
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        return f"{mapped}:{port}" if mapped else f"[{address}]:{port}"
    return f"{address}:{port}"


def parse_table(
    text: str, protocol: str, family: int, inode_to_pid: dict[int, int], reader: int = 0
) -> list[Connection]:
    connections = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10:
            continue
        try:
            inode = int(fields[9])
        except ValueError:
            continue
        pid = inode_to_pid.get(inode)
        if pid is None:
            continue
        state = (
            TCP_STATES.get(fields[3], fields[3])
            if protocol == "tcp"
            else ("UNCONN" if fields[3] == "07" else "ESTABLISHED")
        )
        connections.append(
            Connection(
                protocol,
                _address(fields[1], family),
                _address(fields[2], family),
                state,
                pid,
                inode,
                reader,
            )
        )
    return connections


def socket_inodes(pid: int) -> list[int]:
    inodes: list[int] = []
    try:
        entries = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for entry in entries:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{entry}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.append(int(target[8:-1]))
    return inodes


def connections_of(pids: Iterable[int]) -> list[Connection]:
    """Connections of these processes; each network namespace's tables read once."""
    inode_to_pid: dict[int, int] = {}
    namespaces: dict[str, int] = {}  # netns -> a pid to read its tables through
    for pid in pids:
        inodes = socket_inodes(pid)
        if not inodes:
            continue
        for inode in inodes:
            inode_to_pid.setdefault(inode, pid)
        try:
            namespaces.setdefault(os.readlink(f"/proc/{pid}/ns/net"), pid)
        except OSError:
            continue
    found = []
    for reader in namespaces.values():
        for table, protocol, family in TABLES:
            try:
                with open(f"/proc/{reader}/net/{table}") as file:
                    text = file.read()
            except OSError:
                continue
            found += parse_table(text, protocol, family, inode_to_pid, reader)
    return found
