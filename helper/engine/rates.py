"""Per-application rates from the kernel's monotonic per-process counters.

Pure logic: fed TrafficSamples and the pid -> application mapping each tick.
The mapping of a process is remembered after it exits, so the bytes of
short-lived processes still count for their application. An application
whose processes have all exited is forgotten once it has been idle for the
time the listing shows it (forget_exited), or sooner when its user has more
such applications than EXITED_KEPT_PER_UID: one user starting thousands of
different short-lived programs must not make every tick and every listing
longer, or keep memory, for ever (issue 20).
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from chadthrottle.contract import RATE_WINDOW_TICKS, Direction
from chadthrottle.helper.kernel.layout import CounterSample, owner_key

LOOPBACK_IFINDEX = 1  # the kernel gives every namespace's lo index 1
InterfaceKey = tuple[int, int]  # (netns cookie, ifindex): indices repeat across namespaces
UidKey = tuple[str, "int | None"]  # (application id, uid; None: unreadable)
# A restarted direction's start: when, and the counts then.
Starts = dict[Direction, tuple[float, "AppTraffic"]]
K = TypeVar("K")


@dataclass
class AppTraffic:
    """Totals since the helper started and rates over the window, with
    loopback apart from the rest."""

    rx_bytes: int = 0
    tx_bytes: int = 0
    loopback_rx_bytes: int = 0
    loopback_tx_bytes: int = 0
    down_bps: float = 0.0
    up_bps: float = 0.0
    loopback_down_bps: float = 0.0
    loopback_up_bps: float = 0.0
    last_active: float = 0.0  # when its counters last moved
    rates_since: float | None = None  # the tick its rates are measured from; None: no rate yet
    # Directions whose rules changed (RateMeter.restart) measured from that
    # change rather than from rates_since: when it was.
    restarted_at: dict[Direction, float] = field(default_factory=dict)
    # Directions whose window restarted and has no sample yet, or, at the
    # first tick that has it (every application's after the helper starts),
    # both: no rate is known (listed as measuring, the rate 0), not the one
    # from before, nor a 0 nothing measured.
    measuring: frozenset[Direction] = frozenset()

    def since(self, direction: Direction) -> float | None:
        """The time a direction's rates are measured from (None: none yet)."""
        return self.restarted_at.get(direction, self.rates_since)


# Applications whose processes all exited, kept per user (the most recently
# active); None stands for processes whose user could not be read.
EXITED_KEPT_PER_UID = 32
# A socket outlives its process: data still queued when it exited goes out
# after, and so does the FIN exchange (a FIN_WAIT2 socket waits up to
# tcp_fin_timeout, 60 s, for the peer's). The datapath keeps counting such
# bytes under the exited process, after its counters were retired: whose it
# was is kept this many ticks after its last bytes, at most this many processes
# (the least recently counted go first), so they are retired into its
# application too, not onto the device alone.
EXITED_OWNERS_KEPT_TICKS = 120
EXITED_OWNERS_KEPT = 4096


def sample_owner(sample: CounterSample) -> int:
    """The process a sample counts (layout.owner_key)."""
    return owner_key(sample.owner_tgid, sample.owner_start)


class RateMeter:
    """Keyed by socket owner (layout.owner_key: a process, its pid and start,
    so a pid handed out again is another owner); owner: a sample's, as the
    caller tells processes apart (Tracking: an unknown start is the pid's
    running process)."""

    def __init__(
        self, window_ticks: int = RATE_WINDOW_TICKS,
        owner: Callable[[CounterSample], int] = sample_owner,
    ) -> None:  # fmt: skip
        self._owner = owner
        self._app_of_owner: dict[int, str] = {}
        self._uid_of_owner: dict[int, int | None] = {}  # None: its user could not be read
        self._uid_pops = 0
        self._history: deque[tuple[float, dict[str, AppTraffic]]] = deque(maxlen=window_ticks)
        self.apps: dict[str, AppTraffic] = {}
        self._shaped_history: dict[Direction, deque[tuple[float, dict[str, int]]]] = {
            direction: deque(maxlen=window_ticks) for direction in Direction
        }
        self._interface_history: deque[tuple[float, dict[InterfaceKey, AppTraffic]]] = deque(
            maxlen=window_ticks
        )
        self.interfaces: dict[InterfaceKey, AppTraffic] = {}  # every socket's traffic
        # final counts of exited processes, whose counters the datapath removed
        self._retired_apps: dict[str, AppTraffic] = defaultdict(AppTraffic)
        self._retired_by_uid: dict[UidKey, AppTraffic] = defaultdict(AppTraffic)
        # Applications run by several users now: each user's share of them, so
        # a user is shown their own processes' traffic and nobody else's.
        self.by_uid: dict[UidKey, AppTraffic] = {}
        self._uid_history: deque[tuple[float, dict[UidKey, AppTraffic]]] = deque(
            maxlen=window_ticks
        )
        self._retired_interfaces: dict[InterfaceKey, AppTraffic] = defaultdict(AppTraffic)
        # exited socket owners (owner_key) -> (application, uid, the retire()
        # that last counted them), least recently counted first
        self._exited: dict[int, tuple[str, int | None, int]] = {}
        self._retires = 0  # retire() is called once a tick
        self._uid_of_app: dict[str, int | None] = {}  # whose processes it last had
        # The living processes' samples of the window and the tick before it:
        # per-process rates are worked out from them only when asked
        # (ListProcesses, for the rows a client has open), not every tick.
        self._samples: deque[tuple[float, list[CounterSample]]] = deque(maxlen=window_ticks + 1)
        # Where the windows of applications whose rules changed start (restart),
        # per direction whose rules changed: their counts then, and every
        # process's samples then, until the ticks' windows start after it.
        self._starts: dict[str, Starts] = {}
        self._uid_starts: dict[UidKey, Starts] = {}
        # each restarted application's own samples then (its processes' rates
        # start there): one entry an application and direction, the last
        # restart's, so rules changed as fast as the bus allows keep no more
        # than one tick's samples; per direction, as its start is (the
        # download's and the upload's limits set apart start apart)
        self._start_samples: dict[tuple[str, Direction], tuple[float, list[CounterSample]]] = {}
        # applications (and users' shares) listed with nothing counted at the last update
        self._quiet: set[str | UidKey] = set()

    def remember(self, owner: int, app_id: str, uid: int | None = None) -> None:
        """Whose a socket owner (owner_key) is."""
        self._app_of_owner[owner] = app_id
        self._exited.pop(owner, None)  # running again: a pid read with no start, handed out anew
        if uid is not None or owner not in self._uid_of_owner:
            self._uid_of_owner[owner] = uid
        if uid is not None or app_id not in self._uid_of_app:
            self._uid_of_app[app_id] = uid

    def forget_exited(self, now: float, keep: Collection[str], idle_s: float,
                      per_uid: int = EXITED_KEPT_PER_UID) -> set[str]:  # fmt: skip
        """Forget the traffic of applications none of whose processes is
        remembered (all exited) and not in keep (e.g. those with a stored
        rule): those idle for longer than idle_s, and beyond per_uid per user,
        the least recently active first. Returns the ids forgotten."""
        living = set(self._app_of_owner.values())
        exited = (
            (self.apps.keys() | self._retired_apps.keys() | self._uid_of_app.keys())
            - living
            - set(keep)
        )
        if not exited:
            return set()

        def last_active(app_id: str) -> float:
            traffic = self.apps.get(app_id)
            return traffic.last_active if traffic is not None else -math.inf  # never listed

        # An application never counted yet whose exited processes are kept
        # (exited_owners()) waits for their bytes: a short-lived process's
        # whole connection may be counted after the tick that saw it gone.
        unlisted = exited - self.apps.keys()
        if unlisted:
            exited -= self.awaited_apps() & unlisted
        by_uid: dict[int | None, list[str]] = defaultdict(list)
        forgotten = set()
        for app_id in exited:
            if now - last_active(app_id) > idle_s:
                forgotten.add(app_id)
            else:
                by_uid[self._uid_of_app.get(app_id)].append(app_id)
        for app_ids in by_uid.values():
            if len(app_ids) > per_uid:
                app_ids.sort(key=last_active, reverse=True)
                forgotten.update(app_ids[per_uid:])
        if forgotten:  # rebuilt, not deleted from: a dict's table never shrinks
            self._retired_by_uid = defaultdict(
                AppTraffic,
                {
                    key: traffic
                    for key, traffic in self._retired_by_uid.items()
                    if key[0] not in forgotten
                },
            )
        if forgotten and self._exited:
            self._exited = {o: e for o, e in self._exited.items() if e[0] not in forgotten}
        for app_id in forgotten:
            self._starts.pop(app_id, None)
            for direction in Direction:
                self._start_samples.pop((app_id, direction), None)
            self._retired_apps.pop(app_id, None)
            self.apps.pop(app_id, None)
            self._uid_of_app.pop(app_id, None)
            for _, apps in self._history:
                apps.pop(app_id, None)
        for _, shares in self._uid_history:
            for key in [key for key in shares if key[0] in forgotten]:
                del shares[key]
        return forgotten

    def retire(self, exited: set[int], final_samples: Iterable[CounterSample]) -> None:
        """Keep the last counts of exited processes (exited: their owner_keys)
        whose counters were removed, in their application's and their
        interface's totals; then forget whose they were, so the map holds only
        living processes. final_samples may also hold counters of processes
        that exited at an earlier tick (exited_owners()): what their sockets
        moved since, counted the same way."""
        self._retires += 1
        for sample in final_samples:
            _add(
                self._retired_interfaces[(sample.netns_cookie, sample.ifindex)],
                sample,
                split_loopback=False,
            )
            owner = self._owner(sample)
            whose = self.owner_of(sample)
            if whose is not None:
                _add(self._retired_apps[whose[0]], sample)
                _add(self._retired_by_uid[whose], sample)
                if owner not in exited and owner in self._exited:  # counted after its exit
                    self._note_exited(owner, *whose)  # kept a while longer
        for owner in exited:
            app_id = self._app_of_owner.pop(owner, None)
            uid = self._uid_of_owner.get(owner)
            if app_id is not None:
                self._note_exited(owner, app_id, uid)
            if owner in self._uid_of_owner:
                del self._uid_of_owner[owner]
                self._uid_pops += 1
        self._drop_old_exited()
        if self._uid_pops > len(
            self._uid_of_owner
        ):  # a dict never shrinks its table: copy it (amortized)
            self._uid_of_owner, self._uid_pops = dict(self._uid_of_owner), 0

    def _note_exited(self, owner: int, app_id: str, uid: int | None) -> None:
        """An exited owner counted at this retire(): now the most recently counted."""
        self._exited.pop(owner, None)
        self._exited[owner] = (app_id, uid, self._retires)

    def _drop_old_exited(self) -> None:
        """Forget the exited owners not counted for EXITED_OWNERS_KEPT_TICKS,
        and the least recently counted beyond EXITED_OWNERS_KEPT."""
        while self._exited:
            owner, (_, _, counted) = next(iter(self._exited.items()))
            if (len(self._exited) <= EXITED_OWNERS_KEPT
                    and self._retires - counted < EXITED_OWNERS_KEPT_TICKS):  # fmt: skip
                return
            del self._exited[owner]

    def exited_owners(self) -> Collection[int]:
        """The socket owners (owner_key) that exited and are still known:
        counters under them now are bytes their sockets moved after the
        exit, to be retired (retire()) into their application."""
        return self._exited.keys()

    def awaited_apps(self) -> set[str]:
        """The applications of the exited owners still kept (exited_owners()):
        bytes counted under those may still come."""
        return {app_id for app_id, _, _ in self._exited.values()}

    def owners(self) -> set[int]:
        """The socket owners (owner_key) whose application is remembered."""
        return set(self._app_of_owner)

    def owner_of(self, sample: CounterSample) -> tuple[str, int | None] | None:
        """(application id, uid) a sample's bytes count for, as the totals
        count them (the usage history's attribution); None if unknown."""
        owner = self._owner(sample)
        app_id = self._app_of_owner.get(owner)
        if app_id is not None:
            return app_id, self._uid_of_owner.get(owner)
        exited = (
            self._exited.get(owner) if sample.owner_start else None
        )  # else: the pid's running one
        return None if exited is None else (exited[0], exited[1])

    def process_traffic(self, app_id: str, owners: Collection[int]) -> dict[int, AppTraffic]:
        """Each of these processes' totals and rates (RatesView.process_traffic)."""
        return self.view().process_traffic(app_id, owners, self._owner)

    def view(self) -> RatesView:
        """What per-process rates are worked out from, as of now, for a reader
        without the engine lock (the read calls' snapshot, snapshot.py): the
        window's samples (each tick's list is never changed once kept), the
        restarts' samples and each application's traffic (a dict made anew
        each tick; a later restart() may mark a direction of one measuring,
        which then reads as measuring: its rate is not known)."""
        return RatesView(tuple(self._samples), dict(self._start_samples), dict(self.apps))

    def restart(self, changed: Collection[tuple[str, Direction]], samples: Iterable[CounterSample],
                now: float) -> None:  # fmt: skip
        """The rules of these (application, direction)s changed at now
        (samples: every socket owner's counters read then): those directions'
        rates are measured from now on, so the first tick after a block reads
        what passed since, not a window that still holds the seconds before it
        (the product says a limit takes hold at once). Until that tick they
        are listed as measuring (AppTraffic.measuring, the rate 0), neither
        the rate from before the change nor one over the instant after it.
        A direction whose rules did not change keeps its window: an unblocked
        download leaves its running upload's rate as it was. Their rates from
        what their limit let through (use_shaped) start afresh too."""
        wanted: dict[str, set[Direction]] = defaultdict(set)
        for app_id, direction in changed:
            wanted[app_id].add(direction)
        if not wanted:
            return
        samples = list(samples)
        totals, by_uid = self._tally(samples)
        own: dict[str, list[CounterSample]] = {}
        for app_id in wanted.keys() & totals.keys():  # one never counted has no window to restart
            own[app_id] = []
            for direction in wanted[app_id]:
                self._starts.setdefault(app_id, {})[direction] = (now, totals[app_id])
                self._start_samples[(app_id, direction)] = (now, own[app_id])
            if app_id in self.apps:
                _measuring(self.apps[app_id], wanted[app_id])
        for key, traffic in by_uid.items():
            if key[0] in wanted:
                for direction in wanted[key[0]]:
                    self._uid_starts.setdefault(key, {})[direction] = (now, traffic)
                if key in self.by_uid:
                    _measuring(self.by_uid[key], wanted[key[0]])
        for sample in samples:
            owned = own.get(self._app_of_owner.get(self._owner(sample), ""))
            if owned is not None:
                owned.append(sample)
        for direction, history in self._shaped_history.items():
            for _, sent in history:
                for app_id in [a for a in sent if direction in wanted.get(a, ())]:
                    del sent[app_id]

    def _tally(
        self, samples: list[CounterSample]
    ) -> tuple[dict[str, AppTraffic], dict[UidKey, AppTraffic]]:
        """Each application's counts (and each user's share of those run by
        several users): its exited processes' last ones plus these samples'."""
        totals: dict[str, AppTraffic] = defaultdict(AppTraffic)
        by_uid: dict[UidKey, AppTraffic] = defaultdict(AppTraffic)
        shared = self._shared_apps()
        for retired_app, retired in self._retired_apps.items():
            totals[retired_app] = _counts_of(retired)
        for key, retired in self._retired_by_uid.items():
            if key[0] in shared:
                by_uid[key] = _counts_of(retired)
        for sample in samples:
            owner = self._owner(sample)
            app_id = self._app_of_owner.get(owner)
            if app_id is None:
                continue  # owner unknown (0) or never seen alive
            _add(totals[app_id], sample)
            if app_id in shared:
                _add(by_uid[(app_id, self._uid_of_owner.get(owner))], sample)
        return totals, by_uid

    def update(self, samples: Iterable[CounterSample], now: float,
               holders: Collection[int] = ()) -> None:  # fmt: skip
        """A tick's counters read at now; holders: the socket owners
        (owner_key) known to hold sockets, whose applications are listed
        while they run though nothing of theirs was counted (_list_quiet)."""
        samples = list(samples)
        self._update_interfaces(samples, now)
        totals, by_uid = self._tally(samples)
        self.apps = _with_rates(totals, self._history, now, self._starts)
        self._samples.append((now, samples))
        self.by_uid = _with_rates(by_uid, self._uid_history, now, self._uid_starts)
        self._quiet = self._list_quiet(holders, now)
        # A restart older than every tick the windows start from is over.
        oldest = self._history[0][0]
        self._starts = _starts_after(self._starts, oldest)
        self._uid_starts = _starts_after(self._uid_starts, oldest)
        # A restart's samples stay while the rates listed now are measured from
        # it: the second tick after it still is (review8: its processes read
        # 0 B/s beside their application's rate for that tick).
        self._start_samples = {
            key: start
            for key, start in self._start_samples.items()
            if start[0] > oldest
            or (key[0] in self.apps and self.apps[key[0]].restarted_at.get(key[1]) == start[0])
        }

    def _list_quiet(self, holders: Collection[int], now: float) -> set[str | UidKey]:
        """The applications (and users' shares) of holders with nothing
        counted at this read, listed at 0 B/s only when the read before found
        them so too: nothing counted across a whole tick. At their first read
        (every such application's at the helper's start: its sockets adopted
        a moment before) measuring, as a counted one is (_with_rates): that 0
        was taken over the moment since, and a paced download that happened
        to send nothing in it was listed at 0 B/s, not measuring (first36).
        Kept out of the history: the first count after is measuring too."""
        shared = self._shared_apps()
        quiet: set[str | UidKey] = set()
        for owner in holders:
            app_id = self._app_of_owner.get(owner)
            if app_id is None:
                continue  # not known whose: listed_traffic's, measuring
            if app_id not in self.apps:
                self.apps[app_id] = _quiet_traffic(app_id in self._quiet, now)
                quiet.add(app_id)
            key = (app_id, self._uid_of_owner.get(owner))
            if app_id in shared and key not in self.by_uid:
                self.by_uid[key] = _quiet_traffic(key in self._quiet, now)
                quiet.add(key)
        return quiet

    def _shared_apps(self) -> set[str]:
        """Applications whose living processes belong to more than one user."""
        uids: dict[str, set[int | None]] = defaultdict(set)
        for owner, app_id in self._app_of_owner.items():
            uids[app_id].add(self._uid_of_owner.get(owner))
        return {app_id for app_id, users in uids.items() if len(users) > 1}

    def _update_interfaces(self, samples: list[CounterSample], now: float) -> None:
        """Per interface, every socket's bytes, attributed or not: machine totals."""
        totals: dict[InterfaceKey, AppTraffic] = defaultdict(AppTraffic)
        for key, retired in self._retired_interfaces.items():
            totals[key] = _counts_of(retired)
        for sample in samples:
            _add(totals[(sample.netns_cookie, sample.ifindex)], sample, split_loopback=False)
        if self._interface_history:
            then, before = self._interface_history[0]
            for key, traffic in totals.items():
                old = before.get(key)
                if old is not None and now > then:
                    traffic.down_bps = max(0, traffic.rx_bytes - old.rx_bytes) / (now - then)
                    traffic.up_bps = max(0, traffic.tx_bytes - old.tx_bytes) / (now - then)
        self._interface_history.append((now, dict(totals)))
        self.interfaces = dict(totals)

    def use_shaped(self, direction: Direction, sent_bytes: dict[str, int], now: float) -> None:
        """Rates of limited applications in a direction from what their limit
        let through (docs/backends.md, "A limited upload leaves the
        application's downloads alone").

        The socket counters see uploads before the queue: right after a limit
        lands on a fast connection TCP fills the queue in a burst and then
        waits, so they show bursts, while the shaper's output is steady. And
        both directions' counters hold the application's pure ACKs, which pass
        its limit uncharged: beside its fast transfer the other way they read
        as a limit not met."""
        history = self._shaped_history[direction]
        for app_id, sent in sent_bytes.items():
            past = next(((t, apps[app_id]) for t, apps in history if app_id in apps), None)
            traffic = self.apps.get(app_id)
            if traffic is None or past is None or now <= past[0] or sent < past[1]:
                continue  # a new or re-created class: no rate yet
            if direction in traffic.measuring:
                continue
            rate = (sent - past[1]) / (now - past[0])
            if direction is Direction.UP:
                traffic.up_bps = rate
            else:
                traffic.down_bps = rate
        history.append((now, dict(sent_bytes)))


@dataclass(frozen=True)
class RatesView:
    """A RateMeter's inputs to per-process rates at one moment (RateMeter.view)."""

    samples: tuple[tuple[float, list[CounterSample]], ...]
    start_samples: dict[tuple[str, Direction], tuple[float, list[CounterSample]]]
    apps: dict[str, AppTraffic]

    def process_traffic(self, app_id: str, owners: Collection[int],
                        owner_of: Callable[[CounterSample], int]) -> dict[int, AppTraffic]:  # fmt: skip
        """Each of these processes' totals and rates over the window its
        application's rates use, from the same samples, so the application's
        rate is its living processes' summed (plus what processes that exited
        in the window moved). The window starts at the tick the application's
        rates are measured from (none at its first tick, as for the
        application); a process with no counter there counts from zero: its
        counters are new. owners: the processes' owner_keys (a new process
        under an old pid has its own counters, and its own rate from zero);
        owner_of: a sample's owner_key, as the meter tells them."""
        wanted = set(owners)
        result = {owner: AppTraffic() for owner in wanted}
        if not self.samples:
            return result
        now, latest = self.samples[-1]
        for sample in latest:
            if (owner := owner_of(sample)) in wanted:
                _add(result[owner], sample)
        app = self.apps.get(app_id)
        if app is None:
            return result
        measuring = app.measuring
        for owner in wanted:
            result[owner].measuring = measuring
        for direction in Direction:
            since = app.since(direction)
            start = next(((t, oldest) for t, oldest in self.samples if t == since), None)
            restarted = self.start_samples.get((app_id, direction))
            if start is None and restarted is not None and restarted[0] == since:
                start = restarted
            if start is None or now <= start[0] or direction in measuring:
                continue
            then, oldest = start
            before = {owner: AppTraffic() for owner in wanted}
            for sample in oldest:
                if (owner := owner_of(sample)) in wanted:
                    _add(before[owner], sample)
            for owner, traffic in result.items():
                _set_rates(traffic, before[owner], now - then, (direction,))
        return result


def _set_rates(traffic: AppTraffic, old: AppTraffic, elapsed: float,
               directions: Collection[Direction] = tuple(Direction)) -> None:  # fmt: skip
    """Rates over elapsed seconds from old's counters to traffic's; counters
    may shrink when the LRU map evicts a key: never negative."""
    if Direction.DOWN in directions:
        traffic.down_bps = max(0, traffic.rx_bytes - old.rx_bytes) / elapsed
        traffic.loopback_down_bps = (
            max(0, traffic.loopback_rx_bytes - old.loopback_rx_bytes) / elapsed
        )
    if Direction.UP in directions:
        traffic.up_bps = max(0, traffic.tx_bytes - old.tx_bytes) / elapsed
        traffic.loopback_up_bps = (
            max(0, traffic.loopback_tx_bytes - old.loopback_tx_bytes) / elapsed
        )


def _quiet_traffic(measured: bool, now: float) -> AppTraffic:
    """Nothing counted: 0 B/s when measured (quiet at the read before too),
    else measuring (RateMeter._list_quiet)."""
    return AppTraffic(last_active=now, measuring=frozenset() if measured else frozenset(Direction))


def _measuring(traffic: AppTraffic, directions: Collection[Direction]) -> None:
    """Directions whose window just restarted: no rate known until a tick."""
    traffic.measuring = traffic.measuring | frozenset(directions)
    if Direction.DOWN in directions:
        traffic.down_bps = traffic.loopback_down_bps = 0.0
    if Direction.UP in directions:
        traffic.up_bps = traffic.loopback_up_bps = 0.0


def _starts_after(starts: dict[K, Starts], oldest: float) -> dict[K, Starts]:
    """The restarted directions whose start is later than oldest (the tick the
    windows start from): the others are measured over the window again."""
    kept = {
        key: {d: start for d, start in by_direction.items() if start[0] > oldest}
        for key, by_direction in starts.items()
    }
    return {key: by_direction for key, by_direction in kept.items() if by_direction}


def _with_rates(totals: dict[K, AppTraffic], history: deque[tuple[float, dict[K, AppTraffic]]],
                now: float, starts: dict[K, Starts]) -> dict[K, AppTraffic]:  # fmt: skip
    """Give each total its rates over the window history holds, or, in a
    direction whose rules changed (RateMeter.restart), from its start when
    that is later; a start not before now (a change between this tick's
    counter read and its count) leaves that direction measuring, and so does
    no earlier reading at all (the first tick that has it). Then add the
    totals to the history."""
    previous = history[-1][1] if history else {}
    for key, traffic in totals.items():
        before = previous.get(key)
        moved = before is None or _counters(before) != _counters(traffic)
        traffic.last_active = now if moved else before.last_active  # type: ignore[union-attr]
        # the oldest sample in the window that knew it
        past = next(((t, entries[key]) for t, entries in history if key in entries), None)
        unmeasured = set(Direction)
        if past is not None and now > past[0]:
            traffic.rates_since = past[0]
            _set_rates(traffic, past[1], now - past[0])
            unmeasured.clear()
        for direction, (then, counts) in starts.get(key, {}).items():
            if then >= now:
                unmeasured.add(direction)
            elif past is None or then > past[0]:
                traffic.restarted_at[direction] = then
                _set_rates(traffic, counts, now - then, (direction,))
                unmeasured.discard(direction)
        if unmeasured:
            # No earlier reading: its first tick, as every application's after
            # the helper starts. Its 0 was listed as a rate and drawn as a
            # one-poll drop to nothing (spike34: a paced 2 MB/s download).
            _measuring(traffic, unmeasured)
    history.append((now, dict(totals)))
    return dict(totals)


def _add(traffic: AppTraffic, sample: CounterSample, split_loopback: bool = True) -> None:
    if split_loopback and sample.ifindex == LOOPBACK_IFINDEX:
        traffic.loopback_rx_bytes += sample.rx_bytes
        traffic.loopback_tx_bytes += sample.tx_bytes
    else:
        traffic.rx_bytes += sample.rx_bytes
        traffic.tx_bytes += sample.tx_bytes


def _counts_of(traffic: AppTraffic) -> AppTraffic:
    return AppTraffic(
        traffic.rx_bytes, traffic.tx_bytes, traffic.loopback_rx_bytes, traffic.loopback_tx_bytes
    )


def _counters(traffic: AppTraffic) -> tuple[int, int, int, int]:
    return (
        traffic.rx_bytes,
        traffic.tx_bytes,
        traffic.loopback_rx_bytes,
        traffic.loopback_tx_bytes,
    )
