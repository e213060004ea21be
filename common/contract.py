"""The D-Bus contract between the root helper and its clients (GUI, CLI).

Stdlib only: both sides import this module, so it is the one place where the
bus name, object path, interface, API version, polkit action ids, error names
and the shape of every method live. ``resources/io.github.chadthrottle.Helper1.xml``
documents the same API for humans and for introspection; a test keeps the two in
agreement.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

# 2: rules belong to an owner (RuleScope); SetLimit/ClearLimit take a scope;
# ListRules; ListApplications says whose limit it shows and what keeps it from
# being enforced. 3: GetUsage (usage history).
API_VERSION = 3

BUS_NAME = "io.github.chadthrottle.Helper1"
OBJECT_PATH = "/io/github/chadthrottle/Helper1"
INTERFACE = "io.github.chadthrottle.Helper1"
INTROSPECTION_XML = "io.github.chadthrottle.Helper1.xml"  # in chadthrottle.resources

ERROR_PREFIX = "io.github.chadthrottle.Error."


class ErrorName(str, Enum):
    """Named D-Bus errors a caller can act on. No other error crosses the bus
    except FAILED, which carries a generic message and never a traceback."""

    NOT_AUTHORIZED = ERROR_PREFIX + "NotAuthorized"
    INVALID_ARGUMENT = ERROR_PREFIX + "InvalidArgument"
    NO_SUCH_APPLICATION = ERROR_PREFIX + "NoSuchApplication"
    BACKEND_UNAVAILABLE = ERROR_PREFIX + "BackendUnavailable"
    FAILED = ERROR_PREFIX + "Failed"


class Action(str, Enum):
    """polkit action ids, declared in resources/io.github.chadthrottle.policy."""

    MONITOR = "io.github.chadthrottle.monitor"
    LIMIT_OWN = "io.github.chadthrottle.limit-own"
    LIMIT_ANY = "io.github.chadthrottle.limit-any"
    CONFIGURE = "io.github.chadthrottle.configure"


class Direction(str, Enum):
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


class RuleScope(str, Enum):
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


class LimitAuthorization(str, Enum):
    """How a method that changes a limit is authorized: by its RuleScope
    argument (the last one), LIMIT_OWN for OWN and LIMIT_ANY for ALL, asked
    before the helper looks anything up."""

    BY_SCOPE = "by-scope"


@dataclass(frozen=True)
class MethodSpec:
    """One exported method: D-Bus signatures and the polkit action it needs."""

    name: str
    in_signature: str
    out_signature: str
    action: Action | LimitAuthorization


METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec("GetApiVersion", "", "u", Action.MONITOR),
        MethodSpec("ListApplications", "", "aa{sv}", Action.MONITOR),
        MethodSpec("ListBackends", "", "aa{sv}", Action.MONITOR),
        # ListConnections(app_id) -> the application's open sockets.
        MethodSpec("ListConnections", "s", "aa{sv}", Action.MONITOR),
        # ListInterfaces() -> traffic per network interface, for machine totals.
        MethodSpec("ListInterfaces", "", "aa{sv}", Action.MONITOR),
        # SetLimit(app_id, direction, rate_bps, burst_bytes, scope) -> resolved
        # app id. burst_bytes 0 means "the default burst for this rate"; scope
        # is a RuleScope value.
        MethodSpec("SetLimit", "sstts", "s", LimitAuthorization.BY_SCOPE),
        # ClearLimit(app_id, direction or "both", scope) -> resolved app id.
        MethodSpec("ClearLimit", "sss", "s", LimitAuthorization.BY_SCOPE),
        # ListRules() -> the stored rules the caller may see: every rule for a
        # caller with LIMIT_ANY, else the caller's own and the administrator's.
        MethodSpec("ListRules", "", "aa{sv}", Action.MONITOR),
        # SetLimitsPaused(paused): keep every limit in the table (still listed)
        # but enforce none of them, or enforce them again. It changes every
        # user's limits, so it needs LIMIT_ANY.
        MethodSpec("SetLimitsPaused", "b", "", Action.LIMIT_ANY),
        # GetLimitsPaused() -> whether limits are paused.
        MethodSpec("GetLimitsPaused", "", "b", Action.MONITOR),
        # GetUsage(app_id or "", since_unix, until_unix or 0 for now, resolution)
        # -> bytes per application and period, as ListApplications filters: a
        # caller without LIMIT_ANY sees only their own processes' usage. Its
        # values and fields are in chadthrottle.usage_contract (kept out of
        # this module: every chadthrottle-ctl call imports it).
        MethodSpec("GetUsage", "sxxs", "aa{sv}", Action.MONITOR),
    )
}

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
    # Why that limit is not (wholly) enforced right now; "" when it is, or when
    # there is no limit. A limit with a problem is never shown as in force.
    "down_limit_problem": "s",
    "up_limit_problem": "s",
}

# Keys and D-Bus types of one entry of ListRules.
RULE_FIELDS: dict[str, str] = {
    "app_id": "s",
    "direction": "s",
    "rate_bps": "t",
    "burst_bytes": "t",
    "owner": "x",  # ADMIN_OWNER, or the uid whose processes it applies to
    "in_force": "b",  # False while an administrator rule outranks it, or limits are paused
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


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class ConnectionInfo:
    """One open socket of an application, as ListConnections reports it."""

    protocol: str
    local: str
    remote: str
    state: str
    pid: int
    rx_bytes: int = -1  # -1: not counted (see CONNECTION_FIELDS)
    tx_bytes: int = -1


@dataclass(frozen=True)
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

    def limit_owner(self, direction: Direction) -> int:
        return self.down_limit_owner if direction is Direction.DOWN else self.up_limit_owner

    def limit_problem(self, direction: Direction) -> str:
        return self.down_limit_problem if direction is Direction.DOWN else self.up_limit_problem

    def limit_bps(self, direction: Direction) -> int:
        return self.down_limit_bps if direction is Direction.DOWN else self.up_limit_bps

    def rate_bps(self, direction: Direction) -> float:
        return self.down_bps if direction is Direction.DOWN else self.up_bps


@dataclass(frozen=True)
class RuleInfo:
    """One stored rule, as ListRules reports it."""

    app_id: str
    direction: str
    rate_bps: int
    burst_bytes: int
    owner: int
    in_force: bool


@dataclass(frozen=True)
class BackendInfo:
    """One enforcement backend as ListBackends reports it."""

    name: str
    available: bool
    reason: str
    active_directions: tuple[str, ...]
    notes: str = ""
