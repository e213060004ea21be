"""Remote host names for the connections table: reverse DNS off the UI thread.

A reverse lookup can take seconds (a resolver that does not answer), so it
never runs on the GUI thread: ``name_of`` answers at once from a bounded cache
(None while unknown or when there is none; ``answered`` tells them apart) and
starts a lookup in a small thread pool; ``on_resolved`` is called (from a pool
thread) when an answer arrives, the name "" when there is none. A lookup that
got no answer (no name server reached, a resolver error, or still unanswered
after LOOKUP_TIMEOUT_S) is ``failed``, not answered: it says nothing of
whether the address has a name (until review28 the table said "no name" of
it: "reverse DNS gave none" of a machine offline). Names are kept CACHE_TTL_S,
no name and failures FAILURE_TTL_S; at most MAX_PENDING lookups wait at once
(a timed-out thread cannot be stopped, but its address is no longer waited on)
and at most MAX_PENDING wait for a pool thread: behind a resolver that hangs,
lookups queued behind its threads grew by every address shown each minute
(review30), and one given up while queued is not asked late. ``close`` ends
the workers and the callback: the cache's owner (the connections model) calls
it when it goes, so no thread outlives it or calls into it once deleted.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

CACHE_SIZE = 1024
CACHE_TTL_S = 600.0
FAILURE_TTL_S = 60.0
LOOKUP_TIMEOUT_S = 5.0
MAX_PENDING = 32
WORKERS = 2

Resolver = Callable[[str], "str | None"]  # None: no name; raises LookupFailed: no answer
# gethostbyaddr's h_errno for "the address has no name": HOST_NOT_FOUND, NO_DATA,
# and 0 (glibc's /etc/hosts alone found none: "Resolver Error 0 (no error)").
# TRY_AGAIN (2: no name server answered), NO_RECOVERY (3) and NETDB_INTERNAL (-1)
# say nothing of it.
_NO_NAME_ERRORS = frozenset({0, 1, 4})


class LookupFailed(Exception):
    """The resolver could not say whether the address has a name."""


def system_resolver(address: str) -> str | None:
    """The system's reverse lookup (nsswitch: /etc/hosts, DNS, mDNS, ...).

    gethostbyaddr, not getnameinfo: CPython 3.11's getnameinfo keeps the GIL
    while the resolver waits, which stopped every thread of the window (no
    repaint, no input, no poll) for as long as a name server did not answer,
    10 s per address offline (walk28). gethostbyaddr lets go of it.
    None when the resolver says there is no name; LookupFailed when it could
    not answer (offline: "Host name lookup failure", TRY_AGAIN)."""
    try:
        host, _aliases, _addresses = socket.gethostbyaddr(address)
    except socket.herror as error:
        if error.args and error.args[0] in _NO_NAME_ERRORS:
            return None
        raise LookupFailed(str(error)) from error
    except UnicodeError:
        return None  # a name that is not text: none to show
    except OSError as error:
        raise LookupFailed(str(error)) from error
    return host or None


def host_of(endpoint: str) -> str:
    """ "192.0.2.7:443" -> "192.0.2.7"; "[2001:db8::1]:443" -> "2001:db8::1"."""
    host = endpoint.rpartition(":")[0]
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def worth_resolving(address: str) -> bool:
    """Unspecified addresses (a listening or unconnected socket's remote) have no name."""
    return address not in ("", "0.0.0.0", "::", "*")


class ReverseDnsCache:
    """address -> host name, looked up in the background (see the module)."""

    def __init__(self, resolver: Resolver = system_resolver, on_resolved: Callable[[str, str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, submit: Callable[[Callable[[], None]], object] | None = None,
                 size: int = CACHE_SIZE) -> None:  # fmt: skip
        self._resolver = resolver
        self.on_resolved = on_resolved
        self._clock = clock
        self._size = size
        self._lock = threading.Lock()
        # Held while on_resolved runs, so close() returns only once no callback is
        # running or can start (reentrant: an inline lookup's callback may ask again).
        self._callback_lock = threading.RLock()
        self._closed = False
        self._names: OrderedDict[str, tuple[str | None, float, bool]] = (
            OrderedDict()
        )  # address -> (name, expiry, failed: no answer)
        self._pending: dict[str, float] = {}  # address -> when its lookup started
        self._unstarted = 0  # lookups submitted whose resolver call has not begun
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._submit = submit or self._submit_to_pool

    def name_of(self, address: str) -> str | None:
        """The cached name, or None (unknown yet, or none); starts a lookup if due."""
        if not worth_resolving(address):
            return None
        now = self._clock()
        with self._lock:
            # first: a lookup given up now is kept failed, not asked again
            self._expire_pending(now)
            cached = self._names.get(address)
            if cached is not None and cached[1] > now:
                self._names.move_to_end(address)
                return cached[0]
            if (self._closed or address in self._pending or len(self._pending) >= MAX_PENDING
                    or self._unstarted >= MAX_PENDING):  # fmt: skip
                return cached[0] if cached else None
            self._pending[address] = now
            self._unstarted += 1
        self._submit(lambda: self._lookup(address))
        return cached[0] if cached else None

    def answered(self, address: str) -> bool:
        """Whether a lookup of address has answered (a name or none) and the
        answer is still kept: None from name_of then means it has no name."""
        with self._lock:
            cached = self._names.get(address)
            return cached is not None and cached[1] > self._clock() and not cached[2]

    def failed(self, address: str) -> bool:
        """Whether the last lookup of address got no answer (no name server
        reached, an error, a timeout) and that is still kept: whether it has
        a name is not known."""
        with self._lock:
            cached = self._names.get(address)
            return cached is not None and cached[1] > self._clock() and cached[2]

    def _expire_pending(self, now: float) -> None:
        for address, started in list(self._pending.items()):
            if now - started > LOOKUP_TIMEOUT_S:
                del self._pending[address]
                self._store(address, None, now, failed=True)

    def _store(self, address: str, name: str | None, now: float, failed: bool = False) -> None:
        self._names[address] = (name, now + (CACHE_TTL_S if name else FAILURE_TTL_S), failed)
        self._names.move_to_end(address)
        while len(self._names) > self._size:
            self._names.popitem(last=False)

    def _lookup(self, address: str) -> None:
        with self._lock:
            self._unstarted -= 1
            given_up = address not in self._pending  # timed out while queued: stored failed
        if given_up:
            return
        failed = False
        try:
            name = self._resolver(address)
        except Exception:  # no answer (LookupFailed, or any error): never a crash of the pool
            name, failed = None, True
        with self._lock:
            if self._pending.pop(address, None) is None:
                name = None  # timed out meanwhile: already stored as a failure
            else:
                self._store(address, name, self._clock(), failed)
        with self._callback_lock:  # a name, or none: "no name" replaces the wait
            if self.on_resolved is not None:
                self.on_resolved(address, name or "")

    def _submit_to_pool(self, work: Callable[[], None]) -> None:
        """Daemon threads, not concurrent.futures': a resolver hanging at quit
        must not hold the process (Python joins a ThreadPoolExecutor at exit)."""
        with self._lock:
            if self._closed:
                return
            if len(self._workers) < WORKERS:
                worker = threading.Thread(target=self._work, name="chadthrottle-rdns", daemon=True)
                self._workers.append(worker)
                worker.start()
            self._queue.put(work)

    def _work(self) -> None:
        while (work := self._queue.get()) is not None:
            work()

    def close(self) -> None:
        """No callback after this returns, no new lookup; the workers end once
        their current lookup does (unwaited: a resolver may hang)."""
        with self._callback_lock:
            self.on_resolved = None
        with self._lock:
            self._closed = True
            workers, self._workers = self._workers, []
        for _ in workers:
            self._queue.put(None)
