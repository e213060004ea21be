"""Remembering polkit's "yes" for a moment, and its "no" only for a shorter
moment and only for calls that cannot prompt."""

from __future__ import annotations

import asyncio

from chadthrottle.contract import Action
from chadthrottle.helper.adapter.polkit import CachingAuthority


class ScriptedAuthority:
    """Answers from a table; counts the questions (a unit-test stand-in for polkitd)."""

    def __init__(self) -> None:
        self.allowed: set[tuple[str, Action]] = set()
        self.asked = 0
        self.forgotten: list[str] = []

    async def check(self, sender: str, action: Action, *, interactive: bool) -> bool:
        self.asked += 1
        return (sender, action) in self.allowed

    def forget(self, sender: str) -> None:
        self.forgotten.append(sender)


def test_a_yes_is_remembered_for_its_caller_and_action_until_it_expires() -> None:
    polkit, now = ScriptedAuthority(), [100.0]
    cache = CachingAuthority(polkit, ttl_s=2.0, clock=lambda: now[0])
    polkit.allowed.add((":1.5", Action.LIMIT_OWN))

    async def run() -> None:
        assert await cache.check(":1.5", Action.LIMIT_OWN, interactive=False)
        polkit.allowed.clear()  # revoked
        assert await cache.check(":1.5", Action.LIMIT_OWN, interactive=False)  # remembered
        assert polkit.asked == 1
        assert not await cache.check(":1.5", Action.LIMIT_ANY, interactive=False)  # another action
        assert not await cache.check(":1.6", Action.LIMIT_OWN, interactive=False)  # another caller
        now[0] += 2.1
        assert not await cache.check(
            ":1.5", Action.LIMIT_OWN, interactive=False
        )  # expired: asks again

    asyncio.run(run())


def test_a_no_is_not_remembered_for_a_call_that_may_prompt() -> None:
    polkit = ScriptedAuthority()
    cache = CachingAuthority(polkit)

    async def run() -> None:
        assert not await cache.check(":1.7", Action.MONITOR, interactive=False)
        polkit.allowed.add((":1.7", Action.MONITOR))  # e.g. the password was typed
        assert await cache.check(":1.7", Action.MONITOR, interactive=True)
        assert polkit.asked == 2

    asyncio.run(run())


def test_a_no_to_a_call_that_cannot_prompt_is_remembered_briefly() -> None:
    """A flood of refused calls costs polkitd one check per caller and half second."""
    polkit, now = ScriptedAuthority(), [50.0]
    cache = CachingAuthority(polkit, deny_ttl_s=0.5, clock=lambda: now[0])

    async def run() -> None:
        for _ in range(100):
            assert not await cache.check(":1.9", Action.LIMIT_ANY, interactive=False)
        assert polkit.asked == 1
        polkit.allowed.add((":1.9", Action.LIMIT_ANY))
        assert not await cache.check(
            ":1.9", Action.LIMIT_ANY, interactive=False
        )  # granted, not yet honoured
        now[0] += 0.6
        assert await cache.check(
            ":1.9", Action.LIMIT_ANY, interactive=False
        )  # at most deny_ttl_s late
        assert polkit.asked == 2

    asyncio.run(run())


def test_the_memory_stays_bounded() -> None:
    polkit, now = ScriptedAuthority(), [0.0]
    cache = CachingAuthority(polkit, ttl_s=1.0, clock=lambda: now[0])

    async def run() -> None:
        for n in range(CachingAuthority.MAX_ENTRIES * 2):
            polkit.allowed.add((f":1.{n}", Action.MONITOR))
            assert await cache.check(f":1.{n}", Action.MONITOR, interactive=False)
        assert len(cache._allowed_until) <= CachingAuthority.MAX_ENTRIES

    asyncio.run(run())


class SlowAuthority(ScriptedAuthority):
    """Answers only when released, so checks can overlap."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def check(self, sender: str, action: Action, *, interactive: bool) -> bool:
        self.asked += 1
        await self.release.wait()
        return (sender, action) in self.allowed


def test_overlapping_checks_for_the_same_caller_and_action_ask_once() -> None:
    polkit = SlowAuthority()
    cache = CachingAuthority(polkit)
    polkit.allowed.add((":1.8", Action.LIMIT_OWN))

    async def run() -> None:
        same = [
            asyncio.ensure_future(cache.check(":1.8", Action.LIMIT_OWN, interactive=False))
            for _ in range(50)
        ]
        other = asyncio.ensure_future(cache.check(":1.9", Action.LIMIT_OWN, interactive=False))
        prompt = asyncio.ensure_future(cache.check(":1.8", Action.LIMIT_OWN, interactive=True))
        await asyncio.sleep(0.05)
        same[0].cancel()  # one caller gives up; the others still get their answer
        polkit.release.set()
        assert await asyncio.gather(*same[1:]) == [True] * 49
        assert await other is False
        assert await prompt is True
        assert polkit.asked == 3  # one per (caller, action, interactive), not one per call

    asyncio.run(run())


def test_a_caller_told_no_several_times_a_second_is_told_no_without_asking() -> None:
    """Interactive calls too: an attacker can set the flag on every call."""
    polkit, now = ScriptedAuthority(), [10.0]
    cache = CachingAuthority(polkit, clock=lambda: now[0])

    async def run() -> None:
        for _ in range(50):
            assert not await cache.check(":1.11", Action.LIMIT_OWN, interactive=True)
        assert polkit.asked == CachingAuthority.DENIALS_PER_S
        assert not await cache.check(
            ":1.12", Action.LIMIT_OWN, interactive=True
        )  # others still asked
        assert polkit.asked == CachingAuthority.DENIALS_PER_S + 1
        now[0] += 1.1
        polkit.allowed.add((":1.11", Action.LIMIT_OWN))
        assert await cache.check(
            ":1.11", Action.LIMIT_OWN, interactive=True
        )  # a second later: asked again

    asyncio.run(run())


def test_a_caller_that_left_the_bus_is_forgotten_and_a_no_never_becomes_a_yes() -> None:
    """Its remembered answers go (the name is never reused: only memory), and
    another caller's stay; forgetting a "no" only means polkit is asked again."""
    polkit, now = ScriptedAuthority(), [10.0]
    cache = CachingAuthority(polkit, clock=lambda: now[0])
    polkit.allowed.add((":1.21", Action.MONITOR))

    async def run() -> None:
        for _ in range(CachingAuthority.DENIALS_PER_S):
            assert not await cache.check(":1.20", Action.LIMIT_OWN, interactive=False)
        assert await cache.check(":1.21", Action.MONITOR, interactive=False)
        cache.forget(":1.20")
        assert polkit.forgotten == [":1.20"]
        assert ":1.20" not in cache._denials
        assert not any(key[0] == ":1.20" for key in cache._denied_until)
        asked = polkit.asked
        assert not await cache.check(":1.20", Action.LIMIT_OWN, interactive=False)
        assert polkit.asked == asked + 1  # asked again, and polkit still says no
        assert await cache.check(":1.21", Action.MONITOR, interactive=False)
        assert polkit.asked == asked + 1  # the other caller's yes is still remembered

    asyncio.run(run())
