"""The one table that turns D-Bus error names into words and helper states.

Every error the GUI can meet is named here: the helper's own
(``contract.ErrorName``) and the bus's (``org.freedesktop.DBus.Error.*``).
Views never invent error wording; they ask :func:`describe_error`.
"""

from __future__ import annotations

from dataclasses import dataclass

from chadthrottle.contract import ErrorName
from chadthrottle.gui.ipc.state import HelperState
from chadthrottle.helper_errors import ACTIVATION_TIMED_OUT, BUILD_CACHE_COMMAND

INSTALL_COMMAND = "sudo chadthrottle-helper install"

_FDO = "org.freedesktop.DBus.Error."

# Pseudo error names for failures that never had a D-Bus name.
BUS_UNAVAILABLE = "chadthrottle.gui.BusUnavailable"
UNEXPECTED = "chadthrottle.gui.Unexpected"


@dataclass(frozen=True)
class ErrorText:
    """How one error reads, and which helper state it puts the GUI in.

    ``state`` is None when the error concerns one request only (a bad value)
    and says nothing about the helper as a whole.
    """

    words: str
    state: HelperState | None


ERROR_TEXT: dict[str, ErrorText] = {
    # The helper's own errors (contract.ErrorName).
    ErrorName.NOT_AUTHORIZED.value: ErrorText(
        "You are not allowed to do this. Your administrator's polkit rules decide who may "
        "watch traffic and set limits.",
        HelperState.NOT_AUTHORIZED,
    ),
    ErrorName.INVALID_ARGUMENT.value: ErrorText("The helper refused this value.", None),
    ErrorName.NO_SUCH_APPLICATION.value: ErrorText(
        "This application is gone: it has no running processes any more.", None
    ),
    ErrorName.BACKEND_UNAVAILABLE.value: ErrorText(
        "No enforcement backend works on this kernel, so limits cannot be applied. "
        "Monitoring still works.",
        HelperState.KERNEL_FEATURE_MISSING,
    ),
    ErrorName.FAILED.value: ErrorText("The helper could not do this; its log says why.", None),
    # The bus's errors.
    _FDO + "ServiceUnknown": ErrorText(
        "The ChadThrottle helper is not installed on this system (the system bus does not "
        f"know it). Install it with: {INSTALL_COMMAND}",
        HelperState.NOT_INSTALLED,
    ),
    _FDO + "AccessDenied": ErrorText(
        "The system bus does not let this program talk to the helper: its bus policy is "
        f"missing. Install the helper with: {INSTALL_COMMAND}",
        HelperState.NOT_INSTALLED,
    ),
    _FDO + "UnknownMethod": ErrorText(
        "The installed helper speaks a different version of the protocol. Update it with: "
        f"{INSTALL_COMMAND}",
        HelperState.NOT_INSTALLED,
    ),
    _FDO + "UnknownInterface": ErrorText(
        "The installed helper speaks a different version of the protocol. Update it with: "
        f"{INSTALL_COMMAND}",
        HelperState.NOT_INSTALLED,
    ),
    _FDO + "UnknownObject": ErrorText(
        "The installed helper speaks a different version of the protocol. Update it with: "
        f"{INSTALL_COMMAND}",
        HelperState.NOT_INSTALLED,
    ),
    _FDO + "NameHasNoOwner": ErrorText("The helper is not running.", HelperState.NOT_RUNNING),
    _FDO + "NoServer": ErrorText("The system bus is not reachable.", HelperState.NOT_RUNNING),
    _FDO + "NoReply": ErrorText("The helper did not answer in time.", HelperState.NOT_RUNNING),
    _FDO + "Timeout": ErrorText("The helper did not answer in time.", HelperState.NOT_RUNNING),
    ACTIVATION_TIMED_OUT: ErrorText(
        "The helper took longer to start than the system bus waits: its first start on a "
        "new kernel compiles its programs, which can take a minute on a busy machine. Try "
        f"again shortly; if this repeats, run: {BUILD_CACHE_COMMAND}",
        HelperState.NOT_RUNNING,
    ),
    _FDO + "Disconnected": ErrorText(
        "The connection to the system bus was lost.", HelperState.NOT_RUNNING
    ),
    _FDO + "Spawn.ChildExited": ErrorText(
        "The helper was started but exited at once; its log says why.", HelperState.NOT_RUNNING
    ),
    _FDO + "Spawn.ExecFailed": ErrorText(
        "The helper could not be started.", HelperState.NOT_RUNNING
    ),
    _FDO + "Spawn.ServiceNotFound": ErrorText(
        f"The helper's service file is missing. Install it with: {INSTALL_COMMAND}",
        HelperState.NOT_INSTALLED,
    ),
    BUS_UNAVAILABLE: ErrorText("The system bus is not reachable.", HelperState.NOT_RUNNING),
    UNEXPECTED: ErrorText(
        "Something unexpected went wrong talking to the helper.", HelperState.NOT_RUNNING
    ),
}


def describe_error(error_name: str, message: str = "") -> ErrorText:
    """Words and state for an error name; unknown names read as UNEXPECTED.

    For INVALID_ARGUMENT the helper's own one-line message is the useful part,
    so it is appended.
    """
    text = ERROR_TEXT.get(error_name, ERROR_TEXT[UNEXPECTED])
    if error_name == ErrorName.INVALID_ARGUMENT.value and message:
        return ErrorText(f"{text.words} {message}", text.state)
    return text


def error_name_of(exc: BaseException) -> str:
    """The D-Bus error name an exception carries, whatever raised it.

    The helper client raises one exception type carrying the name; dbus-fast's
    own ``DBusError`` carries it as ``type``; a missing bus socket is an OSError.
    """
    for attribute in ("error_name", "name", "type"):
        value = getattr(exc, attribute, None)
        value = getattr(value, "value", value)  # an Enum member
        if isinstance(value, str) and "." in value:
            return value
    if isinstance(exc, (OSError, EOFError, ConnectionError)):
        return BUS_UNAVAILABLE
    return UNEXPECTED
