"""Asking polkit whether a caller may perform an action.

The subject is the caller's unique bus name, so polkit itself finds the uid,
pid and session behind it. Every failure (polkitd missing, a timeout, a reply
of the wrong shape) means "not authorized": fail closed. Each check is its own
await, so one pending password prompt never holds up other callers.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Callable
from typing import Protocol

from chadthrottle.contract import Action
from chadthrottle.helper.errors import HelperError
from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus

log = logging.getLogger("chadthrottle.helper.adapter.polkit")

POLKIT_BUS_NAME = "org.freedesktop.PolicyKit1"
POLKIT_PATH = "/org/freedesktop/PolicyKit1/Authority"
POLKIT_INTERFACE = "org.freedesktop.PolicyKit1.Authority"
CHECK_ALLOW_USER_INTERACTION = 1

# A non-interactive check is a table lookup; an interactive one waits for a
# person to type a password, which polkit agents give about two minutes.
DEFAULT_TIMEOUT_S = 25.0
DEFAULT_INTERACTIVE_TIMEOUT_S = 150.0


class NotAuthorized(HelperError):
    """polkit did not authorize the caller (or could not be asked)."""


class Authority(Protocol):
    """What the service needs from an authorization backend."""

    async def check(self, sender: str, action: Action, *, interactive: bool) -> bool: ...

    def forget(self, sender: str) -> None:
        """sender left the bus: drop whatever is remembered of it."""


class PolkitAuthority:
    """CheckAuthorization against org.freedesktop.PolicyKit1 on the helper's bus."""

    def __init__(
        self,
        bus: MessageBus,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        interactive_timeout_s: float = DEFAULT_INTERACTIVE_TIMEOUT_S,
    ) -> None:
        self._bus = bus
        self._timeout_s = timeout_s
        self._interactive_timeout_s = interactive_timeout_s
        self._cancellation_ids = itertools.count(1)

    async def check(self, sender: str, action: Action, *, interactive: bool) -> bool:
        """True only when polkit answered "authorized" for this sender and action."""
        cancellation_id = f"chadthrottle-{os.getpid()}-{next(self._cancellation_ids)}"
        timeout_s = self._interactive_timeout_s if interactive else self._timeout_s
        try:
            return await asyncio.wait_for(
                self._check_authorization(sender, action, interactive, cancellation_id),
                timeout_s,
            )
        except TimeoutError:
            log.warning(
                "polkit did not answer within %.0f s for %s; denying", timeout_s, action.value
            )
            self._cancel(cancellation_id)
            return False
        except Exception as error:  # fail closed on anything at all
            log.warning("polkit check for %s failed (%s); denying", action.value, error)
            return False

    async def _check_authorization(
        self, sender: str, action: Action, interactive: bool, cancellation_id: str
    ) -> bool:
        flags = CHECK_ALLOW_USER_INTERACTION if interactive else 0
        reply = await self._bus.call(
            Message(
                destination=POLKIT_BUS_NAME,
                path=POLKIT_PATH,
                interface=POLKIT_INTERFACE,
                member="CheckAuthorization",
                signature="(sa{sv})sa{ss}us",
                body=[
                    ["system-bus-name", {"name": Variant("s", sender)}],
                    action.value,
                    {},
                    flags,
                    cancellation_id,
                ],
            )
        )
        if reply.message_type is MessageType.ERROR:
            log.warning("polkit refused the check for %s: %s", action.value, reply.error_name)
            return False
        if reply.signature != "(bba{ss})":
            log.warning("polkit answered with unexpected signature %r; denying", reply.signature)
            return False
        is_authorized, _is_challenge, _details = reply.body[0]
        return is_authorized is True

    def _cancel(self, cancellation_id: str) -> None:
        """Best effort: withdraw a prompt nobody is waiting for any more."""
        try:
            self._bus.send(
                Message(
                    destination=POLKIT_BUS_NAME,
                    path=POLKIT_PATH,
                    interface=POLKIT_INTERFACE,
                    member="CancelCheckAuthorization",
                    signature="s",
                    body=[cancellation_id],
                    flags=1,  # NO_REPLY_EXPECTED
                )
            )
        except Exception as error:
            log.debug("could not cancel polkit check %s: %s", cancellation_id, error)

    def forget(self, sender: str) -> None:
        """Nothing is remembered here."""


class CachingAuthority:
    """Remembers a "yes" for one caller and action for a moment, and asks polkit
    once for all the calls that need the same answer at the same time.

    polkitd answers about 800 checks a second on the development machine, so a
    check per call capped SetLimit below the 1,000 calls/s target and made other
    callers queue behind polkit; a client that sends a burst before the first
    answer came would otherwise still cost one check per call. A unique bus name
    is never reused and its uid never changes, so the only staleness is a right
    that was just revoked (a rule removed, a session gone inactive) being
    honoured for up to ttl_s more.

    A caller without rights that sends calls as fast as they are answered made
    polkitd spend 53-59% of a core (this 2-core machine) and slowed everyone's
    calls. So a "no" to a call that cannot prompt is remembered for
    deny_ttl_s (a right just granted is honoured at most that late), and a
    caller that was told "no" DENIALS_PER_S times within a second is told "no"
    without asking for the rest of that second, whatever its calls' flags (an
    interactive call may prompt for a password, so its "no" is not remembered;
    but nobody types a password several times a second).
    """

    DENIALS_PER_S = 5

    MAX_ENTRIES = 4096

    def __init__(self, authority: Authority, ttl_s: float = 2.0, deny_ttl_s: float = 0.5,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self._authority = authority
        self._ttl_s = ttl_s
        self._deny_ttl_s = deny_ttl_s
        self._clock = clock
        self._allowed_until: dict[tuple[str, Action], float] = {}
        self._denied_until: dict[tuple[str, Action], float] = {}
        self._denials: dict[
            str, list[float]
        ] = {}  # sender -> when polkit said no, within the last second
        self._asking: dict[tuple[str, Action, bool], asyncio.Future[bool]] = {}

    async def check(self, sender: str, action: Action, *, interactive: bool) -> bool:
        if self._allowed_until.get((sender, action), 0.0) > self._clock():
            return True
        if not interactive and self._denied_until.get((sender, action), 0.0) > self._clock():
            return False
        if self._denied_too_often(sender):
            return False
        key = (sender, action, interactive)
        answer = self._asking.get(key)
        if answer is None:
            answer = asyncio.ensure_future(self._ask(sender, action, interactive))
            self._asking[key] = answer
            answer.add_done_callback(lambda _done: self._asking.pop(key, None))
        return await asyncio.shield(answer)  # one caller giving up does not cancel the others

    async def _ask(self, sender: str, action: Action, interactive: bool) -> bool:
        key = (sender, action)
        allowed = await self._authority.check(sender, action, interactive=interactive)
        now = self._clock()
        if not allowed:
            self._allowed_until.pop(key, None)
            if not interactive:
                self._remember(self._denied_until, key, now + self._deny_ttl_s, now)
            if len(self._denials) >= self.MAX_ENTRIES and sender not in self._denials:
                self._denials.clear()
            self._denials.setdefault(sender, []).append(now)
            return False
        self._denied_until.pop(key, None)
        self._remember(self._allowed_until, key, now + self._ttl_s, now)
        return True

    def forget(self, sender: str) -> None:
        """sender left the bus: its answers go (its name is never used again;
        this only frees the memory, and can only make polkit be asked again)."""
        for action in Action:
            self._allowed_until.pop((sender, action), None)
            self._denied_until.pop((sender, action), None)
        self._denials.pop(sender, None)
        self._authority.forget(sender)

    def _denied_too_often(self, sender: str) -> bool:
        recent = [at for at in self._denials.get(sender, ()) if at > self._clock() - 1.0]
        if recent:
            self._denials[sender] = recent
        else:
            self._denials.pop(sender, None)
        return len(recent) >= self.DENIALS_PER_S

    def _remember(self, table: dict[tuple[str, Action], float], key: tuple[str, Action], until: float,
                  now: float) -> None:  # fmt: skip
        """table[key] = until, the table bounded to MAX_ENTRIES."""
        if len(table) >= self.MAX_ENTRIES:
            for stale in [k for k, expires in table.items() if expires <= now]:
                del table[stale]
            if len(table) >= self.MAX_ENTRIES:
                table.clear()
        table[key] = until
