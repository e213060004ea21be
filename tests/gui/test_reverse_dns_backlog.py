"""Reverse lookups waiting behind a resolver that hangs stay bounded.

review30: the pool has two threads; a lookup waited on longer than
LOOKUP_TIMEOUT_S is given up (its address "no answer") but its thread goes on
waiting, and the address's place among the MAX_PENDING was freed, so the next
rows' lookups were queued behind the hung threads: with a name server that
does not answer (10 s a lookup) and a connections table of many remote hosts,
the queue grew by every address each minute, without bound, and each queued
lookup, long given up, still asked the resolver when its turn came. The
resolver here is a stand-in that waits until released (the pool's bookkeeping
is the logic under test); the pool and its threads are the real ones.
"""

from __future__ import annotations

import threading

from chadthrottle.gui.models.reverse_dns import LOOKUP_TIMEOUT_S, MAX_PENDING, ReverseDnsCache


def test_lookups_queued_behind_a_hung_resolver_are_bounded_and_not_asked_late() -> None:
    release = threading.Event()
    entered = threading.Semaphore(0)
    asked: list[str] = []
    asked_lock = threading.Lock()

    def hung(address: str) -> str | None:
        with asked_lock:
            asked.append(address)
        entered.release()
        release.wait()
        return None

    now = [0.0]
    dns = ReverseDnsCache(hung, clock=lambda: now[0])
    try:
        dns.name_of("198.51.100.1")
        dns.name_of("198.51.100.2")
        entered.acquire()  # both pool threads now wait on the resolver
        entered.acquire()
        for minute in range(10):  # a table of 200 remote hosts, repainted every 6 s
            for second in range(0, 60, 6):
                now[0] = minute * 60.0 + second
                for host in range(200):
                    dns.name_of(f"192.0.2.{host}")
        # Waiting to be asked: at most MAX_PENDING, however long the resolver hangs.
        assert dns._queue.qsize() <= MAX_PENDING + 2, dns._queue.qsize()
        with asked_lock:
            asked.clear()
        release.set()  # the name server answers again
        done = threading.Event()
        dns._queue.put(done.set)  # after all queued before it
        done.wait()
        # Given up long ago: none of those is asked now (each would cost a full wait).
        with asked_lock:
            assert asked == [], len(asked)
    finally:
        release.set()
        dns.close()


def test_a_lookup_given_up_is_not_asked_again_within_the_failure_time() -> None:
    """The address whose own name_of found its lookup timed out was queued again at
    once (the cache was read before the time-out was stored): "no answer" stood
    in the table while the same address waited again behind the hung resolver."""
    queued: list[object] = []
    now = [0.0]
    dns = ReverseDnsCache(lambda _address: None, clock=lambda: now[0], submit=queued.append)
    try:
        dns.name_of("192.0.2.9")  # its lookup never starts: the pool's threads hang
        now[0] = LOOKUP_TIMEOUT_S + 1
        assert dns.name_of("192.0.2.9") is None
        assert dns.failed("192.0.2.9")
        assert len(queued) == 1, "asked again at once, not within FAILURE_TTL_S"
    finally:
        dns.close()
