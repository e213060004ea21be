"""The helper's error tree. The D-Bus adapter maps each class to one named
D-Bus error (contract.ErrorName); anything else becomes a generic Failed error
with no traceback."""

from __future__ import annotations

import threading


class HelperError(Exception):
    """Root of every error the helper raises on purpose."""


class InvalidArgument(HelperError):
    """A caller's argument is malformed or out of range; nothing was changed."""


class NoSuchApplication(HelperError):
    """The application id or pid names no running or known application."""


class BackendUnavailable(HelperError):
    """The kernel lacks what an enforcement backend needs; the message says what."""


class KernelError(HelperError):
    """The kernel refused an operation the helper expected to work; errno is
    the kernel's answer where there was one (ENODEV: the device went)."""

    def __init__(self, message: str, errno: int = 0) -> None:
        super().__init__(message)
        self.errno = errno


class StartCancelled(HelperError):
    """SIGTERM/SIGINT came while the helper was starting: the start was given
    up (the build child killed and reaped) and what it had made was undone."""


def raise_if_stopping(stopping: threading.Event | None, what: str) -> None:
    """Give up a step of the start once the helper is told to stop."""
    if stopping is not None and stopping.is_set():
        raise StartCancelled(f"stopped while {what}")


class EngineClosed(HelperError):
    """The engine was closed (the helper is stopping): nothing of it may touch
    the kernel any more (helper/engine/closing_lock.py)."""


class LeftInKernel(HelperError):
    """A stop, or the undo of a failed start, could not remove what the helper
    made, or could not stop another of its threads from making more: its run
    record must not say "stopped" (helper/main.py)."""
