"""How long the real helper takes to start and how much memory it keeps once
its datapath is up, with the compiled programs cached (warm) and not (cold).

Each round starts the helper on a private system bus with a real polkitd, in
the host namespace of a veth pair, and times from spawning it to the moment
the bus announces it owns its name (NameOwnerChanged, no polling) and to the
reply of its first call (ListApplications). Two seconds later (past the first
ticks and the adoption of open sockets) it reads the helper's resident memory
from /proc/PID/smaps_rollup (RSS, PSS, anonymous) and whether LLVM is mapped.
A cold round first removes the stored program set (program_cache.CACHE_FILE),
so the helper compiles with bcc; the header tree stays.

    python bench/helper_start.py                  # 5 cold and 5 warm rounds
    python bench/helper_start.py --rounds 10 --warm-only
    python bench/helper_start.py --before DIR     # and, round for round, another version
    python bench/helper_start.py --one-way-refused  # the with-reading build refused (below)

--before DIR runs, before each round, the same round with the helper of
another version: DIR holds that version's `chadthrottle` package (the helper
is started with PYTHONPATH=DIR), so both see the same machine load. Its
programs are kept in a cache directory of its own (--cache-dir: their key
differs, by their -I path at least), so its warm rounds are warm too (they
were cold, each version replacing the other's programs).

The helper runs from bytecode, as installed (pip and Debian's packaging
compile it): the bench's helpers write and read theirs in a directory of the
bench's own (PYTHONPYCACHEPREFIX), filled by an unmeasured first round. Under
PYTHONDONTWRITEBYTECODE, as development sessions run, every start compiled
each of its ~110 chadthrottle modules from source (about 0.1 s of CPU);
--source measures that.

--one-way-refused starts the helper with CHADTHROTTLE_TEST_ONE_WAY_REFUSED=1
(program_build.ONE_WAY_REFUSED_VARIABLE): the verifier refuses its programs
with the upload's one-way reading and it loads them without (datapath.py). Its
programs are kept in a cache directory of the bench's own (the shared one keeps
the set with the reading); a cold round removes both sets there, so the helper
builds the refused set and then the plain one; a warm round finds the refusal
remembered and the plain set stored. It prints ListBackends' tc notes once.

Targets (issue 19): under 80 MiB resident with the datapath up, start under
0.5 s with a warm cache.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chadthrottle.contract import BUS_NAME, INTERFACE, OBJECT_PATH
from chadthrottle.helper.kernel.program_build import ONE_WAY_REFUSED_VARIABLE
from chadthrottle.helper.kernel.program_cache import PLAIN_CACHE_FILE
from chadthrottle.helper.standalone import HelperProcess, PrivateSystemBus
from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

from tests.support.netns import netns_pair

CACHE_FILE = Path(
    "/var/cache/chadthrottle/bpf-programs.json"
)  # program_cache.CACHE_FILE in the default dir
SETTLE_S = 2.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Round:
    owned_s: float  # spawn -> NameOwnerChanged
    answered_s: float  # spawn -> first reply
    cpu_s: float  # the helper's CPU and its waited-for children's, until the name was owned
    rss_mib: float
    pss_mib: float
    anon_mib: float
    llvm_mapped: bool


def _memory(pid: int) -> tuple[float, float, float]:
    """(RSS, PSS, anonymous) in MiB."""
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        values[name] = int(rest.split()[0]) / 1024
    return values["Rss"], values["Pss"], values["Anonymous"]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / CLK_TCK  # utime stime cutime cstime


async def _one_round(
    bus_address: str,
    netns: str,
    state_dir: Path,
    python_path: str | None = None,
    cache_dir: Path | None = None,
    refused: bool = False,
) -> Round:
    watcher = await MessageBus(bus_address=bus_address).connect()
    owned = asyncio.get_running_loop().create_future()

    def on_message(message: Message) -> None:
        if (
            message.member == "NameOwnerChanged"
            and message.body[0] == BUS_NAME
            and message.body[2]
            and not owned.done()
        ):
            owned.set_result(time.monotonic())

    watcher.add_message_handler(on_message)
    await watcher.call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                               interface="org.freedesktop.DBus", member="AddMatch", signature="s",
                               body=[f"type='signal',member='NameOwnerChanged',arg0='{BUS_NAME}'"]))  # fmt: skip
    helper = HelperProcess(
        bus_address, netns=netns, state_dir=state_dir, log_level="warning", start_timeout_s=150,
        cache_dir=cache_dir,
    )  # fmt: skip
    spawned: list[float] = []

    def start() -> None:
        spawned.append(time.monotonic())
        helper.start()

    saved = os.environ.get("PYTHONPATH")
    if python_path is not None:
        os.environ["PYTHONPATH"] = python_path  # the helper inherits it
    if refused:
        os.environ[ONE_WAY_REFUSED_VARIABLE] = "1"  # the helper inherits it
    starting = threading.Thread(target=start)
    starting.start()
    try:
        owned_at = await asyncio.wait_for(owned, 150)
        pid = helper._process.pid if helper._process else 0
        cpu_s = _cpu_seconds(pid)
        reply = await watcher.call(Message(destination=BUS_NAME, path=OBJECT_PATH, interface=INTERFACE,
                                           member="ListApplications"))  # fmt: skip
        answered_at = time.monotonic()
        if reply.message_type is not MessageType.METHOD_RETURN:
            raise RuntimeError(f"ListApplications: {reply.error_name} {reply.body}")
        await asyncio.to_thread(starting.join)
        _restore_python_path(saved)
        os.environ.pop(ONE_WAY_REFUSED_VARIABLE, None)
        if refused and not _NOTES_SHOWN:
            await _show_notes(watcher)
        await asyncio.sleep(SETTLE_S)
        rss, pss, anon = _memory(pid)
        llvm = "libLLVM" in Path(f"/proc/{pid}/maps").read_text()
        return Round(owned_at - spawned[0], answered_at - spawned[0], cpu_s, rss, pss, anon, llvm)
    finally:
        await asyncio.to_thread(starting.join)
        _restore_python_path(saved)
        os.environ.pop(ONE_WAY_REFUSED_VARIABLE, None)
        helper.close()
        watcher.disconnect()


_NOTES_SHOWN: list[str] = []


async def _show_notes(watcher: MessageBus) -> None:
    """ListBackends' notes, once: what the helper says of the reading it has not."""
    reply = await watcher.call(Message(destination=BUS_NAME, path=OBJECT_PATH, interface=INTERFACE,
                                       member="ListBackends"))  # fmt: skip
    for backend in reply.body[0]:
        notes = backend["notes"].value
        _NOTES_SHOWN.append(notes)
        print(f"ListBackends {backend['name'].value}: notes {notes!r}")


def _restore_python_path(saved: str | None) -> None:
    if saved is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = saved


def _bytecode(directory: str, source: bool) -> None:
    """The helpers this bench starts (they inherit its environment) write and
    read all their bytecode in directory; with source, none is written (as in
    a development session: the modules of a tree without __pycache__ are
    compiled at each start, the standard library's and site-packages' are not)."""
    if source:
        os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        os.environ["PYTHONPYCACHEPREFIX"] = directory
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def _spread(values: list[float], unit: str, scale: float = 1.0) -> str:
    scaled = [value * scale for value in values]
    return f"median {statistics.median(scaled):7.1f} {unit}  min {min(scaled):7.1f}  max {max(scaled):7.1f}"


def _report(kind: str, rounds: list[Round]) -> None:
    print(f"{kind} ({len(rounds)} rounds)")
    print(f"  spawn -> owns {BUS_NAME}: {_spread([r.owned_s for r in rounds], 'ms', 1000)}")
    print(f"  spawn -> first reply:    {_spread([r.answered_s for r in rounds], 'ms', 1000)}")
    print(f"  CPU until owned:         {_spread([r.cpu_s for r in rounds], 'ms', 1000)}")
    print(f"  RSS after {SETTLE_S:.0f} s:          {_spread([r.rss_mib for r in rounds], 'MiB')}")
    print(f"  PSS after {SETTLE_S:.0f} s:          {_spread([r.pss_mib for r in rounds], 'MiB')}")
    print(f"  anonymous:               {_spread([r.anon_mib for r in rounds], 'MiB')}")
    print(f"  LLVM mapped in the helper: {sorted({r.llvm_mapped for r in rounds})}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each kind")
    parser.add_argument("--warm-only", action="store_true")
    parser.add_argument("--cold-only", action="store_true")
    parser.add_argument(
        "--before", metavar="DIR", help="also run another version's helper (its package in DIR)"
    )
    parser.add_argument(
        "--one-way-refused",
        action="store_true",
        help="the helper's with-reading build refused by the verifier: it loads the plain one",
    )
    parser.add_argument(
        "--source",
        action="store_true",
        help="no bytecode: each start compiles its modules (PYTHONDONTWRITEBYTECODE)",
    )
    arguments = parser.parse_args()
    if os.geteuid() != 0:
        print("helper_start: run as root (namespaces, BPF, tc)", file=sys.stderr)
        return 1
    kinds = [
        kind
        for kind, skipped in (("cold", arguments.warm_only), ("warm", arguments.cold_only))
        if not skipped
    ]
    with (
        PrivateSystemBus() as bus,
        netns_pair() as pair,
        tempfile.TemporaryDirectory() as state_dir,
        tempfile.TemporaryDirectory(prefix="chadthrottle-bench-pyc-") as bytecode_dir,
        tempfile.TemporaryDirectory(prefix="chadthrottle-bench-before-") as before_dir,
        tempfile.TemporaryDirectory(prefix="chadthrottle-bench-refused-") as refused_dir,
    ):
        before_cache = Path(before_dir)  # its programs' key differs (their -I path at least)
        refused = arguments.one_way_refused
        cache = Path(refused_dir) if refused else None  # the shared cache keeps the reading's
        if cache is not None:
            cache.chmod(0o755)
        _bytecode(bytecode_dir, arguments.source)
        # One unmeasured start (of each version) stores the programs if nothing has yet,
        # and the bytecode.
        asyncio.run(_one_round(bus.address, pair.host_ns, Path(state_dir), None, cache, refused))
        if arguments.before:
            asyncio.run(_one_round(bus.address, pair.host_ns, Path(state_dir), arguments.before,
                                   before_cache))  # fmt: skip
        for kind in kinds:
            rounds, before = [], []
            for _ in range(arguments.rounds):
                if kind == "cold" and cache is not None:
                    for name in (CACHE_FILE.name, PLAIN_CACHE_FILE):
                        (cache / name).unlink(missing_ok=True)
                elif kind == "cold":
                    CACHE_FILE.unlink(missing_ok=True)
                    (before_cache / CACHE_FILE.name).unlink(missing_ok=True)
                if arguments.before:
                    before.append(asyncio.run(_one_round(bus.address, pair.host_ns, Path(state_dir),
                                                         arguments.before, before_cache)))  # fmt: skip
                rounds.append(asyncio.run(_one_round(bus.address, pair.host_ns, Path(state_dir),
                                                     None, cache, refused)))  # fmt: skip
            if before:
                _report(f"before ({arguments.before}), beside {kind}", before)
            _report(f"{kind}, the one-way reading refused" if refused else kind, rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
