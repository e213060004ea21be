"""The connections table's model (rates from successive answers, sorting, host
names) and the reverse-DNS cache (pure logic, a fake resolver and clock)."""

from __future__ import annotations

import threading

from chadthrottle.contract import ConnectionInfo
from chadthrottle.gui.models import reverse_dns
from chadthrottle.gui.models.connection_table import (
    MEASURING,
    NO_NAME,
    NO_VALUE,
    ConnColumn,
    ConnectionTableModel,
)
from chadthrottle.gui.models.connections import ConnectionRates, connection_key
from chadthrottle.gui.models.reverse_dns import ReverseDnsCache, host_of
from PySide6.QtCore import Qt

APP = "app:org.example.Browser"


def tcp(
    port: int, rx: int, tx: int, state: str = "ESTABLISHED", remote: str = "192.0.2.7:443"
) -> ConnectionInfo:
    return ConnectionInfo("tcp", f"10.0.0.5:{port}", remote, state, 42, rx_bytes=rx, tx_bytes=tx)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class InlineDns(ReverseDnsCache):
    """The real cache with lookups run when the test says, not in threads."""

    def __init__(self, names: dict[str, str | None], clock: Clock) -> None:
        self.queued: list = []
        self.asked: list[str] = []

        def resolve(address: str) -> str | None:
            self.asked.append(address)
            return names.get(address)

        super().__init__(resolve, clock=clock, submit=self.queued.append)

    def run_lookups(self) -> None:
        while self.queued:
            self.queued.pop(0)()


def test_rates_are_the_counters_change_between_two_answers() -> None:
    rates = ConnectionRates()
    first = tcp(1000, rx=10_000, tx=500)
    assert rates.update([first], now=10.0) == {
        connection_key(first): (None, None)
    }  # nothing to compare yet
    later = tcp(1000, rx=30_000, tx=500)
    assert rates.update([later], now=12.0) == {connection_key(later): (10_000.0, 0.0)}
    udp = ConnectionInfo(
        "udp", "10.0.0.5:5353", "224.0.0.251:5353", "UNCONN", 42
    )  # no counters: -1
    rates.update([udp], now=13.0)
    assert rates.update([udp], now=14.0) == {connection_key(udp): (None, None)}
    reused = tcp(
        1000, rx=5, tx=5
    )  # another socket with the same addresses: its counters start over
    rates.update([tcp(1000, rx=9_000, tx=9_000)], now=15.0)
    assert rates.update([reused], now=16.0) == {connection_key(reused): (None, None)}


def test_the_model_shows_rates_bytes_and_the_address_until_the_name_arrives(qtbot) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    dns = InlineDns({"192.0.2.7": "www.example.org"}, clock)
    model = ConnectionTableModel(dns=dns, clock=clock)
    model.set_connections(APP, [tcp(1000, 1_000_000, 2_000)])
    text = lambda column: model.index(0, column).data()  # noqa: E731
    # counted, seen once: measuring (not the uncounted dash beside 1 MB received)
    assert (text(ConnColumn.DOWN), text(ConnColumn.UP)) == (MEASURING, MEASURING)
    assert "two answers" in model.index(0, ConnColumn.DOWN).data(Qt.ItemDataRole.ToolTipRole)
    assert (text(ConnColumn.RECEIVED), text(ConnColumn.SENT)) == ("1.00 MB", "2.00 KB")
    assert text(ConnColumn.HOST) == ""  # asked, not answered yet: the address is Remote's
    tip = lambda row: model.index(row, ConnColumn.HOST).data(Qt.ItemDataRole.ToolTipRole)  # noqa: E731
    assert tip(0) == "Looking up the name of 192.0.2.7 (reverse DNS)…"
    with qtbot.waitSignal(model.dataChanged) as changed:
        dns.run_lookups()
    assert changed.args[0].column() == ConnColumn.HOST
    assert text(ConnColumn.HOST) == "www.example.org"
    assert tip(0) == "www.example.org: the name of 192.0.2.7 by reverse DNS"
    clock.now += 2.0
    model.set_connections(APP, [tcp(1000, 3_000_000, 2_000)])
    assert (text(ConnColumn.DOWN), text(ConnColumn.UP)) == ("1.00 MB/s", "0 B/s")
    assert dns.asked == ["192.0.2.7"]  # looked up once, then cached
    model.set_connections("app:other", [tcp(1000, 5_000_000, 2_000)])
    assert text(ConnColumn.DOWN) == MEASURING  # another application's rates start afresh


def test_a_host_without_a_name_shows_its_address_once(qtbot) -> None:  # type: ignore[no-untyped-def]
    """Under Xvfb (walk26) Remote read "10.242.131.1:6440" and Remote host
    "10.242.131.1" beside it, the same address twice, as if it were a name.
    Without a name from reverse DNS the host cell says so, greyed; the
    address is the Remote column's alone. Sorted by host, names come first."""
    from PySide6.QtGui import QGuiApplication, QPalette

    clock = Clock()
    dns = InlineDns({"192.0.2.7": "www.example.org"}, clock)
    model = ConnectionTableModel(dns=dns, clock=clock)
    model.set_connections(APP, [tcp(1, 0, 0, remote="10.242.131.1:6440"), tcp(2, 0, 0)])

    def cell(row: int, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        return model.index(row, ConnColumn.HOST).data(role)

    assert [cell(r) for r in range(2)] == ["", ""]  # being asked
    with qtbot.waitSignals([model.dataChanged] * 2):  # a name, and none: both repainted
        dns.run_lookups()
    model.sort(ConnColumn.HOST, Qt.SortOrder.AscendingOrder)
    assert [cell(r) for r in range(2)] == ["www.example.org", NO_NAME]
    assert model.index(1, ConnColumn.REMOTE).data() == "10.242.131.1:6440"
    assert cell(1, Qt.ItemDataRole.ToolTipRole) == "No name: reverse DNS gave none for 10.242.131.1"
    placeholder = QGuiApplication.palette().color(QPalette.ColorRole.PlaceholderText)
    assert cell(1, Qt.ItemDataRole.ForegroundRole) == placeholder
    assert cell(0, Qt.ItemDataRole.ForegroundRole) is None
    assert dns.asked == ["10.242.131.1", "192.0.2.7"]  # each asked once: the failure is kept


def test_sorting_numbers_as_numbers_and_keeping_it_across_answers(qtbot) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    model = ConnectionTableModel(dns=InlineDns({}, clock), clock=clock)
    rows = [tcp(1, 900, 0), tcp(2, 10_000, 0), tcp(3, 0, 0, state="LISTEN", remote="0.0.0.0:0")]
    model.set_connections(APP, rows)
    assert [model.index(r, ConnColumn.STATE).data() for r in range(3)] == [
        "ESTABLISHED",
        "ESTABLISHED",
        "LISTEN",
    ]
    model.sort(ConnColumn.RECEIVED, Qt.SortOrder.DescendingOrder)
    ports = lambda: [model.index(r, ConnColumn.LOCAL).data().rsplit(":")[1] for r in range(3)]  # noqa: E731
    assert ports() == ["2", "1", "3"]
    model.set_connections(APP, [tcp(1, 50_000, 0), *rows[1:]])
    assert ports() == ["1", "2", "3"]  # re-sorted with the new answer
    model.sort(-1)
    assert model.index(2, ConnColumn.STATE).data() == "LISTEN"
    assert model.index(2, ConnColumn.HOST).data() == ""  # a listening socket has no remote host


def test_an_older_helpers_connections_without_counters_show_no_numbers() -> None:
    model = ConnectionTableModel(dns=InlineDns({}, Clock()), clock=Clock())
    model.set_connections(
        APP, [ConnectionInfo("tcp", "10.0.0.5:1", "192.0.2.7:443", "ESTABLISHED", 42)]
    )
    assert {
        model.index(0, c).data()
        for c in (ConnColumn.DOWN, ConnColumn.UP, ConnColumn.RECEIVED, ConnColumn.SENT)
    } == {NO_VALUE}
    assert "UDP" in model.index(0, ConnColumn.SENT).data(Qt.ItemDataRole.ToolTipRole)


def test_the_cache_is_bounded_expires_and_gives_up_on_slow_lookups() -> None:
    clock = Clock()
    dns = InlineDns({"192.0.2.1": "a.example", "192.0.2.2": None}, clock)
    dns._size = 2
    assert (
        dns.name_of("0.0.0.0") is None and dns.queued == []
    )  # nothing to ask for an unspecified address
    assert dns.name_of("192.0.2.1") is None
    assert (
        dns.name_of("192.0.2.1") is None and len(dns.queued) == 1
    )  # one lookup per address at a time
    dns.run_lookups()
    assert dns.name_of("192.0.2.1") == "a.example"
    dns.name_of("192.0.2.2")
    dns.run_lookups()
    assert dns.name_of("192.0.2.2") is None and dns.queued == []  # the failure is cached too
    dns.name_of("192.0.2.3")
    dns.run_lookups()
    assert dns.asked == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    assert dns.name_of("192.0.2.1") is None  # pushed out by the bound of 2: asked again
    clock.now += reverse_dns.FAILURE_TTL_S + 1
    dns.name_of("192.0.2.2")
    assert len(dns.queued) == 2  # a failure is retried after its time
    dns.queued.clear()
    dns._pending["198.51.100.9"] = clock.now  # a lookup that never answers
    clock.now += reverse_dns.LOOKUP_TIMEOUT_S + 1
    dns.name_of("198.51.100.10")  # any lookup expires it
    assert "198.51.100.9" not in dns._pending
    assert (
        dns.name_of("198.51.100.9") is None and len(dns.queued) == 1
    )  # a failure now, not asked again


def test_lookups_run_off_the_calling_thread_and_the_pool_is_bounded() -> None:
    started = threading.Event()
    release = threading.Event()
    threads: set[str] = set()

    def slow(address: str) -> str:
        threads.add(threading.current_thread().name)
        started.set()
        release.wait(5)
        return f"host-{address}"

    resolved = threading.Event()
    dns = ReverseDnsCache(slow, on_resolved=lambda _a, _n: resolved.set())
    try:
        assert dns.name_of("192.0.2.5") is None  # answered at once, from the cache
        assert started.wait(5)
        for i in range(reverse_dns.MAX_PENDING + 10):
            dns.name_of(f"198.51.100.{i}")
        assert len(dns._pending) == reverse_dns.MAX_PENDING
        release.set()
        assert resolved.wait(5)
        assert threads == {"chadthrottle-rdns"} and threading.current_thread().name not in threads
        assert len(dns._workers) <= reverse_dns.WORKERS
    finally:
        release.set()
        dns.close()


def test_host_of_endpoints() -> None:
    assert host_of("192.0.2.7:443") == "192.0.2.7"
    assert host_of("[2001:db8::1]:443") == "2001:db8::1"


def test_the_system_resolver_names_loopback_in_the_background(qtbot) -> None:  # type: ignore[no-untyped-def]
    """The real resolver (/etc/hosts names 127.0.0.1), through the real pool."""
    model = ConnectionTableModel()
    try:
        model.set_connections(APP, [tcp(1000, 0, 0, remote="127.0.0.1:631")])
        assert model.index(0, ConnColumn.HOST).data() == ""  # at once: being asked, never a wait
        qtbot.waitUntil(lambda: model.index(0, ConnColumn.HOST).data() == reverse_dns.system_resolver("127.0.0.1"),
                        timeout=5000)  # fmt: skip
        assert model.index(0, ConnColumn.HOST).data() != "127.0.0.1"
    finally:
        model.dns.close()


def test_an_answer_repaints_only_what_changed() -> None:
    """Every poll brings every socket again: an idle one's row, and the columns
    that never change (addresses, host, PID), are not repainted."""
    clock = Clock()
    model = ConnectionTableModel(dns=InlineDns({}, clock), clock=clock)
    changes: list[tuple[int, int, int, int]] = []
    model.dataChanged.connect(
        lambda a, b, _roles=(): changes.append((a.row(), a.column(), b.row(), b.column()))
    )
    idle, busy = tcp(1, 500, 500), tcp(2, 1_000, 0)
    model.set_connections(APP, [idle, busy])
    for step in range(1, 4):
        clock.now += 1.0
        model.set_connections(APP, [idle, tcp(2, 1_000 + step * 5_000, 0)])
    # the second answer gives both their first rates; then only the busy one changes
    assert changes[0] == (0, ConnColumn.STATE, 1, ConnColumn.SENT)
    assert changes[1:] == [(1, ConnColumn.STATE, 1, ConnColumn.SENT)] * 2
    for _ in range(2):  # the busy one stops: its rate drops to 0 once, then nothing moves
        clock.now += 1.0
        model.set_connections(APP, [idle, tcp(2, 16_000, 0)])
    assert changes[3:] == [(1, ConnColumn.STATE, 1, ConnColumn.SENT)]
    assert model.index(1, ConnColumn.DOWN).data() == "0 B/s"


def test_two_answers_a_moment_apart_give_no_rate() -> None:
    """A row just chosen is asked at once and again with the next poll: over
    milliseconds a busy socket's counters may not move (it read 0 B/s)."""
    rates = ConnectionRates()
    key = connection_key(tcp(1000, 0, 0))
    rates.update([tcp(1000, rx=10_000, tx=0)], now=10.0)
    assert rates.update([tcp(1000, rx=10_000, tx=0)], now=10.05) == {key: (None, None)}
    assert rates.update([tcp(1000, rx=310_000, tx=0)], now=11.0) == {key: (300_000.0, 0.0)}
    # soon after a rate: that rate stays; the next one is measured from the older answer
    assert rates.update([tcp(1000, rx=310_000, tx=0)], now=11.1) == {key: (300_000.0, 0.0)}
    assert rates.update([tcp(1000, rx=510_000, tx=0)], now=12.0) == {key: (200_000.0, 0.0)}


def test_a_closed_window_leaves_no_lookup_thread_and_no_callback(qtbot) -> None:  # type: ignore[no-untyped-def]
    """The window's connections model closes its cache when it goes: its
    lookup threads end (a window closed kept two each, for the process's life)
    and a name arriving later is not emitted on the deleted model."""
    from tests.gui.bare_window import bare_window

    _apps, win = bare_window()
    table = win.findChild(ConnectionTableModel)
    assert table is not None
    dns = table.dns
    release = threading.Event()
    dns._resolver = lambda _address: "far.example" if release.wait(5) else None
    table.set_connections(APP, [tcp(1000, 0, 0), tcp(1001, 0, 0, remote="192.0.2.8:443")])
    assert {table.index(row, ConnColumn.HOST).data() for row in (0, 1)} == {""}  # being asked
    workers = list(dns._workers)
    assert workers and all(worker.is_alive() for worker in workers)
    win.close()
    win.deleteLater()
    qtbot.waitUntil(lambda: dns.on_resolved is None, timeout=2000)
    release.set()
    for worker in workers:
        worker.join(5)
    assert not any(worker.is_alive() for worker in workers)
    assert dns.name_of("192.0.2.9") is None and not dns._workers  # closed: no new lookup


def test_a_closed_cache_starts_no_thread_and_calls_back_no_more() -> None:
    called: list[str] = []
    dns = ReverseDnsCache(
        lambda _address: "far.example", on_resolved=lambda a, _n: called.append(a)
    )
    dns.close()
    assert dns.name_of("192.0.2.5") is None
    assert not dns._workers and dns.on_resolved is None
    dns._lookup("192.0.2.5")  # a lookup already running when closed ends quietly
    assert called == []


def test_a_connections_numbers_say_they_leave_out_what_the_applications_row_counts() -> None:
    """Under an upload block (gui18's walk under Xvfb) an application's row read
    Up 13.6 KB/s, its download's bare acknowledgements, while its only
    connection read Up 0 B/s and Sent 0 B: the kernel's per-connection counts
    are payload only. The connection's cells say so, and that the row counts
    whole packets; rates are said to be a second's, totals since it opened."""
    clock = Clock()
    model = ConnectionTableModel(dns=InlineDns({}, clock), clock=clock)
    model.set_connections(APP, [tcp(1, 50_000, 0)])
    clock.now += 1.0
    model.set_connections(APP, [tcp(1, 90_000, 0)])  # a rate now: Down 40 kB/s, Up 0
    for column in (ConnColumn.DOWN, ConnColumn.UP, ConnColumn.RECEIVED, ConnColumn.SENT):
        tip = model.index(0, column).data(Qt.ItemDataRole.ToolTipRole)
        assert "no bare acknowledgements" in tip and "whole packets" in tip, (column, tip)
    assert "a second" in model.index(0, ConnColumn.UP).data(Qt.ItemDataRole.ToolTipRole)
    assert "since the connection opened" in model.index(0, ConnColumn.SENT).data(
        Qt.ItemDataRole.ToolTipRole
    )


def test_a_lookup_with_no_answer_is_not_said_to_have_no_name(qtbot) -> None:  # type: ignore[no-untyped-def]
    """Offline (walk28: a name server that does not answer) every host read
    "no name", its tooltip "reverse DNS gave none": said of a lookup that got
    no answer at all, which tells nothing of a name. A resolver's failure and
    a lookup past LOOKUP_TIMEOUT_S are "no answer" (greyed, asked again);
    the resolver's "none" stays "no name"."""
    from chadthrottle.gui.models.connection_table import NO_ANSWER
    from PySide6.QtGui import QGuiApplication, QPalette

    clock = Clock()
    queued: list = []

    def resolve(address: str) -> str | None:
        if address == "192.0.2.9":
            raise reverse_dns.LookupFailed("Host name lookup failure")
        return None  # 10.242.131.1: the resolver says it has none

    dns = ReverseDnsCache(resolve, clock=clock, submit=queued.append)
    model = ConnectionTableModel(dns=dns, clock=clock)
    remotes = ["192.0.2.9:443", "10.242.131.1:6440"]
    model.set_connections(APP, [tcp(n, 0, 0, remote=r) for n, r in enumerate(remotes)])

    def cell(remote: str, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        (row,) = [
            r for r in range(model.rowCount()) if model.index(r, ConnColumn.REMOTE).data() == remote
        ]
        return model.index(row, ConnColumn.HOST).data(role)

    assert [cell(r) for r in remotes] == ["", ""]  # being asked
    with qtbot.waitSignals([model.dataChanged] * 2):
        while queued:
            queued.pop(0)()
    assert [cell(r) for r in remotes] == [NO_ANSWER, NO_NAME]  # "no name" twice until review28
    assert str(cell(remotes[0], Qt.ItemDataRole.ToolTipRole)).startswith(
        "No answer: reverse DNS could not tell the name of 192.0.2.9\n"
    )
    assert cell(remotes[1], Qt.ItemDataRole.ToolTipRole) == (
        "No name: reverse DNS gave none for 10.242.131.1"
    )
    placeholder = QGuiApplication.palette().color(QPalette.ColorRole.PlaceholderText)
    assert cell(remotes[0], Qt.ItemDataRole.ForegroundRole) == placeholder
    # A failure is asked again once FAILURE_TTL_S passed.
    clock.now += reverse_dns.FAILURE_TTL_S + 1
    assert cell(remotes[0]) == "" and len(queued) == 1

    # One that never answers: past the timeout it is no answer too, not "no name".
    silent = ReverseDnsCache(lambda _a: None, clock=clock, submit=lambda _work: None)
    table = ConnectionTableModel(dns=silent, clock=clock)
    table.set_connections(APP, [tcp(1, 0, 0, remote="198.51.100.3:80")])
    assert table.index(0, ConnColumn.HOST).data() == ""
    clock.now += reverse_dns.LOOKUP_TIMEOUT_S + 1
    silent.name_of("198.51.100.3")  # the table's next look at it
    assert table.index(0, ConnColumn.HOST).data() == NO_ANSWER
    assert silent.failed("198.51.100.3") and not silent.answered("198.51.100.3")
