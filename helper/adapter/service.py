"""The helper's object on the bus: unmarshal, validate, authorize, call, reply.

A low-level message handler (not dbus-fast's @method) because polkit needs the
caller's unique bus name, which only the message carries. Everything is driven
by contract.METHODS: a method the contract does not list is unknown, a method
whose action is not a known kind is denied, each argument is checked by the
form the contract declares (validation.validate_call), and each method has one
handler here, marked @_handles (the module does not import if one is missing).
Introspect answers the XML generated from the contract (introspection.py).

Each call runs in its own task, so a caller waiting on a password prompt holds
up nobody; engine calls run one at a time on a single worker thread because
the engine blocks on the kernel (and pyroute2 will not run on the event loop's
thread), except the reads the engine publishes a snapshot for
(engine/snapshot.py), answered here on the event loop, and those worked out
from it off the engine thread (ListConnections, ListProcesses,
ListInterfaces: _slow_read). Every call gets exactly one reply, also when something breaks, and no
traceback ever leaves the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from chadthrottle.contract import (
    ADMIN_OWNER,
    API_VERSION,
    INTERFACE,
    METHODS,
    OBJECT_PATH,
    Action,
    ApplicationInfo,
    BackendInfo,
    Direction,
    ErrorName,
    LimitAuthorization,
    MethodSpec,
    RuleInfo,
    RuleScope,
    ScheduleInfo,
)
from chadthrottle.dbus_codec import (
    encode_application,
    encode_backend,
    encode_connection,
    encode_interface,
    encode_link_shaping,
    encode_process,
    encode_rule,
    encode_schedule,
    encode_usage,
)
from chadthrottle.helper.adapter import validation
from chadthrottle.helper.adapter.batcher import Batcher, one_by_one
from chadthrottle.helper.adapter.engine_thread import EngineThread
from chadthrottle.helper.adapter.introspection import (
    INTROSPECTABLE_INTERFACE,
    PEER_INTERFACE,
    introspection_xml,
)
from chadthrottle.helper.adapter.polkit import Authority, NotAuthorized
from chadthrottle.helper.adapter.refusals import (
    CallerUids,
    FailureBudget,
    Refusal,
    RefusalLog,
    WaitingBounds,
    WaitingCalls,
    WaitingTotal,
)
from chadthrottle.helper.engine.api import (
    AddSchedule,
    ClearLimit,
    ClearQuota,
    EngineApi,
    LimitChange,
    RemoveSchedules,
    ResolvedApplication,
    SetBlocked,
    SetLimit,
    SetPriority,
    SetQuota,
    Viewer,
)
from chadthrottle.helper.engine.listing import shown_to
from chadthrottle.helper.engine.quotas import Period, Quota
from chadthrottle.helper.engine.snapshot import Looked
from chadthrottle.helper.errors import (
    BackendUnavailable,
    HelperError,
    InvalidArgument,
    NoSuchApplication,
)
from chadthrottle.priority import Priority
from dbus_fast import ErrorType, Message, MessageFlag, MessageType
from dbus_fast.aio import MessageBus

log = logging.getLogger("chadthrottle.helper.adapter.service")

GENERIC_FAILURE_TEXT = "the helper hit an internal error; details are in its log"
STOPPING_TEXT = "the helper is stopping"
# A slow read whose caller left the bus while it waited its turn (_slow_read):
# not read. No one gets the answer; it counts as the user's failure.
CALLER_LEFT_TEXT = "not read: the caller left the bus"
# A caller (a uid, over all its connections) whose calls failed this often
# within a second (refused, unknown ids, bad arguments) is paced: its next
# calls start one per FAILURE_DELAY_S,
# before any work is done for them (the answers are the same, only later). A
# client that calls as fast as it is answered then slows itself down: eight
# such clients without any right took the two cores of this machine with
# dbus-daemon, and root's calls waited (bench/helper_flood.py); four at 500
# refused calls a second, each still looked up or checked, cost root's calls
# 198-864 ms (p99) on a loaded machine. No program that means well fails five
# calls a second.
FAILURES_BEFORE_DELAY, FAILURE_DELAY_S = 5, 0.1
# A paced user's calls waiting at most, over all its connections. The system
# bus lets a connection have 128 calls awaiting a reply, and a user 256
# connections; calls that want none it does not bound, and they must not grow
# the helper: past this many, a call is refused unread.
MAX_WAITING = 256
# ... and the bytes of their arguments at the most (refusals.arguments_size):
# a call may carry 32 MiB on the system bus, and 200 no-reply calls of 4 MiB
# waiting took the helper from 70 to 696 MiB. A valid call is under 5 KB.
MAX_WAITING_BYTES = 1 << 20
TOO_MANY_WAITING_TEXT = "not tried: too many of your calls are waiting (they keep failing)"
# Every paced user's waiting calls together at the most (the users the bus
# lets exist are many: 16 at their bounds fill it): past either, a call that
# would wait is refused unread with LimitsExceeded, whoever sent it.
MAX_WAITING_TOTAL, MAX_WAITING_BYTES_TOTAL = 4096, 16 << 20
ALL_WAITING_TEXT = "not tried: the helper holds too many waiting calls of callers whose calls keep failing; try again later"
# A connection's first calls wait until the bus has said whose it is (about a
# millisecond; then they go as that user's): at most this many and bytes a
# connection (a GUI's first poll is 3 calls, a valid call under 5 KB), and all
# connections' together at most the totals, of their own: a user's 256
# connections (the system bus's max_connections_per_user) fill a quarter of
# them, and a flood of calls not identified yet never takes the room of a
# paced user's, nor the other way round (review8 on fc77f0a).
MAX_IDENTIFYING, MAX_IDENTIFYING_BYTES = 32, 16 * 1024
MAX_IDENTIFYING_TOTAL, MAX_IDENTIFYING_BYTES_TOTAL = 32768, 16 << 20
ALL_IDENTIFYING_TEXT = "not tried: the helper holds too many calls of connections it has not identified yet; try again later"
IDENTIFYING_TEXT = (f"not tried: more than {MAX_IDENTIFYING} calls or {MAX_IDENTIFYING_BYTES} bytes sent "
                    "before the bus said whose connection this is; send fewer at once")  # fmt: skip
# The bounds above, of each kind of waiting call, as the service holds them.
PACED_BOUNDS = WaitingBounds(
    MAX_WAITING, MAX_WAITING_BYTES, MAX_WAITING_TOTAL, MAX_WAITING_BYTES_TOTAL,
    Refusal("the user's calls", ErrorName.NOT_AUTHORIZED.value, TOO_MANY_WAITING_TEXT),
    Refusal("all users' calls", ErrorType.LIMITS_EXCEEDED.value, ALL_WAITING_TEXT),
)  # fmt: skip
IDENTIFYING_BOUNDS = WaitingBounds(
    MAX_IDENTIFYING, MAX_IDENTIFYING_BYTES, MAX_IDENTIFYING_TOTAL, MAX_IDENTIFYING_BYTES_TOTAL,
    Refusal("the connection's calls not identified", ErrorType.LIMITS_EXCEEDED.value,
            IDENTIFYING_TEXT),
    Refusal("all connections' calls not identified", ErrorType.LIMITS_EXCEEDED.value,
            ALL_IDENTIFYING_TEXT),
)  # fmt: skip

BUS_DAEMON, BUS_DAEMON_PATH = "org.freedesktop.DBus", "/org/freedesktop/DBus"
LEFT_THE_BUS_MATCH = (f"type='signal',sender='{BUS_DAEMON}',path='{BUS_DAEMON_PATH}',"
                      f"interface='{BUS_DAEMON}',member='NameOwnerChanged',arg2=''")  # fmt: skip

# The one place where helper errors become D-Bus error names; first match wins,
# so subclasses come before HelperError. Anything not a HelperError is FAILED
# with GENERIC_FAILURE_TEXT.
ERROR_NAMES: tuple[tuple[type[HelperError], ErrorName], ...] = (
    (NotAuthorized, ErrorName.NOT_AUTHORIZED),
    (InvalidArgument, ErrorName.INVALID_ARGUMENT),
    (NoSuchApplication, ErrorName.NO_SUCH_APPLICATION),
    (BackendUnavailable, ErrorName.BACKEND_UNAVAILABLE),
    (HelperError, ErrorName.FAILED),
)


def error_name_for(error: HelperError) -> ErrorName:
    for error_class, name in ERROR_NAMES:
        if isinstance(error, error_class):
            return name
    return ErrorName.FAILED


@dataclass(frozen=True)
class _Call:
    """One validated incoming call."""

    message: Message
    sender: str
    spec: MethodSpec
    args: tuple[Any, ...]

    @property
    def interactive(self) -> bool:
        return bool(self.message.flags & MessageFlag.ALLOW_INTERACTIVE_AUTHORIZATION)


@dataclass
class _Turn:
    """One user's slow reads of one kind (HelperService._slow_read): one at a time."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    reads: int = 0  # waiting or running


@dataclass(frozen=True)
class _Grant:
    """What polkit allowed a limit call to change: one application's rule of one owner."""

    app_id: str
    owner: int  # contract.ADMIN_OWNER or the caller's uid


Handler = Callable[["HelperService", "_Call", "_Grant | None"], Awaitable[list[Any]]]
Result = TypeVar("Result")
_HANDLER_ATTRIBUTE = "_handles_method"


def _handles(method: str) -> Callable[[Handler], Handler]:
    """Mark a HelperService coroutine as the handler of one contract method;
    it returns the reply's body, of the method's out signature."""
    if method not in METHODS:
        raise LookupError(f"{method} is not a method of the contract")

    def mark(handler: Handler) -> Handler:
        setattr(handler, _HANDLER_ATTRIBUTE, method)
        return handler

    return mark


class HelperService:
    """Serves contract.INTERFACE at contract.OBJECT_PATH on one bus connection."""

    def __init__(
        self, bus: MessageBus, engine: EngineApi, authority: Authority, engine_thread: EngineThread,
        paced: WaitingBounds = PACED_BOUNDS, identifying: WaitingBounds = IDENTIFYING_BOUNDS,
    ) -> None:  # fmt: skip
        """engine_thread is the thread the engine was built on; the caller owns
        both. paced, identifying: what the calls waiting of each kind may hold."""
        self._bus = bus
        self._engine = engine
        self._authority = authority
        self._engine_thread = engine_thread
        # One trip to the engine thread per batch of calls, not one per call.
        self._changes: Batcher[LimitChange, str] = Batcher(engine_thread, engine.apply_changes)
        self._resolves: Batcher[str, ResolvedApplication] = Batcher(
            engine_thread, one_by_one(engine.resolve_application)
        )
        self._introspection_xml = introspection_xml()
        self._tasks: set[asyncio.Task[None]] = set()
        self._exported = False
        self._last_activity_s = time.monotonic()
        # told each pause or resume done: a killed helper's run record says whether
        # the kernel held its limits (main.run_helper sets it)
        self.on_limits_paused: Callable[[bool], None] | None = None
        self._uids = CallerUids()  # unique bus name -> uid
        self._failures = FailureBudget(FAILURES_BEFORE_DELAY)  # per uid
        # Users being paced -> their calls not started yet, in order.
        self._paced: dict[int, WaitingCalls] = {}
        # Connections the bus is being asked about -> their calls meanwhile.
        self._identifying: dict[str, WaitingCalls] = {}
        self.paced_total = WaitingTotal(paced)  # of the queues in self._paced
        self.identifying_total = WaitingTotal(identifying)  # of the queues in self._identifying
        self._refusals = RefusalLog(log, self._uids.get)
        self._usage_queries = asyncio.Semaphore(1)  # GetUsage reads, one at a time
        # ListConnections and ListInterfaces read /proc, sockets and namespaces
        # in numbers a caller chooses (its own process's 19,000 sockets: 1.7 s a
        # call): off the engine thread, one at a time, at most one of a user's
        # waiting for its turn (_slow_read; rights28)
        self._slow_reads = asyncio.Semaphore(1)
        self._process_reads = asyncio.Semaphore(1)  # ListProcesses', off the engine thread (snap33)
        # (uid, the reads' gate) -> that user's turn at reads of that kind, while
        # it has such reads: a kind's turn is not held by another's (review29)
        self._slow_readers: dict[tuple[int, asyncio.Semaphore], _Turn] = {}
        # sender -> its slow reads waiting or running; of those, the senders
        # that left the bus: what waits of theirs is not read (_on_signal)
        self._slow_senders: dict[str, int] = {}
        self._slow_senders_gone: set[str] = set()

    def export(self) -> None:
        self._bus.add_message_handler(self._on_message)
        self._exported = True
        # Told when a connection leaves the bus, to forget what is kept of it
        # (uid, waiting calls, polkit's remembered answers). Best effort:
        # without it the tables stay bounded (refusals.CallerUids, 4096 senders
        # in the others).
        with contextlib.suppress(Exception):
            self._bus.send(Message(destination=BUS_DAEMON, path=BUS_DAEMON_PATH,
                                   interface=BUS_DAEMON, member="AddMatch", signature="s",
                                   body=[LEFT_THE_BUS_MATCH], flags=MessageFlag.NO_REPLY_EXPECTED))  # fmt: skip

    def unexport(self) -> None:
        if self._exported:
            self._bus.remove_message_handler(self._on_message)
            self._exported = False

    def idle_s(self) -> float:
        """Seconds since the last call ended; 0 while one is running."""
        return 0.0 if self._tasks else time.monotonic() - self._last_activity_s

    async def close(self, timeout_s: float = 10.0) -> None:
        """Stop taking calls; let running ones finish, or cancel them after timeout_s."""
        self.unexport()
        deadline = time.monotonic() + timeout_s
        while self._tasks:  # a paced sender's calls start as tasks of their own
            _done, pending = await asyncio.wait(
                set(self._tasks), timeout=max(0.0, deadline - time.monotonic())
            )
            if pending:
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending)
        self._refusals.flush()

    # -- message plumbing ---------------------------------------------------

    def _on_message(self, message: Message) -> bool | None:
        if message.message_type is MessageType.SIGNAL:
            self._on_signal(message)
            return None
        if message.message_type is not MessageType.METHOD_CALL or message.path != OBJECT_PATH:
            return None
        sender = message.sender or ""
        uid = self._uids.get(sender)
        if uid is not None:
            self._route(message, uid)
            return True
        # Whose it is, first: a user's connections are one caller.
        waiting = self._identifying.get(sender)
        if waiting is None:
            waiting = self._identifying[sender] = self.identifying_total.queue()
            self._start(self._identify(sender))
        self._keep(waiting, message)
        return True

    def _keep(self, waiting: WaitingCalls, message: Message) -> None:
        """Keep a call to start later (a paced user's, or a connection's not
        identified yet), or refuse it unread, past what its queue or all
        queues of its kind may hold (WaitingBounds): no work for it, counted
        in the log ("ClearLimit (over the user's calls waiting)", say)."""
        refusal: Refusal | None = waiting.keep(message)
        if refusal is not None:
            self._refusals.refused(
                message.sender or "", f"{message.member} (over {refusal.whose} waiting)"
            )
            self._send(message, Message.new_error(message, refusal.error, refusal.text))

    def _route(self, message: Message, uid: int) -> None:
        """Start a call of a known user's, or keep it behind that user's waiting calls."""
        waiting = self._paced.get(uid)
        if waiting is None and self._failures.spent(uid):
            waiting = self._paced[uid] = self.paced_total.queue()
            self._start(self._pace(uid))
        if waiting is None:
            self._start(self._handle(message, uid))
        else:
            self._keep(waiting, message)

    async def _identify(self, sender: str) -> None:
        """Ask the bus whose sender is, then route the calls it sent meanwhile
        as that user's; if the bus cannot say, each is not authorized."""
        waiting = self._identifying[sender]
        uid: int | None = None
        try:
            uid = await self._caller_uid(sender)
        except NotAuthorized:
            pass
        except asyncio.CancelledError:
            for message in waiting.clear():  # every call gets exactly one reply
                self._answer_stopping(message)
            raise
        finally:
            del self._identifying[sender]
        for message in waiting.clear():  # empty if it left the bus meanwhile
            if uid is None:
                self._send(message, Message.new_error(message, ErrorName.NOT_AUTHORIZED.value,
                                                      "cannot identify the caller"))  # fmt: skip
            else:
                self._route(message, uid)

    def _on_signal(self, message: Message) -> None:
        """A unique name that left the bus (from the bus itself: no client can
        send as org.freedesktop.DBus). Forgetting only makes a later answer be
        asked for again; the name is never used again. Its user's failures
        are kept: a user's new connection is the same caller."""
        if (message.sender == BUS_DAEMON and message.member == "NameOwnerChanged"
                and message.signature == "sss" and message.body[0].startswith(":")
                and message.body[2] == ""):  # fmt: skip
            sender = message.body[0]
            identifying = self._identifying.get(sender)
            if identifying:
                identifying.clear()  # no answer can reach it any more: no work for them
            uid = self._uids.get(sender)
            waiting = None if uid is None else self._paced.get(uid)
            if waiting:
                waiting.drop(sender)
            if sender in self._slow_senders:  # its slow reads waiting: not read (_slow_read)
                self._slow_senders_gone.add(sender)
            self._uids.forget(sender)
            self._refusals.ended(sender)
            self._authority.forget(sender)

    def _start(self, call: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(call)
        self._tasks.add(task)
        task.add_done_callback(self._call_done)

    async def _pace(self, uid: int) -> None:
        """Start a user's waiting calls, one per FAILURE_DELAY_S until none is
        left, whichever of its connections sent them: its calls cost nothing
        until then, and at most a call's work per FAILURE_DELAY_S, however
        many it sends (MAX_WAITING and MAX_WAITING_BYTES bound what waits).
        Its next call once none waits goes straight on unless it is still
        failing. One slow call (a password prompt) does not hold up the next."""
        waiting = self._paced[uid]
        try:
            while waiting:
                # Before every start, not only while spent(): the calls it started
                # count as failures only when they end, and with polkit or the
                # engine slow none ended within a second, so the whole queue
                # started at once (flood8's granted floods at load 8-10).
                await asyncio.sleep(FAILURE_DELAY_S)
                if not waiting:
                    break  # it left the bus meanwhile (_on_signal): nothing to start
                self._start(self._handle(waiting.pop(), uid, paced=True))
        except asyncio.CancelledError:
            for message in waiting.clear():  # every call gets exactly one reply
                self._answer_stopping(message)
            raise
        finally:
            del self._paced[uid]

    def _call_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._last_activity_s = time.monotonic()

    async def _handle(self, message: Message, uid: int, paced: bool = False) -> None:
        """Reply exactly once, whatever happens below. A failure past
        FAILURES_BEFORE_DELAY a second is answered FAILURE_DELAY_S later,
        unless the call already waited that long to start (paced)."""
        try:
            reply = await self._dispatch(message)
            # an error answered, not raised: no such interface or method, the
            # caller's failure too (such calls were never paced)
            failed = reply.message_type is MessageType.ERROR
        except asyncio.CancelledError:
            self._answer_stopping(message)
            raise
        except HelperError as error:
            reply = Message.new_error(message, error_name_for(error).value, str(error))
            failed = True
        except Exception:
            log.exception("unexpected error in %s.%s", message.interface, message.member)
            reply = Message.new_error(message, ErrorName.FAILED.value, GENERIC_FAILURE_TEXT)
            failed = False
        if failed and self._failures.failed(uid) and not paced:
            await asyncio.sleep(FAILURE_DELAY_S)
        self._send(message, reply)

    def _answer_stopping(self, message: Message) -> None:
        """A call cut short by the helper's stop still gets its one reply."""
        self._send(message, Message.new_error(message, ErrorName.FAILED.value, STOPPING_TEXT))

    def _send(self, request: Message, reply: Message) -> None:
        if request.flags & MessageFlag.NO_REPLY_EXPECTED:
            return
        try:
            self._bus.send(reply)  # marshals now: a body that does not fit raises here
        except Exception:
            if reply.message_type is MessageType.ERROR:
                log.debug("could not send an error reply to %s", request.member, exc_info=True)
                return
            log.exception("could not send the reply to %s", request.member)
            with contextlib.suppress(Exception):
                self._bus.send(
                    Message.new_error(request, ErrorName.FAILED.value, GENERIC_FAILURE_TEXT)
                )

    async def _dispatch(self, message: Message) -> Message:
        interface, member = message.interface, message.member
        if interface == INTROSPECTABLE_INTERFACE and member == "Introspect":
            return self._plain_reply(message, "", "s", [self._introspection_xml])
        if interface == PEER_INTERFACE and member == "Ping":
            return self._plain_reply(message, "", "", [])
        if interface != INTERFACE:
            return Message.new_error(
                message, ErrorType.UNKNOWN_INTERFACE.value, f"no interface {interface!r} here"
            )
        spec = METHODS.get(member or "")
        if spec is None:
            return Message.new_error(
                message, ErrorType.UNKNOWN_METHOD.value, f"no method {member!r}"
            )
        if message.signature != spec.in_signature:
            raise InvalidArgument(
                f"{spec.name} takes arguments {spec.in_signature!r}, not {message.signature!r}"
            )
        handler = _HANDLERS.get(spec.name)
        if handler is None:
            raise HelperError(f"{spec.name} is not implemented by this helper")
        if not isinstance(spec.action, (Action, LimitAuthorization)):
            log.error("method %s declares no known action; denying", spec.name)
            raise NotAuthorized(f"{spec.name} is not allowed")
        if not message.sender:
            raise NotAuthorized("the call has no sender")
        args = validation.validate_call(spec, message.body, time.time())
        call = _Call(message, message.sender, spec, args)
        grant = await self._authorize(call)
        body = await handler(self, call, grant)
        return Message.new_method_return(message, spec.out_signature, body)

    @staticmethod
    def _plain_reply(
        message: Message, in_signature: str, signature: str, body: list[Any]
    ) -> Message:
        if message.signature != in_signature:
            raise InvalidArgument(f"{message.member} takes no arguments")
        return Message.new_method_return(message, signature, body)

    # -- authorization ------------------------------------------------------

    async def _authorize(self, call: _Call) -> _Grant | None:
        """Raise NotAuthorized unless polkit allows the call; for a limit, return
        the resolved application id and the rule owner it was granted for."""
        action = call.spec.action
        if isinstance(action, Action):
            await self._require(call, action)
            return None
        if action is LimitAuthorization.BY_SCOPE:
            return await self._authorize_by_scope(call)
        log.error("method %s declares no known action; denying", call.spec.name)
        raise NotAuthorized(f"{call.spec.name} is not allowed")

    async def _authorize_by_scope(self, call: _Call) -> _Grant:
        """polkit first, for the scope asked (nothing is looked up for a caller
        who may not change limits at all); then the application. A rule of the
        caller's own (OWN) names only the caller's processes: a "pid:" must be
        the caller's process, and an application the caller neither runs nor
        has a rule for is "no application of yours", whoever else runs it."""
        app_id: str = call.args[0]
        scope: RuleScope = call.args[-1]
        caller_uid = await self._caller_uid(call.sender)
        if scope is RuleScope.DEFAULT:
            scope = RuleScope.ALL if caller_uid == 0 else RuleScope.OWN
        if scope is RuleScope.OWN and _raises_priority(call):
            # Served ahead of everyone else's traffic: that takes the link from
            # other users and root's services, which only an administrator may give.
            if not await self._authority.check(
                call.sender, Action.LIMIT_ANY, interactive=call.interactive
            ):
                self._refusals.refused(
                    call.sender, f"{call.spec.name} above normal ({Action.LIMIT_ANY.value})"
                )
                raise NotAuthorized(f"a priority above normal takes the link from other users: "
                                    f"it needs {Action.LIMIT_ANY.value}")  # fmt: skip
        else:
            await self._require(
                call, Action.LIMIT_ANY if scope is RuleScope.ALL else Action.LIMIT_OWN
            )
        if scope is RuleScope.ALL:
            resolved = await self._resolves.submit(app_id)
            return _Grant(resolved.app_id, ADMIN_OWNER)
        not_yours = NoSuchApplication(f"no application of yours is called {app_id!r}")
        try:
            resolved = await self._resolves.submit(app_id)
        except NoSuchApplication:
            raise not_yours from None
        if resolved.pid_uid is not None and resolved.pid_uid != caller_uid:
            # Under hidepid a user must not learn from the helper which pids
            # run: someone else's process is answered as one that does not
            # exist. Root sees every pid anyway and is told which it is.
            if caller_uid == 0:
                raise NotAuthorized("not authorized: that process is not yours")
            raise not_yours
        if caller_uid not in resolved.owner_uids and caller_uid not in resolved.rule_owners:
            raise not_yours
        return _Grant(resolved.app_id, caller_uid)

    async def _require(self, call: _Call, action: Action) -> None:
        if not await self._authority.check(call.sender, action, interactive=call.interactive):
            self._refusals.refused(call.sender, f"{call.spec.name} ({action.value})")
            raise NotAuthorized(f"not authorized for {action.value}")

    async def _caller_uid(self, sender: str) -> int:
        """The caller's uid from the bus daemon; any doubt means not authorized.
        Remembered per unique name: the bus never reuses one, and a connection's
        uid never changes."""
        cached = self._uids.get(sender)
        if cached is not None:
            return cached
        try:
            reply = await self._bus.call(
                Message(
                    destination=BUS_DAEMON,
                    path=BUS_DAEMON_PATH,
                    interface=BUS_DAEMON,
                    member="GetConnectionUnixUser",
                    signature="s",
                    body=[sender],
                )
            )
        except Exception as error:
            raise NotAuthorized(f"cannot identify the caller: {error}") from None
        if reply.message_type is not MessageType.METHOD_RETURN or reply.signature != "u":
            raise NotAuthorized("cannot identify the caller")
        uid: int = reply.body[0]
        self._uids.remember(sender, uid)
        return uid

    async def _viewer(self, call: _Call) -> Viewer:
        """Who lists: a caller that may limit any application sees every
        application and rule. Never prompts: listing is no reason to ask for a
        password."""
        sees_all = await self._authority.check(call.sender, Action.LIMIT_ANY, interactive=False)
        return Viewer(await self._caller_uid(call.sender), sees_all)

    @staticmethod
    def _visible(viewer: Viewer, apps: Sequence[ApplicationInfo]) -> list[ApplicationInfo]:
        """The rows the viewer may see (listing.shown_to). The snapshot's are
        made so already; the engine thread's listing is cut here."""
        return [app for app in apps if shown_to(viewer, app)]

    @staticmethod
    def _visible_rules(viewer: Viewer, rules: Sequence[RuleInfo]) -> list[RuleInfo]:
        """Every rule for a viewer who sees all; else the viewer's own and the
        administrator's (which outrank the viewer's)."""
        if viewer.sees_all:
            return list(rules)
        return [rule for rule in rules if rule.owner in (viewer.uid, ADMIN_OWNER)]

    # -- engine calls -------------------------------------------------------

    @_handles("GetApiVersion")
    async def _get_api_version(self, call: _Call, grant: _Grant | None) -> list[Any]:
        return [API_VERSION]

    @_handles("ListApplications")
    async def _list_applications(self, call: _Call, grant: _Grant | None) -> list[Any]:
        viewer = await self._viewer(call)
        self._engine.looking(Looked.APPLICATIONS, viewer)
        snapshot = self._engine.published()
        apps: Sequence[ApplicationInfo] | None = (
            snapshot.applications.get(viewer) if snapshot else None
        )
        if apps is None:  # a viewer the snapshot does not list yet: the next one will
            apps = await self._engine_thread.run(self._engine.list_applications, viewer)
        return [[encode_application(app) for app in self._visible(viewer, apps)]]

    @_handles("ListRules")
    async def _list_rules(self, call: _Call, grant: _Grant | None) -> list[Any]:
        viewer = await self._viewer(call)
        snapshot = self._engine.published()
        rules = (
            snapshot.rules if snapshot else await self._engine_thread.run(self._engine.list_rules)
        )
        return [[encode_rule(rule) for rule in self._visible_rules(viewer, rules)]]

    @_handles("ListSchedules")
    async def _list_schedules(self, call: _Call, grant: _Grant | None) -> list[Any]:
        viewer = await self._viewer(call)
        snapshot = self._engine.published()
        schedules: Sequence[ScheduleInfo] = (
            snapshot.schedules if snapshot
            else await self._engine_thread.run(self._engine.list_schedules)
        )  # fmt: skip
        visible = [s for s in schedules if viewer.sees_all or s.owner in (viewer.uid, ADMIN_OWNER)]
        return [[encode_schedule(schedule) for schedule in visible]]

    @_handles("ListBackends")
    async def _list_backends(self, call: _Call, grant: _Grant | None) -> list[Any]:
        viewer = await self._viewer(call)  # other users' namespaces are not named to a user
        self._engine.looking(Looked.BACKENDS, viewer)
        snapshot = self._engine.published()
        backends: Sequence[BackendInfo] | None = snapshot.backends.get(viewer) if snapshot else None
        if backends is None:
            backends = await self._engine_thread.run(self._engine.list_backends, viewer)
        return [[encode_backend(backend) for backend in backends]]

    @_handles("ListInterfaces")
    async def _list_interfaces(self, call: _Call, grant: _Grant | None) -> list[Any]:
        interfaces = await self._slow_read(call, self._engine.list_interfaces)
        return [[encode_interface(interface) for interface in interfaces]]

    @_handles("ListConnections")
    async def _list_connections(self, call: _Call, grant: _Grant | None) -> list[Any]:
        app_id, only = await self._app_to_look_into(call)
        connections = await self._slow_read(call, self._engine.list_connections, app_id, only)
        return [[encode_connection(connection) for connection in connections]]

    async def _slow_read(self, call: _Call, read: Callable[..., Result], *args: Any,
                         gate: asyncio.Semaphore | None = None) -> Result:  # fmt: skip
        """A read whose cost the caller chooses, off the engine thread (the
        engine takes its lock for what it needs): one user's flood of its own
        ListConnections held every other call on the engine thread (root's
        ListApplications waited 8.3 s behind 8 of them, rights28). One such
        read at a time, and of each user's only one waits its turn, so another
        user's waits behind at most one read of each other user. gate: the
        reads of its kind, one at a time (ListConnections' and ListInterfaces'
        by default, GetUsage's), each with its own turns: a user's GetUsage
        does not wait for its ListConnections, which waits behind everyone's
        (until review29 it did, so another user's flood of ListConnections
        held up root's usage view). A read whose caller left the bus while
        it waited is not done (review29: a user could queue 128 on a
        connection, drop it and queue again, each read what it chose)."""
        uid = await self._caller_uid(call.sender)
        gate = gate or self._slow_reads
        turn = self._slow_readers.setdefault((uid, gate), _Turn())
        turn.reads += 1
        sender = call.sender
        self._slow_senders[sender] = self._slow_senders.get(sender, 0) + 1
        try:
            async with turn.lock, gate:
                if sender in self._slow_senders_gone:  # no one can get its answer
                    raise HelperError(CALLER_LEFT_TEXT)
                return await asyncio.to_thread(read, *args)
        finally:
            turn.reads -= 1
            if not turn.reads:
                del self._slow_readers[(uid, gate)]
            self._slow_senders[sender] -= 1
            if not self._slow_senders[sender]:
                del self._slow_senders[sender]
                self._slow_senders_gone.discard(sender)

    @_handles("ListProcesses")
    async def _list_processes(self, call: _Call, grant: _Grant | None) -> list[Any]:
        app_id, only = await self._app_to_look_into(call)
        # off the engine thread (snap33): from the snapshot's processes and
        # counters, one at a time (each goes over the window's samples)
        processes = await self._slow_read(call, self._engine.list_processes, app_id, only,
                                          gate=self._process_reads)  # fmt: skip
        return [[encode_process(process) for process in processes]]

    async def _app_to_look_into(self, call: _Call) -> tuple[str, int | None]:
        """The resolved application whose processes a caller asks about, and
        whose processes of it to show (None: everyone's); someone else's is
        answered as one that does not exist. An application the snapshot
        lists as running with a process the viewer may see is taken from it
        (snap33: resolving on the engine thread waited behind a change's
        walks); any other id ("pid:N", one not running, someone else's) is
        resolved on the engine thread as before, so how long the answer
        takes tells a user nothing of other users' programs (review31)."""
        viewer = await self._viewer(call)
        only = None if viewer.sees_all else viewer.uid  # of a program others run too: one's own
        snapshot = self._engine.published()
        running = snapshot.running.get(call.args[0], ()) if snapshot else ()
        if any(only is None or process.uid == only for process in running):
            return call.args[0], only
        try:
            resolved = await self._resolves.submit(call.args[0])
        except NoSuchApplication:
            resolved = None
        if resolved is None or not (viewer.sees_all or viewer.uid in resolved.owner_uids):
            # The same answer whether it does not exist or is someone else's.
            raise NoSuchApplication(f"no application of yours is called {call.args[0]!r}")
        return resolved.app_id, only

    @_handles("GetUsage")
    async def _get_usage(self, call: _Call, grant: _Grant | None) -> list[Any]:
        viewer = await self._viewer(call)
        app_id, since, until, resolution = call.args

        def read_and_encode() -> list[Any]:
            return [
                encode_usage(row)
                for row in self._engine.usage(app_id, since, until, resolution, viewer)
            ]

        # Off the engine thread and the event loop (a month by day of 500
        # applications is 15,000 rows: tens of ms), and one at a time: a
        # flood of them costs one thread's work, not one per call; and of a
        # user's only one waits its turn, so another's waits behind at most
        # one of each user's (until 2026-12-06 behind every one queued).
        return [await self._slow_read(call, read_and_encode, gate=self._usage_queries)]

    @_handles("GetLimitsPaused")
    async def _get_limits_paused(self, call: _Call, grant: _Grant | None) -> list[Any]:
        snapshot = self._engine.published()
        return [
            snapshot.paused
            if snapshot
            else await self._engine_thread.run(self._engine.limits_paused)
        ]

    @_handles("SetLimitsPaused")
    async def _set_limits_paused(self, call: _Call, grant: _Grant | None) -> list[Any]:
        (paused,) = call.args
        # the run record says it (helper/run_state.py): a resume before the kernel
        # holds any limit again, a pause once it holds none (a kill between them,
        # or a failure, leaves "in force" said, never "none is in force" wrongly)
        if not paused and self.on_limits_paused is not None:
            self.on_limits_paused(False)
        await self._engine_thread.run(self._engine.set_limits_paused, paused)
        if paused and self.on_limits_paused is not None:
            self.on_limits_paused(True)
        log.info(
            "uid %d %s all limits",
            await self._caller_uid(call.sender),
            "paused" if paused else "resumed",
        )
        return []

    @_handles("SetLimit")
    async def _set_limit(self, call: _Call, grant: _Grant | None) -> list[Any]:
        assert grant is not None  # LimitAuthorization.BY_SCOPE
        uid = await self._caller_uid(call.sender)
        _, direction, rate_bps, burst_bytes, _scope = call.args
        result_id = await self._changes.submit(
            SetLimit(grant.app_id, direction, rate_bps, burst_bytes, grant.owner)
        )
        log.info(
            "uid %d set %s limit of %s (%s) to %d B/s (burst %s)",
            uid, direction.value, result_id, _whose(grant), rate_bps, burst_bytes or "default",
        )  # fmt: skip
        return [result_id]

    @_handles("ClearLimit")
    async def _clear_limit(self, call: _Call, grant: _Grant | None) -> list[Any]:
        assert grant is not None  # LimitAuthorization.BY_SCOPE
        uid = await self._caller_uid(call.sender)
        directions: tuple[Direction, ...] = call.args[1]
        result_id = await self._changes.submit(ClearLimit(grant.app_id, directions, grant.owner))
        log.info(
            "uid %d cleared %s limit of %s (%s)",
            uid, "+".join(d.value for d in directions), result_id, _whose(grant),
        )  # fmt: skip
        return [result_id]

    @_handles("SetSchedule")
    async def _set_schedule(self, call: _Call, grant: _Grant | None) -> list[Any]:
        assert grant is not None  # LimitAuthorization.BY_SCOPE
        uid = await self._caller_uid(call.sender)
        _, days, start, end, down_bps, up_bps, blocked, _scope = call.args
        change = AddSchedule(grant.app_id, days, start, end, down_bps, up_bps, grant.owner, blocked)
        result_id = await self._changes.submit(change)
        log.info("uid %d scheduled %s of %s (%s): down %d B/s, up %d B/s (0: none), blocked %s",
                 uid, call.message.body[1:4], result_id, _whose(grant), down_bps, up_bps,
                 "+".join(d.value for d in blocked) or "nothing")  # fmt: skip
        return [result_id]

    @_handles("ClearSchedules")
    async def _clear_schedules(self, call: _Call, grant: _Grant | None) -> list[Any]:
        assert grant is not None  # LimitAuthorization.BY_SCOPE
        uid = await self._caller_uid(call.sender)
        name: str = call.args[1]
        result_id = await self._changes.submit(RemoveSchedules(grant.app_id, name, grant.owner))
        log.info("uid %d removed %s of %s (%s)", uid, f"schedule {name}" if name else "every schedule",
                 result_id, _whose(grant))  # fmt: skip
        return [result_id]

    @_handles("SetBlocked")
    async def _set_blocked(self, call: _Call, grant: _Grant | None) -> list[Any]:
        assert grant is not None  # LimitAuthorization.BY_SCOPE
        uid = await self._caller_uid(call.sender)
        directions: tuple[Direction, ...] = call.args[1]
        blocked: bool = call.args[2]
        result_id = await self._changes.submit(
            SetBlocked(grant.app_id, directions, blocked, grant.owner)
        )
        log.info("uid %d %s %s of %s (%s)", uid, "blocked" if blocked else "unblocked",
                 "+".join(d.value for d in directions), result_id, _whose(grant))  # fmt: skip
        return [result_id]

    @_handles("SetQuota")
    async def _set_quota(self, call: _Call, grant: _Grant | None) -> list[Any]:
        assert grant is not None  # LimitAuthorization.BY_SCOPE
        uid = await self._caller_uid(call.sender)
        _, directions, budget, period, reset_minute, then_rate_bps, _scope = call.args
        quota = Quota(budget, Period(period), reset_minute, then_rate_bps)
        result_id = await self._changes.submit(
            SetQuota(grant.app_id, directions, quota, grant.owner)
        )
        log.info("uid %d set a %s quota of %d bytes per %s on %s (%s), then %s", uid,
                 "+".join(d.value for d in directions), budget, period, result_id, _whose(grant),
                 f"{then_rate_bps} B/s" if then_rate_bps else "blocked")  # fmt: skip
        return [result_id]

    @_handles("ClearQuota")
    async def _clear_quota(self, call: _Call, grant: _Grant | None) -> list[Any]:
        assert grant is not None  # LimitAuthorization.BY_SCOPE
        uid = await self._caller_uid(call.sender)
        directions: tuple[Direction, ...] = call.args[1]
        result_id = await self._changes.submit(ClearQuota(grant.app_id, directions, grant.owner))
        log.info("uid %d cleared the %s quota of %s (%s)", uid, "+".join(d.value for d in directions),
                 result_id, _whose(grant))  # fmt: skip
        return [result_id]

    @_handles("SetPriority")
    async def _set_priority(self, call: _Call, grant: _Grant | None) -> list[Any]:
        assert grant is not None  # LimitAuthorization.BY_SCOPE
        uid = await self._caller_uid(call.sender)
        priority = call.args[1]
        result_id = await self._changes.submit(SetPriority(grant.app_id, priority, grant.owner))
        log.info(
            "uid %d set the priority of %s (%s) to %s",
            uid,
            result_id,
            _whose(grant),
            priority.value,
        )
        return [result_id]

    @_handles("SetLinkCapacity")
    async def _set_link_capacity(self, call: _Call, grant: _Grant | None) -> list[Any]:
        down_bps, up_bps, estimate = call.args
        await self._engine_thread.run(self._engine.set_link_capacity, down_bps, up_bps, estimate)
        log.info("uid %d set the link capacity: down %d B/s, up %d B/s (0: not shaped), estimate %s",
                 await self._caller_uid(call.sender), down_bps, up_bps, estimate)  # fmt: skip
        return []

    @_handles("GetLinkShaping")
    async def _get_link_shaping(self, call: _Call, grant: _Grant | None) -> list[Any]:
        snapshot = self._engine.published()
        shaping = (
            snapshot.link_shaping
            if snapshot
            else await self._engine_thread.run(self._engine.link_shaping)
        )
        return [encode_link_shaping(shaping)]


def _raises_priority(call: _Call) -> bool:
    """SetPriority above normal (critical, high): it needs limit-any even for the caller's own rule."""
    return call.spec.name == "SetPriority" and call.args[1].rank < Priority.NORMAL.rank


def _whose(grant: _Grant) -> str:
    return "everyone's" if grant.owner == ADMIN_OWNER else "own"


def _handlers() -> dict[str, Handler]:
    """Each contract method's handler; the helper does not start unless every
    method has exactly one."""
    handlers: dict[str, Handler] = {}
    for attribute in vars(HelperService).values():
        method = getattr(attribute, _HANDLER_ATTRIBUTE, None)
        if method is not None:
            if method in handlers:
                raise LookupError(f"{method} has two handlers")
            handlers[method] = attribute
    if handlers.keys() != METHODS.keys():
        raise LookupError(f"methods without a handler: {sorted(METHODS.keys() - handlers.keys())}")
    return handlers


_HANDLERS = _handlers()
