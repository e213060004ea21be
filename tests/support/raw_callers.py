"""Raw dbus-fast calls to the real helper from several users, for a test
that sends many failing calls (tests/e2e/test_fuzz_arguments.py).

The helper paces a caller, a uid over all its connections, that failed
FAILURES_BEFORE_DELAY calls within a second: its next calls start one per
FAILURE_DELAY_S (helper/adapter/refusals.py; tested on its own in
tests/helper/adapter). Every call of a fuzz fails, so from one uid 180 calls
waited 18 s. Here each call goes out as root unless root's answers of the
last second would get it paced, then as the first other user whose would
not: client processes as uids that exist (dbus-daemon refuses others), each
granted every action of the helper by a polkit rule naming its pid only, and
used once polkit says so. A call's answer is the same from any of them, only
sooner; with none left unpaced, the next waits until one's oldest answer is a
second old (not a guessed time)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import pickle
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from chadthrottle.contract import BUS_NAME, INTERFACE, OBJECT_PATH, Action, ErrorName
from chadthrottle.helper.adapter.service import FAILURES_BEFORE_DELAY
from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

from tests.support.flood import as_uid_env, polkit_grant, setpriv_argv
from tests.support.requirements import require_program

# daemon, bin, sys, sync, games, man, lp, mail: users that exist everywhere
# Debian runs. With root, nine callers: 45 calls a second before any is paced.
OTHER_UIDS = (1, 2, 3, 4, 5, 6, 7, 8)
GRANT_TIMEOUT_S = 30.0

# As one uid: per stdin line, a base64 pickle of (member, signature, body),
# sent raw; answers one JSON line [error name or null, str(body)].
_CLIENT = r"""
import asyncio, base64, json, pickle, sys
from chadthrottle.contract import BUS_NAME, INTERFACE, OBJECT_PATH
from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

async def main(address):
    bus = await MessageBus(bus_address=address).connect()
    print(json.dumps({"ready": True}), flush=True)
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        member, signature, body = pickle.loads(base64.b64decode(line))
        reply = await asyncio.wait_for(bus.call(Message(destination=BUS_NAME, path=OBJECT_PATH,
            interface=INTERFACE, member=member, signature=signature, body=body)), 20)
        error = reply.error_name if reply.message_type is MessageType.ERROR else None
        print(json.dumps([error, str(reply.body)]), flush=True)
    bus.disconnect()

asyncio.run(main(sys.argv[1]))
"""


@dataclass(frozen=True)
class Reply:
    uid: int
    error_name: str | None  # None: the call succeeded
    body: str


@dataclass
class _Caller:
    uid: int
    answered: list[float] = field(default_factory=list)  # when its calls were answered

    def unpaced(self, now: float) -> bool:
        """Fewer than FAILURES_BEFORE_DELAY answers in the last second (timed
        after the helper counted them: on the safe side)."""
        self.answered[:] = [at for at in self.answered if at > now - 1.0]
        return len(self.answered) < FAILURES_BEFORE_DELAY


class _RootCaller(_Caller):
    def __init__(self, address: str) -> None:
        super().__init__(0)
        self._loop = asyncio.new_event_loop()

        async def connect() -> MessageBus:
            return await MessageBus(bus_address=address).connect()

        self._bus = self._loop.run_until_complete(connect())

    def call(self, member: str, signature: str, body: list[Any]) -> tuple[str | None, str]:
        message = Message(destination=BUS_NAME, path=OBJECT_PATH, interface=INTERFACE,
                          member=member, signature=signature, body=body)  # fmt: skip
        reply = self._loop.run_until_complete(asyncio.wait_for(self._bus.call(message), 20))
        error = reply.error_name if reply.message_type is MessageType.ERROR else None
        return error, str(reply.body)

    def close(self) -> None:
        self._bus.disconnect()
        self._loop.run_until_complete(asyncio.sleep(0))
        self._loop.close()


class _UidCaller(_Caller):
    def __init__(self, address: str, uid: int) -> None:
        super().__init__(uid)
        argv = [*setpriv_argv(uid), sys.executable, "-c", _CLIENT, address]
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, env=as_uid_env(address))  # fmt: skip

    def ready(self) -> None:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if "ready" not in line:
            raise RuntimeError(f"uid {self.uid}'s client did not connect: {line}{self.process.stdout.read()[-2000:]}")  # fmt: skip

    def call(self, member: str, signature: str, body: list[Any]) -> tuple[str | None, str]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(base64.b64encode(pickle.dumps((member, signature, body))).decode() + "\n")  # fmt: skip
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line.startswith("["):
            raise RuntimeError(f"uid {self.uid}'s client failed: {line}{self.process.stdout.read()[-3000:]}")  # fmt: skip
        error, body_text = json.loads(line)
        return error, body_text

    def close(self) -> None:
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class RawCallers:
    """Root and the granted OTHER_UIDS; call() on whichever is not paced."""

    def __init__(self, root: _RootCaller, others: list[_UidCaller]) -> None:
        self._callers: list[_RootCaller | _UidCaller] = [root, *others]

    def call(self, member: str, signature: str, body: list[Any]) -> Reply:
        while True:
            now = time.monotonic()
            free = [caller for caller in self._callers if caller.unpaced(now)]
            if free:
                break
            # the first moment one of them has an answer more than a second old
            time.sleep(max(0.0, min(c.answered[0] for c in self._callers) + 1.0 - now) + 0.001)
        caller = free[0]
        error, body_text = caller.call(member, signature, body)
        caller.answered.append(time.monotonic())
        return Reply(caller.uid, error, body_text)

    def wait_granted(self, timeout_s: float = GRANT_TIMEOUT_S) -> None:
        """Until polkit allows every other user limit-any: a call that needs
        it (valid, for an id nobody has) is no longer NotAuthorized. Those
        probes fail, and count in each user's budget like any call."""
        deadline = time.monotonic() + timeout_s
        for caller in self._callers[1:]:
            while True:
                error, body_text = caller.call(
                    "ClearLimit", "sss", ["exe:/nonexistent/grant-probe", "down", "all"]
                )
                caller.answered.append(time.monotonic())
                if error != ErrorName.NOT_AUTHORIZED.value:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"polkit did not grant uid {caller.uid} within {timeout_s} s"
                    )
                time.sleep(0.05)
            if error != ErrorName.NO_SUCH_APPLICATION.value:
                raise RuntimeError(f"uid {caller.uid}'s probe: {error} {body_text}")


@contextlib.contextmanager
def raw_callers(address: str, uids: tuple[int, ...] = OTHER_UIDS) -> Iterator[RawCallers]:
    """Root's connection and one client process per uid, granted every
    action while the block runs; each client is stopped on leaving."""
    require_program("setpriv")
    with contextlib.ExitStack() as cleanup:
        root = _RootCaller(address)
        cleanup.callback(root.close)
        others: list[_UidCaller] = []
        for uid in uids:
            others.append(_UidCaller(address, uid))
            cleanup.callback(others[-1].close)
        for other in others:
            other.ready()
        cleanup.enter_context(
            polkit_grant([o.process.pid for o in others], [a.value for a in Action])
        )
        callers = RawCallers(root, others)
        callers.wait_granted()
        yield callers
