"""The D-Bus contract between the root helper and its clients (GUI, CLI).

Stdlib only (with frozen_record, which is too): both sides import this
module, so it is the one place where the bus name, object path, interface,
API version, polkit action ids, error names and every method (METHODS:
arguments, polkit action, documentation) live.
``resources/io.github.chadthrottle.Helper1.xml`` is generated from it
(helper/adapter/introspection.py); a test keeps the shipped file equal to it.
"""

from __future__ import annotations

from enum import StrEnum

from chadthrottle.frozen_record import frozen_record

# 2: rules belong to an owner (RuleScope); SetLimit/ClearLimit take a scope;
# ListRules; ListApplications says whose limit it shows and what keeps it from
# being enforced. 3: GetUsage (usage history). 4: schedules (SetSchedule,
# ClearSchedules, ListSchedules); block and quotas (SetBlocked, SetQuota,
# ClearQuota; *_blocked, *_quota_* in ListApplications and ListRules).
# 5: priorities and link shaping (SetPriority, SetLinkCapacity, GetLinkShaping;
# priority*, rtt_us in ListApplications, priority in ListRules).
# 6: ListProcesses (each process's own rates and bytes, from the same counters);
# down_limit_reach, up_limit_reach in ListApplications (how a limit holds in
# each network namespace of the application).
# 7: down_measuring, up_measuring in ListApplications and ListProcesses (a
# direction whose rate window restarted at a rule change has no rate yet; in
# ListApplications also an application's first tick, as at the helper's start).
# 8: quota_period_start, quota_period_end, quota_start_offset_s,
# quota_end_offset_s in ListRules (the current period of a quota as the helper
# counts it, and its zone's UTC offset at each end: clients no longer guess the
# helper's zone).
# 9: counted_through_ns in ListApplications (the moment before which every
# process's first socket was read and named before the counters listed were
# read: a client can wait for traffic it made to be attributed, not on quiet).
API_VERSION = 9

BUS_NAME = "io.github.chadthrottle.Helper1"
OBJECT_PATH = "/io/github/chadthrottle/Helper1"
INTERFACE = "io.github.chadthrottle.Helper1"
INTROSPECTION_XML = "io.github.chadthrottle.Helper1.xml"  # in chadthrottle.resources

ERROR_PREFIX = "io.github.chadthrottle.Error."


class ErrorName(StrEnum):
    """Named D-Bus errors a caller can act on. No other error crosses the bus
    except FAILED, which carries a generic message and never a traceback."""

    NOT_AUTHORIZED = ERROR_PREFIX + "NotAuthorized"
    INVALID_ARGUMENT = ERROR_PREFIX + "InvalidArgument"
    NO_SUCH_APPLICATION = ERROR_PREFIX + "NoSuchApplication"
    BACKEND_UNAVAILABLE = ERROR_PREFIX + "BackendUnavailable"
    FAILED = ERROR_PREFIX + "Failed"


class Action(StrEnum):
    """polkit action ids, declared in resources/io.github.chadthrottle.policy."""

    MONITOR = "io.github.chadthrottle.monitor"
    LIMIT_OWN = "io.github.chadthrottle.limit-own"
    LIMIT_ANY = "io.github.chadthrottle.limit-any"
    CONFIGURE = "io.github.chadthrottle.configure"


class Direction(StrEnum):
    """Traffic direction as seen from the application."""

    DOWN = "down"
    UP = "up"


# Accepted by ClearLimit in addition to the two directions.
BOTH_DIRECTIONS = "both"

# An application id as the helper prints it is "<kind>:<value>", e.g.
# "app:org.mozilla.firefox" or "exe:/usr/bin/curl". Callers may also name the
# application of one process as "pid:<N>".
PID_APP_PREFIX = "pid:"
# The kinds of stable application id the helper produces and accepts: a desktop
# app (its scope, a Flatpak, or a program its .desktop file runs), a snap, a
# system service's unit, an AppImage's path, an interpreted script's path, or
# an executable path ("flatpak" is accepted, never emitted: Flatpaks are "app").
# Identity code must only emit these; the adapter rejects any other kind
# before the engine sees it.
APP_ID_KINDS = frozenset({"app", "flatpak", "snap", "unit", "appimage", "script", "exe"})
MAX_APP_ID_LENGTH = 512

# Bounds for a limit, bytes per second on the wire at L3 (IP header included).
MIN_RATE_BPS = 1_000
MAX_RATE_BPS = 100_000_000_000  # 800 Gbit/s: anything above is a typo
MAX_BURST_BYTES = 1_000_000_000
# The smallest burst a caller may ask for: two 64 KB GSO super-packets (the
# kernel hands the backends whole ones; a smaller burst under-delivers).
# 0 (not in range) asks for the default burst for the rate. The one public
# floor: the backends size their own buckets and queues above it.
GSO_PACKET_BYTES = 64 * 1024
MIN_BURST_BYTES = 2 * GSO_PACKET_BYTES
# tc: an upload limit up to this sends at most two frames at once, whatever its
# burst, a download DOWNLOAD_BURST_S of its rate (its class cuts GSO packets:
# helper/kernel/tbf_leaf.py); a download only if its class never passed whole
# packets above it (helper/kernel/htb.py, _cuts and _class_burst)
CUT_UP_TO_BPS = 2 << 20
# (a download's: what its clamped senders keep queued at its class; the
# receive window's clamp, helper/kernel/socket_tagging.py WINDOW_QUEUE_US, is
# taken from it)
DOWNLOAD_BURST_S = 0.05
# Of a limit divided between network namespaces, what each namespace where
# the application has processes keeps even without traffic (so a connection
# that starts there can show it wants more; helper/kernel/namespace_shares.py).
NAMESPACE_FLOOR = 0.02
# What a burst sizes where the policer holds a limit (the ebpf backend, or a
# path tc cannot shape): its bucket is the largest of the burst, these bytes and
# this much of the rate (docs/backends.md, "Why the burst floor is 0.3 s of the rate").
POLICER_MIN_BUCKET_BYTES = 4 * GSO_PACKET_BYTES
POLICER_MIN_BUCKET_S = 0.3
# What one limit holds, said by SetLimit, `chadthrottle-ctl limit` and the limit
# field's tooltip; ListApplications' *_limit_reach says which case applies to each
# limit now (measured: docs/backends.md, "One limit over several namespaces";
# bench/namespace_share.py).
LIMIT_REACH = (
    "A limit holds the sum of the application's traffic, whichever uplinks and network namespaces "
    "of this machine it uses. When its connections are in several network namespaces at once, how "
    "the sum is shared depends on what holds it there: where the tc backend shapes each of those "
    "namespaces, the limit is divided between them by what each uses, measured every second (those "
    "that want more share it equally, what one leaves unused goes to the others, a namespace "
    f"without traffic keeps {NAMESPACE_FLOOR:.0%} of it); with the ebpf backend, or where a namespace "
    "cannot be shaped, the policer holds the sum, first come first served, not divided by use. "
    "ListApplications (`chadthrottle-ctl list`, the window's detail pane) says which holds each limit."
)
# A limit's problem (ListApplications' *_limit_problem) that begins with
# NOT_MET_PREFIX says the limit is enforced but the application was measured
# above it for seconds ("not met: measured 9.10 MB/s, above the limit for 5 s");
# any other non-empty problem says it is not enforced (paused, a filter someone
# put first, the kernel refused). Neither is a limit in force. An older client
# shows the whole text as a problem, as it did before the prefix.
NOT_MET_PREFIX = "not met: "
# The problem of every limit while the user has paused them all: the helper says it,
# the window says it of its own while paused, and alerts are not raised for it.
PAUSED_PROBLEM = "limits are paused"
NOT_MET, NOT_ENFORCED = "not met", "not enforced"


# In a limit's problem while the kernel refused the last write of its block or
# quota and keeps the setting before (a block, a spent quota) until its lease
# lapses (helper/engine/rule_listing.py): the direction is listed blocked, and
# the kernel does block it for now. The window says it blocked, not "traffic
# flows". Plain words: users do not know the helper's gates (until 2026-12-06
# "its gate keeps what it held before"); the window keys on the constant.
HELD_BEFORE = "it keeps the previous setting"


def is_held_before(problem: str) -> bool:
    """The kernel still holds the block or spent quota a refused write was to change."""
    return HELD_BEFORE in problem


# At the end of a limit's problem while the kernel's count of its quota could not
# be read (helper/engine/rule_listing.py): its gate is renewed as last set, so the
# kernel holds that quota (ListRules in_force true); only what is left is unknown.
# Not a limit left unenforced: the window and the CLI said "Not enforced: ... the
# kernel holds it" until 2026-12-06; they key on the constant.
COUNT_UNKNOWN = "the kernel holds it as last set, what is left of it is not known"


def is_count_unknown(problem: str) -> bool:
    """The kernel holds the quota as last set; how much of it is left is not known."""
    return problem.endswith(COUNT_UNKNOWN)


def is_not_met(problem: str) -> bool:
    """The limit is enforced but measured above it, not left unenforced."""
    return problem.startswith(NOT_MET_PREFIX)


def limit_problem_words(problem: str) -> tuple[str, str]:
    """(NOT_MET or NOT_ENFORCED, the reason without the prefix) for a non-empty
    limit problem, so the CLI and the window word it alike."""
    if is_not_met(problem):
        return NOT_MET, problem.removeprefix(NOT_MET_PREFIX)
    return NOT_ENFORCED, problem


# What estimating the link capacity costs the calls it protects (measured:
# docs/benchmarks.md, "Quiet reruns"; bench/capacity_follow.py): each try of a
# faster rate that fails puts a moment of queue at the modem.
ESTIMATE_COST = (
    "While it estimates, each try of a faster rate can delay calls by 0.1 s or more; "
    "a capacity you set keeps them smoothest."
)
# Bounds for a quota, L3 bytes per period (0 is no quota: refused, use ClearQuota).
MIN_QUOTA_BYTES = 1_000
MAX_QUOTA_BYTES = 2**50  # a petabyte: anything above is a typo
# A block (and a spent quota) is held by the kernel only while the helper
# renews it, every tick: a helper that is killed or hangs lets traffic through
# again within this many seconds (fail open; helper/kernel/gates.py).
BLOCK_LEASE_S = 3.0
# The helper's tick: counters read, rates listed, limits judged, once a second.
TICK_INTERVAL_S = 1.0
# Listed rates are the mean over this many ticks: a TCP sender held back by a
# limit sends in bursts, and a one-second window shows those bursts, not its
# rate (helper/engine/rates.py).
RATE_WINDOW_TICKS = 2
# An application whose rules change (a limit, block, quota or priority set or
# cleared, limits paused, a schedule switched) has its window restarted at the
# change, and one whose quota ran out, or is whole again in a new period, at
# the tick that saw it (the kernel's gate turned within the tick before): the
# first tick after it, at most this long later, lists only what
# passed under the new rules (helper/engine/rates.py RateMeter.restart; the
# GUI's "avg" beside a limit counts the polls from this long after the helper
# confirmed it). Until that tick the direction is listed as measuring
# (down_measuring, up_measuring: API 7), not at its rate from before; only
# the directions whose rules changed restart.
RATES_UNDER_NEW_RULES_AFTER_S = TICK_INTERVAL_S
# What a quota's period may be (helper/engine/quotas.py Period).
QUOTA_PERIODS = ("day", "week", "month")


class RuleScope(StrEnum):
    """Whose processes a rule applies to.

    OWN: only the caller's own processes of the application (the rule belongs to
    the caller's uid; needs LIMIT_OWN). ALL: every user's processes (an
    administrator rule; needs LIMIT_ANY). An administrator rule on an
    application outranks every user rule on it while it exists. DEFAULT ("")
    is ALL for root and OWN for everyone else."""

    OWN = "own"
    ALL = "all"
    DEFAULT = ""


# The owner of an administrator (RuleScope.ALL) rule in ListRules and
# ListApplications; a user rule's owner is its uid.
ADMIN_OWNER = -1
# A user may keep rules for at most this many applications (administrators
# are bounded only by the kernel's slots).
MAX_RULES_PER_USER = 256


class LimitAuthorization(StrEnum):
    """How a method that changes a limit is authorized: by its RuleScope
    argument (the last one), LIMIT_OWN for OWN and LIMIT_ANY for ALL, asked
    before the helper looks anything up."""

    BY_SCOPE = "by-scope"


class ArgForm:
    """What the value of an input argument must be, beyond its D-Bus type.
    The helper checks every form (helper/adapter/validation.py, VALIDATORS);
    plain strings, not an Enum: every chadthrottle-ctl call imports this module."""

    APP_ID = "app-id"  # "<kind>:<value>" (kind in APP_ID_KINDS) or "pid:<N>"
    DIRECTION = "direction"  # a Direction value
    DIRECTIONS = "directions"  # a Direction value or BOTH_DIRECTIONS
    RATE_BPS = "rate-bps"  # MIN_RATE_BPS..MAX_RATE_BPS
    BURST_BYTES = "burst-bytes"  # 0 (the default) or MIN_BURST_BYTES..MAX_BURST_BYTES
    SCOPE = "scope"  # a RuleScope value
    PAUSED = "paused"  # a boolean
    USAGE_APP_ID = (
        "usage-app-id"  # "", usage_contract.OTHER_APPLICATIONS_ID or a stable id (no pid:)
    )
    UNIX_TIME = "unix-time"  # unix seconds, 0..validation.MAX_UNIX_TIME
    USAGE_RESOLUTION = "usage-resolution"  # a usage_contract.UsageResolution value
    BLOCKED = "blocked"  # a boolean
    QUOTA_BYTES = "quota-bytes"  # MIN_QUOTA_BYTES..MAX_QUOTA_BYTES
    QUOTA_PERIOD = "quota-period"  # one of QUOTA_PERIODS
    RESET_MINUTE = "reset-minute"  # minute of the local day, 0..1439
    THEN_RATE_BPS = "then-rate-bps"  # 0 (block when spent) or MIN_RATE_BPS..MAX_RATE_BPS
    DAYS = "days"  # "mon-fri", "sat,sun", "mon,wed-fri", "daily", "weekdays", "weekend"
    CLOCK_TIME = "clock-time"  # "HH:MM", 00:00..23:59, the helper's local time
    SCHEDULE_RATE_BPS = (
        "schedule-rate-bps"  # 0 (this direction not limited) or MIN_RATE_BPS..MAX_RATE_BPS
    )
    SCHEDULE_BLOCK = "schedule-block"  # "" (no block), a Direction value or BOTH_DIRECTIONS
    SCHEDULE_NAME = "schedule-name"  # a schedule as ListSchedules names it ("mon-fri 09:00-17:00"), or "" for all
    PRIORITY = "priority"  # a chadthrottle.priority.Priority value: critical, high, normal, low
    CAPACITY_BPS = "capacity-bps"  # 0 (that direction not shaped) or MIN_RATE_BPS..MAX_RATE_BPS
    ESTIMATE = "estimate"  # a boolean


class CallCheck:
    """A check on a whole call, after each argument's form (validation.CALL_CHECKS)."""

    NONE = ""
    # The last two unix times before the resolution are [since, until): until 0
    # is now, and since must come before until.
    USAGE_RANGE = "usage-range"
    # SetSchedule: from and to differ, and at least one direction is limited.
    SCHEDULE = "schedule"


class Arg:
    """One argument of a method: its name and D-Bus type as the introspection
    XML shows them and, for an input, the ArgForm its value must have."""

    __slots__ = ("form", "name", "signature")

    def __init__(self, name: str, signature: str, form: str = "") -> None:
        self.name, self.signature, self.form = name, signature, form

    def __repr__(self) -> str:
        return f"Arg({self.name!r}, {self.signature!r}, {self.form!r})"


class MethodSpec:
    """One exported method, declared once: its D-Bus signatures, the polkit
    action it needs, its arguments and its documentation. The helper checks
    the arguments and dispatches by it, the clients call by it, and the
    introspection XML is generated from it (helper/adapter/introspection.py).
    A plain class, not a dataclass: generating one costs every
    chadthrottle-ctl call ~0.25 ms."""

    __slots__ = (
        "action",
        "call_check",
        "doc",
        "in_args",
        "in_signature",
        "name",
        "out_args",
        "out_signature",
    )

    def __init__(
        self,
        name: str,
        in_signature: str,
        out_signature: str,
        action: Action | LimitAuthorization,
        in_args: tuple[Arg, ...] = (),
        out_args: tuple[Arg, ...] = (),
        doc: str = "",  # the XML's DocString; the polkit action is appended for an Action
        call_check: str = CallCheck.NONE,
    ) -> None:
        self.name, self.in_signature, self.out_signature, self.action = (
            name,
            in_signature,
            out_signature,
            action,
        )
        self.in_args, self.out_args, self.doc, self.call_check = in_args, out_args, doc, call_check

    def __repr__(self) -> str:
        return f"MethodSpec({self.name!r}, {self.in_signature!r}, {self.out_signature!r}, {self.action!r})"

    def body(self, **values: object) -> list[object]:
        """The call's body from its arguments by name, in the declared order."""
        names = [arg.name for arg in self.in_args]
        if sorted(values) != sorted(names):
            raise TypeError(f"{self.name} takes {names}, not {sorted(values)}")
        return [values[name] for name in names]


def _method(
    name: str,
    action: Action | LimitAuthorization,
    doc: str,
    in_args: tuple[Arg, ...] = (),
    out_args: tuple[Arg, ...] = (),
    call_check: str = CallCheck.NONE,
) -> MethodSpec:
    """A MethodSpec whose signatures are its arguments' types, in order."""
    in_signature = "".join(arg.signature for arg in in_args)
    out_signature = "".join(arg.signature for arg in out_args)
    return MethodSpec(name, in_signature, out_signature, action, in_args, out_args, doc, call_check)


_APP_ID = Arg("app_id", "s", ArgForm.APP_ID)
_SCOPE = Arg("scope", "s", ArgForm.SCOPE)
_RESOLVED_APP_ID = Arg("resolved_app_id", "s")

METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        _method(
            "GetApiVersion", Action.MONITOR,
            "The API version of this interface (2: rules have owners and SetLimit/ClearLimit a scope; "
            "ListRules; 3: GetUsage; 4: SetSchedule, ClearSchedules, ListSchedules, SetBlocked, SetQuota, "
            "ClearQuota and the blocked and quota keys of ListApplications and ListRules; 5: SetPriority, "
            "SetLinkCapacity, GetLinkShaping and the priority keys of ListApplications and ListRules; "
            "6: ListProcesses, and the limit_reach keys of ListApplications; 7: the measuring keys of "
            "ListApplications and ListProcesses; 8: the quota period keys of ListRules).",
            out_args=(Arg("version", "u"),),
        ),
        _method(
            "ListApplications", Action.MONITOR,
            "Every application with an open socket or recent traffic. Keys: id s, name s, icon s, uids au, "
            "pids au, down_bps d, up_bps d, rx_bytes t, tx_bytes t, down_limit_bps t, up_limit_bps t "
            "(0 = no limit; the limit in force for the caller's processes: the administrator's rule, else "
            "the caller's own; a caller who may limit any application also sees the rule of the "
            "application's one user), loopback_down_bps d, loopback_up_bps d, running b, down_limit_owner x, "
            "up_limit_owner x (whose rule: -1 the administrator's, else a uid), down_limit_problem s, "
            "up_limit_problem s (why that limit is not enforced now, or, beginning 'not met: ', that it is "
            "enforced but the application was measured above it for seconds; empty when it is in force "
            "and met), down_schedule s, "
            "up_schedule s (the schedule that sets that limit now, empty when none does), priority s "
            "(critical, high, normal or low: the rule's in force for the caller), priority_owner x, "
            "priority_problem s (why that priority is not in force now, empty when it is), rtt_us u (median "
            "smoothed round-trip time of its established TCP sockets, microseconds; 0 unknown), "
            "down_limit_reach s, up_limit_reach s (API 6: how that limit holds in each network namespace "
            "of the application's processes where it is not simply the backend's one path: divided by "
            "demand where tc shapes each namespace, or the sum held by the policer, and why; also how many "
            "of its processes still have open sockets not held, their descriptors being walked a bounded "
            "time each tick; empty for one namespace the backend holds as usual), down_measuring b, up_measuring b (API 7: that "
            "direction's rules changed and its rate is being measured afresh, from the change to the next "
            "tick, or the helper has no earlier reading of the application (the first tick that lists it, "
            "as every application at the helper's start): no rate is known, and down_bps or up_bps is 0 "
            "and says nothing; a direction whose rules did not change keeps its rate), counted_through_ns t (API 9: a CLOCK_MONOTONIC time of the helper's "
            "machine, in ns, the same in every entry: every socket the datapath announced as a process's first "
            "before it was read, its process named, before the counters listed here were read; 0 not yet; a "
            "client waits for it to pass a moment to know the traffic made before that moment attributed, "
            "however late the helper runs). Callers who may not "
            "limit any application see only their own applications and their own rules. Clients must "
            "ignore unknown keys.",
            out_args=(Arg("applications", "aa{sv}"),),
        ),
        _method(
            "ListBackends", Action.MONITOR,
            "Every enforcement backend, available or not. Keys: name s, available b, reason s (why it is "
            "unavailable), active_directions as, notes s (where it cannot do its best now and what holds "
            "the limits there instead, e.g. tc: policed, not shaped: ...).",
            out_args=(Arg("backends", "aa{sv}"),),
        ),
        _method(
            "ListConnections", Action.MONITOR,
            "The open sockets of one application (its processes' TCP and UDP sockets, in any network "
            "namespace). Keys: protocol s (tcp or udp), local s and remote s (address:port, IPv6 in "
            "brackets), state s, pid u, rx_bytes x and tx_bytes x (the socket's own bytes received and sent "
            "since it opened: TCP payload from the kernel's tcp_info, bytes_received and bytes_acked; -1 "
            "where the kernel counts none, as for UDP; absent from older helpers). Clients must ignore "
            "unknown keys. Callers who may not limit any application only see their own "
            "applications' connections; another user's application is answered as NoSuchApplication, like "
            "one that does not exist.",
            in_args=(_APP_ID,),
            out_args=(Arg("connections", "aa{sv}"),),
        ),
        _method(
            "ListProcesses", Action.MONITOR,
            "The running processes of one application with their own traffic, from the counters its "
            "rates come from (per socket owner: the process that created the socket). Keys: pid u, "
            "name s (its comm, escaped), down_bps d, up_bps d, rx_bytes t, tx_bytes t (since the helper "
            "started counting it), loopback_down_bps d, loopback_up_bps d (loopback apart, as in "
            "ListApplications), down_measuring b, up_measuring b (API 7: as in ListApplications). Over "
            "the same window as ListApplications, so an unlimited application's "
            "rates are its processes' summed, but for processes that exited in the last two seconds. "
            "Clients must ignore unknown keys. Access as ListConnections.",
            in_args=(_APP_ID,),
            out_args=(Arg("processes", "aa{sv}"),),
        ),
        _method(
            "ListInterfaces", Action.MONITOR,
            "Traffic per network interface, counted at the sockets (every application, attributed or not), "
            "for totals per interface and for the machine. An interface is (netns, ifindex): every network "
            "namespace numbers its devices from 1. Keys: name s (the device's name in its namespace, or "
            "empty if it could not be found), ifindex u, netns s (empty for the helper's namespace, else "
            "its ip-netns name or net:[inode] or netns:cookie), loopback b, rx_bytes t, tx_bytes t, "
            "down_bps d, up_bps d.",
            out_args=(Arg("interfaces", "aa{sv}"),),
        ),
        _method(
            "SetLimit", LimitAuthorization.BY_SCOPE,
            "Limit one direction of an application, on its open connections and new ones. app_id: an id "
            "from ListApplications or pid:N. direction: down or up. "
            f"rate_bps: {MIN_RATE_BPS}..{MAX_RATE_BPS}. "
            f"burst_bytes: 0 for the default, else {MIN_BURST_BYTES}..{MAX_BURST_BYTES}. What it sizes "
            "depends on what holds the limit on each path: where tc shapes, the class's burst, except that "
            f"a limit of up to {CUT_UP_TO_BPS >> 20} MiB/s with no link capacity sends at most two "
            f"frames at once whatever its burst, a download {DOWNLOAD_BURST_S * 1000:.0f} ms of its rate "
            "(a leaf that cuts GSO packets; a download only if it was not "
            "above that since its class was made; a kernel without TBF gets the burst as given); where the policer holds it (the ebpf backend, a path tc cannot "
            "shape), its bucket: the largest of the burst, "
            f"{POLICER_MIN_BUCKET_BYTES >> 10} KiB and {POLICER_MIN_BUCKET_S} s of the rate. scope: own (the "
            f"rule applies only to the caller's own processes of the application; polkit action "
            f"{Action.LIMIT_OWN.value}; a pid:N must be the caller's process), all (an administrator rule "
            f"for every user's processes, which outranks users' rules; {Action.LIMIT_ANY.value}), or empty "
            "(all for root, own for anyone else). polkit is asked before anything is looked up. "
            f"{LIMIT_REACH} Returns the resolved application id.",
            in_args=(
                _APP_ID,
                Arg("direction", "s", ArgForm.DIRECTION),
                Arg("rate_bps", "t", ArgForm.RATE_BPS),
                Arg("burst_bytes", "t", ArgForm.BURST_BYTES),
                _SCOPE,
            ),
            out_args=(_RESOLVED_APP_ID,),
        ),
        _method(
            "ClearLimit", LimitAuthorization.BY_SCOPE,
            "Remove an application's limit from the caller's own rule (scope own) or the administrator's "
            "(all). direction: down, up or both. Returns the resolved application id. polkit action: as "
            "for SetLimit.",
            in_args=(_APP_ID, Arg("direction", "s", ArgForm.DIRECTIONS), _SCOPE),
            out_args=(_RESOLVED_APP_ID,),
        ),
        _method(
            "ListRules", Action.MONITOR,
            "The stored rules, one entry per rule and direction: every rule for a caller who may limit any "
            "application, else the caller's own and the administrator's. Keys: app_id s, direction s, "
            "rate_bps t, burst_bytes t, owner x (-1 the administrator: every user's processes; else the uid "
            "whose processes it applies to), in_force b (false while an administrator rule outranks it, "
            "limits are paused, or the kernel did not take its block or quota: ListApplications' "
            "*_limit_problem says why), priority s (normal when none; a priority-only rule has rate_bps 0), "
            "blocked b, quota_bytes t, quota_period s, quota_reset_minute u, quota_then_bps t, "
            "quota_left_bytes t, and (API 8) quota_period_start x, quota_period_end x (unix seconds: when the "
            "quota's current period began and when the next begins, as the helper counts them, at "
            "quota_reset_minute of its local clock; 0 without a quota), quota_start_offset_s i, "
            "quota_end_offset_s i (the helper's local time's offset east of UTC, seconds, at each: they "
            "differ when its clocks change within the period). Clients must ignore unknown keys.",
            out_args=(Arg("rules", "aa{sv}"),),
        ),
        _method(
            "SetLimitsPaused", Action.LIMIT_ANY,
            "Pause (true) or resume (false) every limit at once. While paused the limits stay stored and "
            "listed by ListApplications, but none is enforced: traffic flows unlimited. Resuming enforces "
            "them again, on open connections too. The paused state is stored with the limits and survives "
            "a helper restart. Pausing or resuming what already is changes nothing. It affects every "
            "user's limits.",
            in_args=(Arg("paused", "b", ArgForm.PAUSED),),
        ),
        _method(
            "GetLimitsPaused", Action.MONITOR,
            "Whether limits are paused (SetLimitsPaused).",
            out_args=(Arg("paused", "b"),),
        ),
        _method(
            "SetSchedule", LimitAuthorization.BY_SCOPE,
            "Limit an application only on some days between two times of the helper's local clock, on top "
            "of the caller's (or the administrator's) rule: while active, its rates replace that rule's "
            "plain limit for their direction; it switches on and off within a second of the minute. days: "
            "mon..sun, ranges (mon-fri), lists (sat,sun) or daily, weekdays, weekend. start, end: HH:MM; "
            "end at or before start runs past midnight into the next day; start equal to end is refused. "
            "A start or end the local zone skips on one of those days within a year (clocks going forward) "
            "is refused; in the hour repeated when clocks go back the schedule follows the wall clock both "
            f"times. down_bps, up_bps: 0 (that direction not limited) or {MIN_RATE_BPS}..{MAX_RATE_BPS}; "
            "blocked: the directions the schedule blocks instead (empty, down, up or both; not one it "
            "limits); at least one rate or block. A rate replaces only the plain rate: the rule's plain "
            "block and quota stay in force. A schedule that overlaps one of the same rule is refused; at "
            "most 16 per rule. scope and polkit action: as for SetLimit. Returns the resolved application id.",
            in_args=(
                _APP_ID,
                Arg("days", "s", ArgForm.DAYS),
                Arg("start", "s", ArgForm.CLOCK_TIME),
                Arg("end", "s", ArgForm.CLOCK_TIME),
                Arg("down_bps", "t", ArgForm.SCHEDULE_RATE_BPS),
                Arg("up_bps", "t", ArgForm.SCHEDULE_RATE_BPS),
                Arg("blocked", "s", ArgForm.SCHEDULE_BLOCK),
                _SCOPE,
            ),
            out_args=(_RESOLVED_APP_ID,),
            call_check=CallCheck.SCHEDULE,
        ),
        _method(
            "ClearSchedules", LimitAuthorization.BY_SCOPE,
            "Remove one schedule of an application's rule by its name as ListSchedules gives it "
            "(\"mon-fri 09:00-17:00\"), or every one (empty name). InvalidArgument when there is no such "
            "schedule. Returns the resolved application id. polkit action: as for SetLimit.",
            in_args=(_APP_ID, Arg("name", "s", ArgForm.SCHEDULE_NAME), _SCOPE),
            out_args=(_RESOLVED_APP_ID,),
        ),
        _method(
            "ListSchedules", Action.MONITOR,
            "The stored schedules: every one for a caller who may limit any application, else the caller's "
            "own and the administrator's. Keys: app_id s, owner x (as in ListRules), name s (days, start "
            "and end as one text, unique within a rule), days s, start s, end s (HH:MM, local time), "
            "down_bps t, up_bps t (0: not limited), down_blocked b, up_blocked b, active b (in its time now).",
            out_args=(Arg("schedules", "aa{sv}"),),
        ),
        _method(
            "SetBlocked", LimitAuthorization.BY_SCOPE,
            "Block (true) or unblock (false) one direction of an application, or both: while blocked no "
            "packet of its sockets passes, open connections included (dropped, not reset: TCP connections "
            "resume when it is lifted), whatever the backend, device or network namespace. A rate limit on "
            "the same direction is kept and applies again once unblocked. The block is held by the kernel "
            f"while the helper runs; a helper that is killed lets traffic through again within {BLOCK_LEASE_S:g} s (fail "
            "open) and the next start blocks again. direction: down, up or both. scope and polkit action: "
            "as for SetLimit. Returns the resolved application id.",
            in_args=(_APP_ID, Arg("direction", "s", ArgForm.DIRECTIONS), Arg("blocked", "b", ArgForm.BLOCKED),
                     _SCOPE),
            out_args=(_RESOLVED_APP_ID,),
        ),
        _method(
            "SetQuota", LimitAuthorization.BY_SCOPE,
            "Give one direction of an application, or each of both, a budget of quota_bytes (L3 bytes on "
            f"the wire, {MIN_QUOTA_BYTES}..{MAX_QUOTA_BYTES}) per period: day, week (from Monday) or month "
            "(from the 1st), each beginning reset_minute (0..1439) past the helper's local midnight. The "
            "kernel counts every packet and stops the direction once the budget is spent (at most one "
            "packet per socket beyond it); then it stays blocked (then_rate_bps 0) or is limited to "
            f"then_rate_bps ({MIN_RATE_BPS}..{MAX_RATE_BPS}) until the next period. Setting a quota again "
            "keeps what was used in the current period. scope and polkit action: as for SetLimit. Returns "
            "the resolved application id.",
            in_args=(
                _APP_ID,
                Arg("direction", "s", ArgForm.DIRECTIONS),
                Arg("quota_bytes", "t", ArgForm.QUOTA_BYTES),
                Arg("period", "s", ArgForm.QUOTA_PERIOD),
                Arg("reset_minute", "u", ArgForm.RESET_MINUTE),
                Arg("then_rate_bps", "t", ArgForm.THEN_RATE_BPS),
                _SCOPE,
            ),
            out_args=(_RESOLVED_APP_ID,),
        ),
        _method(
            "ClearQuota", LimitAuthorization.BY_SCOPE,
            "Remove the quota of one direction of an application, or both. What the current period used is "
            "forgotten: a quota set again counts from zero (SetQuota without clearing keeps it). Returns the "
            "resolved application id. polkit action: as for SetLimit.",
            in_args=(_APP_ID, Arg("direction", "s", ArgForm.DIRECTIONS), _SCOPE),
            out_args=(_RESOLVED_APP_ID,),
        ),
        _method(
            "SetPriority", LimitAuthorization.BY_SCOPE,
            "Give an application a priority: critical, high, normal or low. Under load, while a link "
            "capacity is set (SetLinkCapacity), the link serves higher priorities first, up to the capacity; "
            "applications of one priority share what is left fairly; nothing is held back while the link is "
            "idle, and a limit of the application still holds inside its priority. normal removes the "
            "priority (a rule left with nothing is removed). scope and polkit action: as for SetLimit, "
            f"except that critical and high need {Action.LIMIT_ANY.value} whatever the scope (served ahead "
            "of everyone else, they take the link from other users; scope own still makes the rule the "
            "caller's, for the caller's processes). Returns the resolved application id.",
            in_args=(_APP_ID, Arg("priority", "s", ArgForm.PRIORITY), _SCOPE),
            out_args=(_RESOLVED_APP_ID,),
        ),
        _method(
            "SetLinkCapacity", Action.CONFIGURE,
            "The rate of the real bottleneck (usually the modem), per direction, L3 bytes/s: the helper "
            "shapes the whole machine's traffic just under it, so the queue forms here, ordered by priority. "
            f"down_bps, up_bps: 0 (that direction not shaped) or {MIN_RATE_BPS}..{MAX_RATE_BPS}. estimate: "
            "the helper estimates the capacity and follows it (a non-zero value is where it starts). All "
            f"zero and false: link shaping off. Stored with the rules; survives a restart. {ESTIMATE_COST}",
            in_args=(Arg("down_bps", "t", ArgForm.CAPACITY_BPS), Arg("up_bps", "t", ArgForm.CAPACITY_BPS),
                     Arg("estimate", "b", ArgForm.ESTIMATE)),
        ),
        _method(
            "GetLinkShaping", Action.MONITOR,
            "The link shaping in force. Keys: down_capacity_bps t, up_capacity_bps t (the capacity in force "
            "now, set or estimated; 0 none), down_set_bps t, up_set_bps t (what was set), estimate b, "
            "down_shaping b, up_shaping b (the link tree is on the kernel now for that direction), interfaces "
            "as (the uplinks it holds), problem s (why shaping asked for is not (wholly) done; empty when fine).",
            out_args=(Arg("shaping", "a{sv}"),),
        ),
        # Its values and fields are in chadthrottle.usage_contract (kept out of
        # this module: every chadthrottle-ctl call imports it); a test checks
        # the numbers below against it.
        _method(
            "GetUsage", Action.MONITOR,
            "Usage history: bytes per application and period. app_id: an id as ListApplications shows it, "
            "(other), or empty for every application the caller may see (no pid:N). since_unix, "
            "until_unix: unix seconds; the periods whose stored rows begin in [since, until) are summed "
            "(until 0 = now). resolution: minute (kept for a day), hour (90 days), day (two years) or month "
            "(summed from days); days and months begin at the helper's local midnight. Keys: app_id s, "
            "start x, end x (the period, unix seconds), down_bytes t, up_bytes t (on the wire at L3, "
            "loopback excluded), loopback_down_bytes t, loopback_up_bytes t. The application (other) holds "
            "a user's least active applications when more moved bytes in one minute than the helper keeps. "
            "A caller who may not limit any application sees only the usage of their own processes. At "
            "most 50000 rows (InvalidArgument beyond). Written to disk once a minute, up to date to the "
            "last second.",
            in_args=(
                Arg("app_id", "s", ArgForm.USAGE_APP_ID),
                Arg("since_unix", "x", ArgForm.UNIX_TIME),
                Arg("until_unix", "x", ArgForm.UNIX_TIME),
                Arg("resolution", "s", ArgForm.USAGE_RESOLUTION),
            ),
            out_args=(Arg("usage", "aa{sv}"),),
            call_check=CallCheck.USAGE_RANGE,
        ),
    )
}  # fmt: skip

# Keys and D-Bus types of one entry of ListApplications.
APPLICATION_FIELDS: dict[str, str] = {
    "id": "s",  # stable identity a rule is stored against
    "name": "s",  # display name (.desktop Name= or executable name)
    "icon": "s",  # icon name or absolute path, "" for the generic icon
    "uids": "au",  # owners of the processes
    "pids": "au",
    "down_bps": "d",  # measured, bytes/s at L3
    "up_bps": "d",
    "rx_bytes": "t",  # totals since the helper started
    "tx_bytes": "t",
    "down_limit_bps": "t",  # 0 = no limit
    "up_limit_bps": "t",
    # Loopback traffic (to this machine itself) is counted apart, so a UI can
    # hide it; the rates and totals above exclude it.
    "loopback_down_bps": "d",
    "loopback_up_bps": "d",
    "running": "b",  # False: every process exited; listed a short while with its totals
    # Whose rule the limit above is: ADMIN_OWNER or a uid (meaningless at limit 0).
    # The limit shown is the one in force for the caller's processes: the
    # administrator's rule, else the caller's own; a caller who sees every
    # application (LIMIT_ANY) sees the rule of the application's one user.
    "down_limit_owner": "x",
    "up_limit_owner": "x",
    # Why that limit is not (wholly) enforced right now, or (NOT_MET_PREFIX) that
    # it is enforced but measured above it; "" when it is in force and met, or
    # when there is no limit. A limit with a problem is never shown as in force.
    "down_limit_problem": "s",
    "up_limit_problem": "s",
    # Blocked by the rule, or by a quota spent that then blocks (API 4): no
    # packet passes. A blocked direction is never shown as a rate. As the
    # kernel holds it: a block it did not take is not blocked, and after a
    # refused write the gate's setting before lasts until its lease lapses.
    "down_blocked": "b",
    "up_blocked": "b",
    # The quota of the rule shown (API 4): its budget per period (0 = none),
    # what is left of it now, and the period (day, week, month; "" = none).
    "down_quota_bytes": "t",
    "up_quota_bytes": "t",
    "down_quota_left_bytes": "t",
    "up_quota_left_bytes": "t",
    "down_quota_period": "s",
    "up_quota_period": "s",
    # The schedule that sets this direction now (its name, "mon-fri 09:00-17:00";
    # API 4), "" when none does: the limit shown is the schedule's until it ends.
    "down_schedule": "s",
    "up_schedule": "s",
    # API 5: the priority of the rule in force for the caller ("normal" when
    # none), whose rule it is (meaningless for normal), why it is not in force
    # now ("" when it is, or normal), and the median smoothed round-trip time
    # of its established TCP sockets in microseconds (0 = unknown).
    "priority": "s",
    "priority_owner": "x",
    "priority_problem": "s",
    "rtt_us": "u",
    # API 6: how the limit holds in each network namespace of the application's
    # processes, where that is not simply the backend's one path (several
    # namespaces: divided by demand, or the sum held by the policer; a namespace
    # tc cannot shape: policed, and why); "" otherwise, and without a limit.
    "down_limit_reach": "s",
    "up_limit_reach": "s",
    # API 7: that direction's rate window restarted at a change of its rules
    # (or of its quota's state) and has no sample yet: no rate is known, the
    # rate above is 0 and says nothing (helper/engine/rates.py RateMeter.restart).
    "down_measuring": "b",
    "up_measuring": "b",
    # API 9: CLOCK_MONOTONIC ns (the helper's machine), the same in every entry:
    # every process's first socket the datapath announced before it was read
    # and named before the counters these numbers come from were read (0: no
    # tick has yet). Traffic made before it is attributed as far as it will be.
    "counted_through_ns": "t",
}
# Keys an older helper does not send (API 3 and before: read as not blocked,
# no quota; API 4 and before: normal priority, rtt unknown; API 5 and before:
# no reach said; API 6 and before: never measuring, the rate listed from before
# a change until the next tick; API 8 and before: no counted_through_ns, read as 0).
OPTIONAL_APPLICATION_FIELDS = frozenset(
    {
        "down_blocked",
        "up_blocked",
        "down_quota_bytes",
        "up_quota_bytes",
        "down_quota_left_bytes",
        "up_quota_left_bytes",
        "down_quota_period",
        "up_quota_period",
        "down_schedule",
        "up_schedule",
        "priority",
        "priority_owner",
        "priority_problem",
        "rtt_us",
        "down_limit_reach",
        "up_limit_reach",
        "down_measuring",
        "up_measuring",
        "counted_through_ns",
    }
)

# Keys and D-Bus types of one entry of ListRules.
RULE_FIELDS: dict[str, str] = {
    "app_id": "s",
    "direction": "s",
    "rate_bps": "t",
    "burst_bytes": "t",
    "owner": "x",  # ADMIN_OWNER, or the uid whose processes it applies to
    # False while an admin rule outranks it, limits are paused, or the kernel does
    # not hold its block or quota as it says (a write refused; the setting before
    # held on after a refused change is the rule again: in force until it lapses)
    "in_force": "b",
    # API 4: rate_bps 0 is a rule with no rate (a block or a quota only).
    "blocked": "b",
    "quota_bytes": "t",  # 0: no quota
    "quota_period": "s",  # day, week, month; "" without a quota
    "quota_reset_minute": "u",
    "quota_then_bps": "t",  # 0: blocked when spent
    "quota_left_bytes": "t",
    "priority": "s",  # API 5: "normal" when none; a priority-only rule has rate_bps 0
    # API 8: the quota's current period as the helper counts it (its local
    # clock, common/quota_period.py): when it began and when the next begins
    # (unix seconds; 0 without a quota), and its zone's offset east of UTC at
    # each (seconds; they differ across a clock change within the period).
    "quota_period_start": "x",
    "quota_period_end": "x",
    "quota_start_offset_s": "i",
    "quota_end_offset_s": "i",
}
OPTIONAL_RULE_FIELDS = frozenset(
    {
        "blocked",
        "quota_bytes",
        "quota_period",
        "quota_reset_minute",
        "quota_then_bps",
        "quota_left_bytes",
        "priority",
        "quota_period_start",
        "quota_period_end",
        "quota_start_offset_s",
        "quota_end_offset_s",
    }
)

# Keys and D-Bus types of GetLinkShaping's answer (API 5).
LINK_SHAPING_FIELDS: dict[str, str] = {
    "down_capacity_bps": "t",  # the capacity in force now, set or estimated; 0 = none
    "up_capacity_bps": "t",
    "down_set_bps": "t",  # what the administrator set (SetLinkCapacity)
    "up_set_bps": "t",
    "estimate": "b",  # the helper estimates the capacity
    "down_shaping": "b",  # the link tree is on the kernel now for that direction
    "up_shaping": "b",
    "interfaces": "as",  # the uplinks the link tree holds
    "problem": "s",  # why shaping asked for is not (wholly) done; "" when fine
}

# Keys and D-Bus types of one entry of ListSchedules.
SCHEDULE_FIELDS: dict[str, str] = {
    "app_id": "s",
    "owner": "x",  # ADMIN_OWNER, or the uid whose processes it applies to
    "name": "s",  # "mon-fri 09:00-17:00": days, start and end; unique within a rule
    "days": "s",
    "start": "s",  # HH:MM, the helper's local time
    "end": "s",  # at or before start: the next day
    "down_bps": "t",  # 0: not limited by this schedule
    "up_bps": "t",
    "down_blocked": "b",  # blocks this direction while active
    "up_blocked": "b",
    "active": "b",  # in its time now (its limits are in force unless outranked or paused)
}

# Keys and D-Bus types of one entry of ListBackends.
BACKEND_FIELDS: dict[str, str] = {
    "name": "s",
    "available": "b",
    "reason": "s",  # why it is unavailable, "" when available
    "active_directions": "as",  # directions this backend enforces now
    # Where it cannot do its best now, and what holds the limits there instead
    # (tc: "policed, not shaped: <device, and why>"); "" when nothing.
    "notes": "s",
}


# Keys and D-Bus types of one entry of ListConnections.
CONNECTION_FIELDS: dict[str, str] = {
    "protocol": "s",  # "tcp" or "udp"
    "local": "s",  # "address:port", IPv6 in brackets
    "remote": "s",
    "state": "s",  # ESTABLISHED, LISTEN, ... (UNCONN for an unconnected UDP socket)
    "pid": "u",
    # The socket's own bytes since it opened (TCP payload: tcp_info bytes_received
    # and bytes_acked); -1 where the kernel counts none (UDP). An older helper
    # sends neither key: read as -1.
    "rx_bytes": "x",
    "tx_bytes": "x",
}
OPTIONAL_CONNECTION_FIELDS = frozenset({"rx_bytes", "tx_bytes"})  # an older helper omits them


# Keys and D-Bus types of one entry of ListProcesses.
PROCESS_FIELDS: dict[str, str] = {
    "pid": "u",
    "name": "s",  # /proc/<pid>/comm, escaped as names from the kernel are
    "down_bps": "d",  # over the window ListApplications' rates use, loopback apart
    "up_bps": "d",
    "rx_bytes": "t",  # since the helper started counting this process
    "tx_bytes": "t",
    "loopback_down_bps": "d",
    "loopback_up_bps": "d",
    "down_measuring": "b",  # API 7: as in ListApplications
    "up_measuring": "b",
}
OPTIONAL_PROCESS_FIELDS = frozenset(
    {"down_measuring", "up_measuring"}
)  # an API 6 helper omits them


@frozen_record
class ProcessTraffic:
    """One running process of an application, as ListProcesses reports it."""

    pid: int
    name: str
    down_bps: float
    up_bps: float
    rx_bytes: int
    tx_bytes: int
    loopback_down_bps: float = 0.0
    loopback_up_bps: float = 0.0
    down_measuring: bool = False
    up_measuring: bool = False

    def measuring(self, direction: Direction) -> bool:
        """No rate known yet in direction (ApplicationInfo.measuring)."""
        return self.down_measuring if direction is Direction.DOWN else self.up_measuring


# Keys and D-Bus types of one entry of ListInterfaces.
INTERFACE_FIELDS: dict[str, str] = {
    "name": "s",  # the device's name in its namespace; "" when it could not be found
    "ifindex": "u",  # per namespace: (netns, ifindex) names one device
    "netns": "s",  # "" for the helper's namespace, else its `ip netns` name or net:[inode]
    "loopback": "b",
    "rx_bytes": "t",  # totals since the helper started, every socket's traffic
    "tx_bytes": "t",
    "down_bps": "d",
    "up_bps": "d",
}


@frozen_record
class InterfaceInfo:
    """Traffic through one network interface, as ListInterfaces reports it."""

    name: str
    ifindex: int
    loopback: bool
    rx_bytes: int
    tx_bytes: int
    down_bps: float
    up_bps: float
    netns: str = ""


@frozen_record
class ConnectionInfo:
    """One open socket of an application, as ListConnections reports it."""

    protocol: str
    local: str
    remote: str
    state: str
    pid: int
    rx_bytes: int = -1  # -1: not counted (see CONNECTION_FIELDS)
    tx_bytes: int = -1


@frozen_record
class ApplicationInfo:
    """One application as ListApplications reports it."""

    id: str
    name: str
    icon: str
    uids: tuple[int, ...]
    pids: tuple[int, ...]
    down_bps: float
    up_bps: float
    rx_bytes: int
    tx_bytes: int
    down_limit_bps: int
    up_limit_bps: int
    loopback_down_bps: float = 0.0
    loopback_up_bps: float = 0.0
    running: bool = True
    down_limit_owner: int = ADMIN_OWNER
    up_limit_owner: int = ADMIN_OWNER
    down_limit_problem: str = ""
    up_limit_problem: str = ""
    down_blocked: bool = False
    up_blocked: bool = False
    down_quota_bytes: int = 0
    up_quota_bytes: int = 0
    down_quota_left_bytes: int = 0
    up_quota_left_bytes: int = 0
    down_quota_period: str = ""
    up_quota_period: str = ""
    down_schedule: str = ""
    up_schedule: str = ""
    priority: str = "normal"  # a chadthrottle.priority.Priority value
    priority_owner: int = ADMIN_OWNER
    priority_problem: str = ""
    rtt_us: int = 0  # 0 = unknown
    down_limit_reach: str = ""
    up_limit_reach: str = ""
    down_measuring: bool = False
    up_measuring: bool = False
    counted_through_ns: int = 0  # API 9: CLOCK_MONOTONIC; 0 = not yet, or an older helper

    def measuring(self, direction: Direction) -> bool:
        """The direction's rate window restarted at a rule change and has no
        sample yet, or the helper has no earlier reading of the application
        (its first tick, as after the helper starts): its rate (0) says nothing."""
        return self.down_measuring if direction is Direction.DOWN else self.up_measuring

    def limit_owner(self, direction: Direction) -> int:
        return self.down_limit_owner if direction is Direction.DOWN else self.up_limit_owner

    def limit_problem(self, direction: Direction) -> str:
        return self.down_limit_problem if direction is Direction.DOWN else self.up_limit_problem

    def limit_reach(self, direction: Direction) -> str:
        return self.down_limit_reach if direction is Direction.DOWN else self.up_limit_reach

    def blocked(self, direction: Direction) -> bool:
        return self.down_blocked if direction is Direction.DOWN else self.up_blocked

    def quota(self, direction: Direction) -> tuple[int, int, str]:
        """(budget bytes per period, bytes left, period); budget 0: no quota."""
        if direction is Direction.DOWN:
            return self.down_quota_bytes, self.down_quota_left_bytes, self.down_quota_period
        return self.up_quota_bytes, self.up_quota_left_bytes, self.up_quota_period

    def limit_bps(self, direction: Direction) -> int:
        return self.down_limit_bps if direction is Direction.DOWN else self.up_limit_bps

    def rate_bps(self, direction: Direction) -> float:
        return self.down_bps if direction is Direction.DOWN else self.up_bps


@frozen_record
class RuleInfo:
    """One stored rule, as ListRules reports it."""

    app_id: str
    direction: str
    rate_bps: int
    burst_bytes: int
    owner: int
    in_force: bool
    blocked: bool = False
    quota_bytes: int = 0
    quota_period: str = ""
    quota_reset_minute: int = 0
    quota_then_bps: int = 0
    quota_left_bytes: int = 0
    priority: str = "normal"
    quota_period_start: int = 0  # API 8; 0: not said (an older helper) or no quota
    quota_period_end: int = 0
    quota_start_offset_s: int = 0
    quota_end_offset_s: int = 0


@frozen_record
class ScheduleInfo:
    """One stored schedule, as ListSchedules reports it."""

    app_id: str
    owner: int
    name: str
    days: str
    start: str
    end: str
    down_bps: int
    up_bps: int
    down_blocked: bool
    up_blocked: bool
    active: bool


@frozen_record
class LinkShapingInfo:
    """The link shaping in force, as GetLinkShaping reports it (LINK_SHAPING_FIELDS)."""

    down_capacity_bps: int = 0
    up_capacity_bps: int = 0
    down_set_bps: int = 0
    up_set_bps: int = 0
    estimate: bool = False
    down_shaping: bool = False
    up_shaping: bool = False
    interfaces: tuple[str, ...] = ()
    problem: str = ""

    def capacity_bps(self, direction: Direction) -> int:
        return self.down_capacity_bps if direction is Direction.DOWN else self.up_capacity_bps

    def shaping(self, direction: Direction) -> bool:
        return self.down_shaping if direction is Direction.DOWN else self.up_shaping


@frozen_record
class BackendInfo:
    """One enforcement backend as ListBackends reports it."""

    name: str
    available: bool
    reason: str
    active_directions: tuple[str, ...]
    notes: str = ""
