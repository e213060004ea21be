"""How a call to the helper fails, for both clients (the GUI's asyncio one and
the CLI's blocking one).

Stdlib only, so the CLI can name every failure without importing dbus-fast or
asyncio. Every failure, from "no bus" to a polkit denial, is one exception
type carrying the D-Bus error name, so callers map names to words in one table.
"""

from __future__ import annotations

from chadthrottle.contract import ErrorName

# Standard D-Bus error names the clients produce or pass on.
NO_SERVER = "org.freedesktop.DBus.Error.NoServer"  # cannot connect to the bus at all
NO_REPLY = "org.freedesktop.DBus.Error.NoReply"  # the call timed out
SERVICE_UNKNOWN = "org.freedesktop.DBus.Error.ServiceUnknown"  # nobody owns BUS_NAME
NAME_HAS_NO_OWNER = "org.freedesktop.DBus.Error.NameHasNoOwner"
DISCONNECTED = "org.freedesktop.DBus.Error.Disconnected"
# The bus gave up activating the helper (service_start_timeout, 25 s by default): a
# first start on a new kernel compiles its programs and can outlast it when busy.
ACTIVATION_TIMED_OUT = "org.freedesktop.DBus.Error.TimedOut"
BUILD_CACHE_COMMAND = "sudo chadthrottle-helper build-cache"
UNKNOWN_METHOD = "org.freedesktop.DBus.Error.UnknownMethod"  # an older helper without that method
HELPER_MISSING_NAMES = frozenset({NO_SERVER, SERVICE_UNKNOWN, NAME_HAS_NO_OWNER, DISCONNECTED})

DEFAULT_TIMEOUT_S = 30.0
# Longer than the helper's own limit on a polkit password prompt (150 s), so the
# helper's answer, not our timeout, ends an interactive call.
DEFAULT_INTERACTIVE_TIMEOUT_S = 180.0


class HelperClientError(Exception):
    """A call to the helper failed. name is a D-Bus error name: one of
    contract.ErrorName, or a standard org.freedesktop.DBus.Error.* name."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message

    @property
    def error(self) -> ErrorName | None:
        """The contract's error name, or None for a bus-level error."""
        try:
            return ErrorName(self.name)
        except ValueError:
            return None

    @property
    def helper_missing(self) -> bool:
        """No bus, or no helper on it: not the caller's fault, nothing was changed."""
        return self.name in HELPER_MISSING_NAMES
