"""The error table covers every contract error and maps bus errors to states."""

from __future__ import annotations

import pytest
from chadthrottle.client import HelperClientError
from chadthrottle.contract import BackendInfo, ErrorName
from chadthrottle.gui.ipc.error_text import (
    BUS_UNAVAILABLE,
    ERROR_TEXT,
    INSTALL_COMMAND,
    UNEXPECTED,
    describe_error,
    error_name_of,
)
from chadthrottle.gui.ipc.state import HelperState
from chadthrottle.gui.ipc.status_logic import Observations, derive_status


@pytest.mark.parametrize("name", list(ErrorName))
def test_every_contract_error_has_words(name: ErrorName) -> None:
    assert name.value in ERROR_TEXT
    words = describe_error(name.value).words
    assert words and "Traceback" not in words and words.endswith(".")


@pytest.mark.parametrize(
    ("name", "state"),
    [
        ("org.freedesktop.DBus.Error.ServiceUnknown", HelperState.NOT_INSTALLED),
        ("org.freedesktop.DBus.Error.AccessDenied", HelperState.NOT_INSTALLED),
        ("org.freedesktop.DBus.Error.NameHasNoOwner", HelperState.NOT_RUNNING),
        ("org.freedesktop.DBus.Error.NoServer", HelperState.NOT_RUNNING),
        ("org.freedesktop.DBus.Error.NoReply", HelperState.NOT_RUNNING),
        (ErrorName.NOT_AUTHORIZED.value, HelperState.NOT_AUTHORIZED),
        (ErrorName.BACKEND_UNAVAILABLE.value, HelperState.KERNEL_FEATURE_MISSING),
        ("com.example.Whatever", HelperState.NOT_RUNNING),
    ],
)
def test_errors_put_the_gui_in_a_state(name: str, state: HelperState) -> None:
    assert derive_status(Observations(poll_error_name=name)).state is state


def test_not_installed_names_the_install_command() -> None:
    assert INSTALL_COMMAND in describe_error("org.freedesktop.DBus.Error.ServiceUnknown").words


def test_invalid_argument_carries_the_helpers_reason() -> None:
    text = describe_error(ErrorName.INVALID_ARGUMENT.value, "rate below 1000 bytes/s")
    assert text.words.endswith("rate below 1000 bytes/s")


def test_error_name_of_reads_the_client_error_and_os_errors() -> None:
    assert error_name_of(HelperClientError(ErrorName.FAILED.value, "x")) == ErrorName.FAILED.value
    assert error_name_of(FileNotFoundError("/run/dbus")) == BUS_UNAVAILABLE
    assert error_name_of(RuntimeError("boom")) == UNEXPECTED


def test_service_unknown_after_success_means_stopped() -> None:
    status = derive_status(
        Observations("org.freedesktop.DBus.Error.ServiceUnknown", has_polled_ok=True)
    )
    assert status.state is HelperState.NOT_RUNNING


def test_status_when_connected_denied_or_without_backends() -> None:
    ok = derive_status(Observations(has_polled_ok=True))
    assert ok.state is HelperState.CONNECTED and ok.can_limit
    denied = derive_status(Observations(has_polled_ok=True, limit_denied=True))
    assert denied.state is HelperState.NOT_AUTHORIZED
    assert denied.can_monitor and not denied.can_limit
    broken = (BackendInfo("ebpf", False, "needs BTF", ()), BackendInfo("tc", False, "no HTB", ()))
    missing = derive_status(Observations(has_polled_ok=True, backends=broken))
    assert missing.state is HelperState.KERNEL_FEATURE_MISSING
    assert "needs BTF" in missing.detail and "no HTB" in missing.detail and missing.can_monitor


def test_a_timed_out_activation_says_the_first_start_compiles_and_what_to_run() -> None:
    """dbus-daemon's own name when the helper outlasts its activation wait
    (a first start on a new kernel compiles): not "something unexpected"."""
    text = describe_error("org.freedesktop.DBus.Error.TimedOut")
    assert "first start" in text.words and "chadthrottle-helper build-cache" in text.words
    assert text.state is HelperState.NOT_RUNNING
