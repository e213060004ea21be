"""Block and quotas end to end (issue 15): chadthrottle-ctl through the real
helper on the private bus (with polkitd), real TCP and UDP downloads over the
project's veth pair.

- A block stops a running TCP download, a UDP one, a TCP upload and a TCP
  download of the same application in another network namespace at once;
  unblock resumes the same TCP connections. The helper SIGKILLed with the block in force: the
  block lapses within the lease (traffic fails open), and the next helper
  blocks again from the stored rule.
- A 5 MB quota, with each backend, stops the download within one packet of
  5 MB; the direction then shows as blocked (from the next tick's listing).
  With ebpf: a SIGKILL and a new helper keep the spent quota (its use was
  stored). With tc (the engine's part is the
  same for both): set again to throttle, it runs at the then-rate; at the
  period boundary (the helper's wall clock moved a day on) the budget is whole
  again. Bad input (quota 0, unknown period) is refused by name and changes
  nothing.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from chadthrottle.client import HelperClientError
from chadthrottle.contract import TICK_INTERVAL_S, ApplicationInfo, Direction, ErrorName
from chadthrottle.helper.kernel.cgroups import cgroup2_mount
from chadthrottle.helper.kernel.gates import LEASE_S
from chadthrottle.helper.standalone import PrivateSystemBus

from tests.support import own_names
from tests.support.helper_calls import call_helper
from tests.support.helper_process import HelperProcess
from tests.support.netns import (
    NetnsPair,
    Receiver,
    Stream,
    app_scope,
    extra_link,
    nsenter_argv,
    spawn,
    start_stream,
)
from tests.support.waiting import eventually

CTL = [sys.executable, "-m", "chadthrottle.cli.ctl"]
QUOTA_BYTES = 5_000_000
L3_PER_PAYLOAD = 1500 / 1448  # a full TCP segment over IPv4 with timestamps, MTU 1500
ONE_PACKET = 64 * 1024 + 1500  # a GRO super-packet, the most one packet can be
THEN_BPS = 1_000_000
# A new period's budget at full speed (a veth at load 8: 0.95 of it within one 50 ms
# report, ~90 MB/s), where a tick more of the then-rate read 5.25 MB/s (2026-12-06)
NEW_PERIOD_FLOOR_BPS = 8 * THEN_BPS
# A stop the kernel made between ticks is listed from the next tick's publish:
# a tick's interval and its own work later at most (a few ticks, on a loaded machine),
# and vouched for (counted_through_ns) once the owner poll before a tick began after it
LISTED_WITHIN_S = 3 * TICK_INTERVAL_S


def _ctl(bus: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": bus}
    return subprocess.run(CTL + list(args), capture_output=True, text=True, env=env, timeout=60)


def _resent_segments(pair: NetnsPair) -> int:
    """TCP segments the peer namespace has sent again (its /proc/net/snmp
    RetransSegs): the download's sender is there, and a segment sent again
    crosses the gate again and is counted against the quota again, as on an
    ISP's meter (2026-12-06 CI: the sink got 228 KB of L3 less than the 5 MB
    quota the gate counted)."""
    snmp = subprocess.run(["ip", "netns", "exec", pair.peer_ns, "cat", "/proc/net/snmp"],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip
    names, values = [line.split()[1:] for line in snmp.splitlines() if line.startswith("Tcp:")]
    return int(dict(zip(names, values, strict=True))["RetransSegs"])


def _listed(bus: str, app_id: str) -> ApplicationInfo:
    """The application as ListApplications shows it (the client: a CLI call
    costs half a second of Python start-up; the CLI's own output is checked
    where it matters)."""
    return next(
        app for app in call_helper(bus, lambda c: c.list_applications()) if app.id == app_id
    )


def _fastest_span_s(samples: list[tuple[float, int]], since: float, payload: float) -> float:
    """The shortest time between two of a sink's reports (its clock, bytes
    counted) from since on that counted payload bytes between them (inf: none did)."""
    timed = [sample for sample in samples if sample[0] >= since]
    best, later = math.inf, 0
    for at, count in timed:
        while later < len(timed) and timed[later][1] - count < payload:
            later += 1
        if later == len(timed):
            break
        best = min(best, timed[later][0] - at)
    return best


# After the sender's retransmission is let through: TCP's slow start to 1 MB on the
# veth and the sink's report of it (the same 50 ms report here at load 6.5, flake36)
RESUMED_AFTER_RESEND_S = 3.0


def _resend_due_s(stream: Stream) -> float:
    """Seconds until a TCP stream's sender sends again on its own: its pending
    timer (the retransmission timer, backed off through a block: 0.2, 0.4,
    0.8 ... s, doubling at each timeout) as ss prints it, e.g.
    "timer:(on,2.772ms,4)" for 2 s 772 ms, "004ms", "1min3sec"; 0 when none is
    pending. Nothing on the receiver's side makes the far end resend sooner:
    an unblock lets its next retransmission through, which comes at this timer
    (a 4.3 s block: due 2.77 s later, resumed 2.95 s later; flake36)."""
    port = stream.port
    query = ["ss", "-tinoH", "state", "established", f"( sport = :{port} or dport = :{port} )"]
    listing = subprocess.run(nsenter_argv(stream.sender_netns, query), capture_output=True,
                             text=True, check=True).stdout  # fmt: skip
    found = re.search(r"timer:\(\w+,(?:(\d+)min)?(?:(\d+)(?:\.|sec))?(?:(\d+)ms)?,", listing)
    if found is None:
        return 0.0
    minutes, seconds, millis = (int(part or 0) for part in found.groups())
    return 60.0 * minutes + seconds + millis / 1000


def _stops_within(receivers: list[Receiver], seconds: float) -> bool:
    return all(eventually(lambda r=r: r.quiet_for(0.3), seconds) for r in receivers)


def _stored_use(state: Path, app_id: str) -> int:
    """The download quota's use in the current period as rules.json has it (0: none)."""
    try:
        rules = json.loads((state / "rules.json").read_text())["rules"]
    except (OSError, ValueError, KeyError):
        return 0
    quota = next((r.get("down", {}).get("quota", {}) for r in rules if r["app_id"] == app_id), {})
    return int(quota.get("used_bytes", 0))


@contextmanager
def _helper(bus: PrivateSystemBus, pair: NetnsPair, state: Path, *extra: str,
            backend: str = "auto") -> Iterator[HelperProcess]:  # fmt: skip
    helper = HelperProcess(bus.address, netns=pair.host_ns, state_dir=state, backend=backend)
    helper.command += list(extra)
    with helper:
        yield helper


def test_block_stops_tcp_and_udp_at_once_unblock_resumes_and_a_killed_helper_fails_open(
    private_bus: PrivateSystemBus, pair: NetnsPair, tmp_path: Path
) -> None:
    bus = private_bus.address
    app_id = own_names.app_id("TestBlock")
    with app_scope(cgroup2_mount(), own_names.desktop_id("TestBlock")) as scope, \
            app_scope(cgroup2_mount(), own_names.desktop_id("TestBlockPeer", fresh=True)) as peers, \
            extra_link(f"ctapp-{secrets.token_hex(3)}", pair.peer_ns) as elsewhere, \
            _helper(private_bus, pair, tmp_path / "state") as helper:  # fmt: skip
        # peers in a scope of their own: no rule on their program (the same script) reaches them
        tcp = start_stream(pair, 5730, "down", app_cgroup=scope, peer_cgroup=peers, seconds=120)
        udp = start_stream(
            pair, 5731, "down", udp=True, app_cgroup=scope, peer_cgroup=peers, seconds=120
        )
        upload = start_stream(pair, 5732, "up", app_cgroup=scope, peer_cgroup=peers, seconds=120)
        # the same application in another network namespace, with its own link (a sandbox, a VPN split tunnel)
        other_ns = start_stream(
            elsewhere, 5733, "down", app_cgroup=scope, peer_cgroup=peers, seconds=120
        )
        helpers = [helper]
        try:
            assert eventually(
                lambda: tcp.receiver.total_bytes() > 1_000_000 and udp.receiver.total_bytes() > 0, 5
            )
            blocked = _ctl(bus, "block", app_id)
            assert blocked.returncode == 0 and "blocked" in blocked.stdout, blocked.stderr
            receivers = [tcp.receiver, udp.receiver, upload.receiver, other_ns.receiver]
            assert _stops_within(receivers, 1.0), "traffic went on after the block"
            assert tcp.receiver.quiet_for(1.0) and all(r.quiet_for(0.2) for r in receivers[1:]), (
                "a packet passed the block"
            )
            listed = json.loads(_ctl(bus, "list", "--json").stdout)
            shown = next(app for app in listed if app["id"] == app_id)
            assert shown["down_blocked"] and shown["up_blocked"]
            assert shown["down_limit_bps"] == 0 and shown["up_limit_bps"] == 0, (
                "a block is never a rate"
            )

            held_at = tcp.receiver.total_bytes()
            call_helper(bus, lambda c: c.set_blocked(app_id, None, False))
            # each TCP connection goes on at its sender's next retransmission, backed off
            # through the block: the longer the block (this test's steps above, at load),
            # the later (CI read "TCP did not resume" in 8 s once; a 17.6-18.5 s block:
            # due 9.2-10 s). The gate opened at once is what UDP says; each TCP stream is
            # judged from its own timer.
            unblocked = time.monotonic()
            due = [_resend_due_s(stream) for stream in (tcp, upload, other_ns)]

            def left_s(due_s: float) -> float:
                return unblocked + due_s + RESUMED_AFTER_RESEND_S - time.monotonic()

            assert eventually(lambda: not udp.receiver.quiet_for(0.2), 3), "UDP did not resume"
            assert eventually(
                lambda: tcp.receiver.total_bytes() > held_at + 1_000_000, left_s(due[0])
            ), (
                f"TCP did not resume within {RESUMED_AFTER_RESEND_S} s of its resend due in {due[0]} s"
            )
            assert tcp.app.poll() is None, "the application lost its connection"
            assert eventually(lambda: not upload.receiver.quiet_for(0.2), left_s(due[1])), (
                f"the upload did not resume (its resend due in {due[1]} s)"
            )
            assert eventually(lambda: not other_ns.receiver.quiet_for(0.2), left_s(due[2])), (
                f"the other namespace did not resume (its resend due in {due[2]} s)"
            )
            assert upload.app.poll() is None

            # TCP gives up after 5 retries here, not 15: a blocked upload refused with a congestion notice
            # was probed every 0.5 s without backing off, and reset after them (2.5 s here, 7.5 s by
            # default). Set only now: in the whole block above its probes back off, and five of
            # them ended the upload ~14 s into a block made 13 s longer (flake36)
            subprocess.run(
                nsenter_argv(pair.host_ns, ["sysctl", "-qw", "net.ipv4.tcp_retries2=5"]), check=True
            )
            # uploads alone: their acknowledgements still come in, nothing is in flight, TCP probes the block
            call_helper(bus, lambda c: c.set_blocked(app_id, Direction.UP, True))
            assert _stops_within([upload.receiver], 1.0)
            # its TCP download goes on: the acknowledgements upload nothing and pass (the download stalled)
            assert not tcp.receiver.quiet_for(1.0), "a block of uploads stopped the download"
            time.sleep(
                2.5
            )  # the block's length is what is tested: past 5 probes 0.5 s apart (the reset, before)
            call_helper(bus, lambda c: c.set_blocked(app_id, Direction.UP, False))
            assert eventually(lambda: not upload.receiver.quiet_for(0.2), 8), (
                "the upload did not resume"
            )
            assert upload.app.poll() is None, (
                "the upload lost its connection in a block of uploads alone"
            )

            call_helper(bus, lambda c: c.set_blocked(app_id, Direction.DOWN, True))
            assert _stops_within([tcp.receiver, udp.receiver], 1.0)
            assert not upload.receiver.quiet_for(1.0), "a block of downloads stopped the upload"
            helpers[0].kill()  # SIGKILL: the lease is not renewed, the block lapses (fail open)
            killed = time.monotonic()
            assert eventually(lambda: not udp.receiver.quiet_for(0.1), LEASE_S + 2.0), (
                "still blocked by a dead helper"
            )
            # by when the sink counted it, not when this thread was told (late on a busy machine)
            open_after_s = (udp.receiver.counted_more_at(killed) or time.monotonic()) - killed
            assert open_after_s <= LEASE_S + 1.5, (
                f"traffic came back {open_after_s:.1f} s after the SIGKILL"
            )
            with _helper(
                private_bus, pair, tmp_path / "state"
            ) as restarted:  # the stored block again
                helpers.append(restarted)
                assert _stops_within([udp.receiver], 5.0), (
                    "the restarted helper did not block again"
                )
                assert _listed(bus, app_id).down_blocked
                call_helper(bus, lambda c: c.set_blocked(app_id, None, False))
        finally:
            for stream in (tcp, udp, upload, other_ns):
                stream.stop()


@pytest.mark.parametrize("backend", ["tc", "ebpf"])
def test_a_quota_stops_within_a_packet_then_throttles_and_resets_at_the_period_boundary(
    private_bus: PrivateSystemBus, pair: NetnsPair, tmp_path: Path, backend: str
) -> None:
    bus = private_bus.address
    desktop_id = own_names.desktop_id(f"TestQuota{backend.capitalize()}")
    app_id = f"app:{desktop_id}"
    clock = tmp_path / "clock"
    clock.write_text(f"{time.time()}\n")
    with (
        app_scope(cgroup2_mount(), desktop_id) as scope,
        app_scope(cgroup2_mount(), own_names.desktop_id("TestQuotaPeer", fresh=True)) as peers,
        _helper(
            private_bus, pair, tmp_path / "state", "--wall-clock-file", str(clock), backend=backend
        ) as helper,
    ):
        # The application's shell runs now, its download once the quota is set: under
        # the quota from byte one. Until 2026-12-05 it started 1 s after the shell,
        # against two CLI calls (an interpreter start each) and three bus calls before
        # the quota: at load 9 the tc run stopped at 16.9 MB of L3 for a 5 MB quota.
        go = tmp_path / "quota-set"
        stream = start_stream(pair, 5740 if backend == "tc" else 5741, "down", app_cgroup=scope, seconds=120,
                              child_when=go, peer_cgroup=peers)  # fmt: skip
        try:
            rules_before = call_helper(bus, lambda c: c.list_rules())
            refused = _ctl(
                bus, "quota", app_id, "0", "--per", "day"
            )  # the helper's refusal, through the CLI
            assert refused.returncode == 2 and "SIZE must be" in refused.stderr, (
                refused
            )  # in the CLI's words
            assert "(to remove a quota: chadthrottle-ctl quota APP --off)" in refused.stderr, (
                refused
            )
            for size, period in ((0, "day"), (QUOTA_BYTES, "fortnight")):
                with pytest.raises(HelperClientError) as error:
                    call_helper(
                        bus,
                        lambda c, size=size, period=period: c.set_quota(app_id, None, size, period),
                    )
                assert error.value.error == ErrorName.INVALID_ARGUMENT.value
            assert call_helper(bus, lambda c: c.list_rules()) == rules_before, (
                "bad input changed the rules"
            )

            set_quota = _ctl(bus, "quota", app_id, "5MB", "--per", "day", "--down")
            assert set_quota.returncode == 0, set_quota.stderr
            resent_before = _resent_segments(pair)
            go.touch()
            assert eventually(lambda: stream.receiver.total_bytes() > 1_000_000, 5), (
                "the download did not start"
            )
            assert eventually(lambda: stream.receiver.quiet_for(0.5), 10), (
                "the download was not stopped"
            )
            payload = stream.receiver.total_bytes()
            on_the_wire = payload * L3_PER_PAYLOAD
            # what the gate counted beyond the payload: segments sent again (at most a full one each)
            resent = (_resent_segments(pair) - resent_before) * 1500
            slack = ONE_PACKET + 0.002 * QUOTA_BYTES  # one packet, and the header estimate
            assert on_the_wire <= QUOTA_BYTES + slack, (
                f"{backend}: passed {on_the_wire:.0f} bytes at L3"
            )
            assert on_the_wire + resent >= QUOTA_BYTES - slack, (
                f"{backend}: stopped at {on_the_wire:.0f} bytes at L3 ({resent} resent)"
            )
            # ListApplications answers from the snapshot the last tick published
            # (helper/engine/snapshot.py), the kernel's count read then: a quota
            # spent between ticks is listed spent from the next tick's publish.
            # CI at b2e67bd read once, 0.5 s after the sink went quiet, a publish
            # made before the stop: down_blocked False (flake34b, 2026-12-07)
            # Each row carries the moment its counts hold through
            # (counted_through_ns, CLOCK_MONOTONIC like the sink's clock: its
            # counters were read after it). A row vouching past the stop must
            # list the quota spent; earlier rows may still show it left. A bare
            # wait for a spent row passed a listing a tick stale (review37a:
            # quota_left as counted 1 s before passed 8 of 8 runs; this check
            # failed 1 of 7, the one whose tick already vouched past the stop).
            samples = list(stream.receiver.sink_samples)
            stopped_ns = int(next(at for at, count in samples if count == samples[-1][1]) * 1e9)
            rows: list[ApplicationInfo] = []

            def vouched_past_the_stop() -> bool:
                rows.append(_listed(bus, app_id))
                return rows[-1].counted_through_ns > stopped_ns

            assert eventually(vouched_past_the_stop, LISTED_WITHIN_S), (payload, rows[-1])
            listed = rows[-1]
            assert listed.down_blocked and listed.down_quota_left_bytes == 0, (
                "its counters were read after the stop",
                payload,
                stopped_ns,
                listed,
            )
            assert listed.down_quota_bytes == QUOTA_BYTES and listed.down_quota_period == "day"
            assert listed.down_limit_bps == 0
            if backend == "ebpf":  # what follows is the engine's, the same with either backend
                # a SIGKILL and a new helper: the period's use was stored, the budget stays spent
                assert eventually(
                    lambda: _stored_use(tmp_path / "state", app_id) >= QUOTA_BYTES, 5
                ), "not stored"
                helper.kill()
                with _helper(
                    private_bus,
                    pair,
                    tmp_path / "state",
                    "--wall-clock-file",
                    str(clock),
                    backend=backend,
                ):
                    again = _listed(bus, app_id)
                    assert again.down_blocked and again.down_quota_left_bytes == 0, (
                        "a restart refilled the quota"
                    )
                    assert eventually(lambda: stream.receiver.quiet_for(0.5), 5), (
                        "the restarted helper let it through"
                    )
                    # --off forgets what the period used: a quota set again starts whole (it went on from 0 left).
                    # The download ends first: unblocked it ran at ~50 MB/s, and at load 9 it spent
                    # the fresh 5 MB before the listing (33 MB between --off and the set, 2026-12-06).
                    # The application still runs (a process of its own, without sockets): with
                    # its every process gone and its rule removed by --off, the set found no
                    # application once a tick had seen them exit (flake10, 2026-12-06).
                    spawn(["sleep", "120"], scope)  # ended with the scope
                    stream.stop()
                    removed = _ctl(bus, "quota", app_id, "--off", "--down")
                    assert removed.returncode == 0 and "forgotten" in removed.stdout, removed
                    assert (
                        _ctl(bus, "quota", app_id, "5MB", "--per", "day", "--down").returncode == 0
                    )
                    fresh = _listed(bus, app_id)
                    assert (
                        not fresh.down_blocked
                        and fresh.down_quota_left_bytes >= QUOTA_BYTES - ONE_PACKET
                    ), fresh
                    call_helper(bus, lambda c: c.clear_quota(app_id))
                    assert call_helper(bus, lambda c: c.list_rules()) == rules_before
                return

            # then throttled: the period's use is kept, the rate applies
            call_helper(
                bus, lambda c: c.set_quota(app_id, Direction.DOWN, QUOTA_BYTES, "day", 0, THEN_BPS)
            )
            assert eventually(lambda: _listed(bus, app_id).down_limit_bps == THEN_BPS, 3)
            assert eventually(lambda: stream.receiver.rate_bps(0.5) > 0.5 * THEN_BPS, 8), (
                "not throttled, stopped"
            )
            # The first window after the gate opens also carries the class's burst
            # and what its queue held (about 0.3 s of the rate): the rate is judged
            # once a whole window can have passed without them.
            rates: list[float] = []

            def throttled() -> bool:
                rates.append(stream.receiver.rate_bps(1.5) * L3_PER_PAYLOAD)
                return 0.8 * THEN_BPS <= rates[-1] <= 1.2 * THEN_BPS

            assert eventually(throttled, 6), (
                f"{backend}: {[round(r) for r in rates]} B/s after the quota"
            )

            # A day later: a new period, the whole budget again at full speed, judged by
            # the sink's clock as the shortest span that carried 0.95 of it: neither from
            # the clock's move (the helper sees it at its next tick, the throttle passing
            # meanwhile) nor from a listing of the new period (the budget may be spent by
            # then, and it lists so for a tick only). Until 2026-12-06 the then-rate's
            # class held one more tick into the new period: ~0.8 s of it in any such span.
            moved = time.monotonic()
            clock.write_text(f"{time.time() + 86_400}\n")
            payload = 0.95 * QUOTA_BYTES / L3_PER_PAYLOAD
            spans: list[float] = []

            def at_full_speed() -> bool:
                spans.append(_fastest_span_s(list(stream.receiver.sink_samples), moved, payload))
                return 0.95 * QUOTA_BYTES / spans[-1] > NEW_PERIOD_FLOOR_BPS

            assert eventually(at_full_speed, 15), (
                f"0.95 of the new period's budget took {spans[-1]:.2f} s at best"
            )
            call_helper(bus, lambda c: c.clear_quota(app_id))
            assert call_helper(bus, lambda c: c.list_rules()) == rules_before
        finally:
            stream.stop()
