"""Run ChadThrottle where no system bus runs: a private bus, polkitd, the helper.

Machines without systemd (containers, CI, this development machine) have no
system D-Bus. PrivateSystemBus starts a dbus-daemon with the system bus's own
configuration (so the same policies apply) on a socket of its own, installs the
project's polkit actions if needed (shared with other private buses, see
standalone_policy) and starts a real polkitd on it; clients
find it through DBUS_SYSTEM_BUS_ADDRESS. HelperProcess runs the helper against
such a bus. Both undo everything they did on exit, also after a failed start.

    python -m chadthrottle.helper.standalone [--netns NAME] -- CMD ARGS...

runs bus + polkitd + helper, then CMD with DBUS_SYSTEM_BUS_ADDRESS exported, tears
everything down and exits with CMD's status (125 if the setup itself failed).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from types import TracebackType

from chadthrottle.contract import BUS_NAME
from chadthrottle.helper.busname import wait_for_bus_name
from chadthrottle.helper.standalone_policy import SharedFileInstall
from chadthrottle.helper_run_state import record_path

log = logging.getLogger("chadthrottle.helper.standalone")

SYSTEM_BUS_CONFIG = Path("/usr/share/dbus-1/system.conf")
SYSTEM_POLICY_DIR = Path("/usr/share/dbus-1/system.d")
POLKIT_ACTIONS_DIR = Path("/usr/share/polkit-1/actions")
POLKITD = Path("/usr/lib/polkit-1/polkitd")
POLKIT_BUS_NAME = "org.freedesktop.PolicyKit1"
POLICY_FILE = "io.github.chadthrottle.policy"
BUS_POLICY_FILE = "io.github.chadthrottle.Helper1.conf"
SETUP_FAILED_EXIT = 125


class StandaloneError(RuntimeError):
    """The private bus, polkitd or the helper could not be started."""


def _resource_bytes(name: str) -> bytes:
    return resources.files("chadthrottle.resources").joinpath(name).read_bytes()


def _dies_with_us(argv: list[str]) -> list[str]:
    """argv run so that it gets SIGTERM when this process dies, even by
    SIGKILL (setpriv sets PR_SET_PDEATHSIG, then execs it: same pid). A test
    session or run-app killed outright left its dbus-daemon running."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *argv] if setpriv else argv


def _stop_process(process: subprocess.Popen[bytes], timeout_s: float) -> int:
    """SIGTERM, then SIGKILL if it has not exited after timeout_s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("pid %d ignored SIGTERM for %.0f s; killing it", process.pid, timeout_s)
            process.kill()
            process.wait()
    return process.returncode


def polkit_policy_install() -> SharedFileInstall:
    """Our polkit actions file as every private bus on the machine shares it."""
    return SharedFileInstall(POLKIT_ACTIONS_DIR / POLICY_FILE, _resource_bytes(POLICY_FILE))


def private_bus_config(system_config: str, socket_path: Path, policy_dir: Path) -> str:
    """The system bus configuration, listening on socket_path, not forking, not
    switching user, with policy_dir's files included after the system's."""
    text = system_config
    for element in ("user", "pidfile", "servicehelper"):
        text = re.sub(rf"<{element}>.*?</{element}>", "", text, flags=re.S)
    text = re.sub(r"<(fork|standard_system_servicedirs)\s*/>", "", text)
    text, listens = re.subn(
        r"<listen>.*?</listen>", f"<listen>unix:path={socket_path}</listen>", text, flags=re.S
    )
    # A relative includedir is relative to the config file, which now lives elsewhere.
    text = text.replace(
        "<includedir>system.d</includedir>", f"<includedir>{SYSTEM_POLICY_DIR}</includedir>"
    )
    text, ends = re.subn(
        r"</busconfig>\s*$", f"  <includedir>{policy_dir}</includedir>\n</busconfig>\n", text
    )
    if listens != 1 or ends != 1:
        raise StandaloneError("unexpected layout of the system bus configuration")
    return text


class PrivateSystemBus:
    """A dbus-daemon configured like the system bus, with a real polkitd on it."""

    def __init__(self, start_timeout_s: float = 15.0, stop_timeout_s: float = 5.0) -> None:
        self._start_timeout_s = start_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._stack = contextlib.ExitStack()
        self.directory: Path | None = None
        self.address = ""
        self.policy_installed = False

    def __enter__(self) -> PrivateSystemBus:
        with contextlib.ExitStack() as stack:
            self.directory = Path(tempfile.mkdtemp(prefix="chadthrottle-bus-"))
            stack.callback(shutil.rmtree, self.directory, ignore_errors=True)
            self.directory.chmod(0o755)  # polkitd (and test users) must reach the socket
            self._start_bus(stack, self.directory)
            # the helpers' run record of this bus means nothing once it is gone
            stack.callback(record_path(self.address).unlink, missing_ok=True)
            policy = polkit_policy_install()
            policy.acquire()
            stack.callback(policy.release)
            self.policy_installed = policy.installed
            self._start_polkitd(stack, self.directory)
            self._stack = stack.pop_all()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._stack.close()

    def environment(self) -> dict[str, str]:
        """os.environ with this bus as the system bus."""
        return {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.address}

    def logs(self) -> str:
        """What dbus-daemon and polkitd said, for error messages."""
        if self.directory is None:
            return ""
        parts = []
        for name in ("dbus-daemon.log", "polkitd.log"):
            with contextlib.suppress(OSError):
                parts.append(f"--- {name}\n" + (self.directory / name).read_text(errors="replace"))
        return "\n".join(parts)

    def _start_bus(self, stack: contextlib.ExitStack, directory: Path) -> None:
        policy_dir = directory / "system.d"
        policy_dir.mkdir()
        (policy_dir / BUS_POLICY_FILE).write_bytes(_resource_bytes(BUS_POLICY_FILE))
        config = directory / "system.conf"
        config.write_text(
            private_bus_config(
                SYSTEM_BUS_CONFIG.read_text(), directory / "system_bus_socket", policy_dir
            )
        )
        with open(directory / "dbus-daemon.log", "wb") as log_file:
            daemon = subprocess.Popen(
                _dies_with_us(
                    ["dbus-daemon", f"--config-file={config}", "--nofork", "--print-address=1"]
                ),
                stdout=subprocess.PIPE,
                stderr=log_file,
                start_new_session=True,
            )
        stack.callback(_stop_process, daemon, self._stop_timeout_s)
        assert daemon.stdout is not None
        stack.callback(daemon.stdout.close)
        with selectors.DefaultSelector() as selector:
            selector.register(daemon.stdout, selectors.EVENT_READ)
            ready = selector.select(self._start_timeout_s)
        line = daemon.stdout.readline().decode().strip() if ready else ""
        if not line:
            raise StandaloneError(f"dbus-daemon did not start:\n{self.logs()}")
        self.address = line
        log.info("private system bus at %s", self.address)

    def _start_polkitd(self, stack: contextlib.ExitStack, directory: Path) -> None:
        with open(directory / "polkitd.log", "wb") as log_file:
            polkitd = subprocess.Popen(
                _dies_with_us([str(POLKITD)]),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=self.environment(),
                start_new_session=True,
            )
        stack.callback(_stop_process, polkitd, self._stop_timeout_s)
        if not wait_for_bus_name(
            self.address, POLKIT_BUS_NAME, self._start_timeout_s, polkitd.poll
        ):
            raise StandaloneError(f"polkitd did not take {POLKIT_BUS_NAME}:\n{self.logs()}")


class HelperProcess:
    """The helper (``python -m chadthrottle.helper.main``) as a child process."""

    def __init__(
        self,
        bus_address: str,
        *,
        netns: str | None = None,
        state_dir: Path | None = None,
        backend: str = "auto",
        log_level: str = "info",
        start_timeout_s: float = 30.0,
        stop_timeout_s: float = 10.0,
        idle_exit_s: float | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        if netns is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+", netns):
            raise ValueError(f"not a network namespace name: {netns!r}")
        self.command = [
            sys.executable, "-m", "chadthrottle.helper.main",
            "--bus-address", bus_address, "--backend", backend, "--log-level", log_level,
        ]  # fmt: skip
        self.state_dir = state_dir  # None: the helper's default
        if state_dir is not None:
            self.command += ["--state-dir", str(state_dir)]
        if idle_exit_s is not None:
            self.command += ["--idle-exit-s", str(idle_exit_s)]
        if cache_dir is not None:
            self.command += ["--cache-dir", str(cache_dir)]
        if netns is not None:
            # Not `ip netns exec`: it remounts /sys and hides the cgroup tree.
            self.command = ["nsenter", f"--net=/run/netns/{netns}", "--", *self.command]
        self._bus_address = bus_address
        self._start_timeout_s = start_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._log_text = ""
        descriptor, name = tempfile.mkstemp(prefix="chadthrottle-helper-", suffix=".log")
        os.close(descriptor)
        self.log_path = Path(name)

    def __enter__(self) -> HelperProcess:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.poll()

    @property
    def pid(self) -> int | None:
        """The helper process's (nsenter execs it: the same), for a bench's CPU reads."""
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        """Start the helper and wait until it owns contract.BUS_NAME."""
        with open(self.log_path, "wb") as log_file:
            self._process = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        if not wait_for_bus_name(
            self._bus_address,
            BUS_NAME,
            self._start_timeout_s,
            self._process.poll,
            self._process.pid,
        ):
            self.stop()
            raise StandaloneError(
                f"the helper did not take {BUS_NAME} within {self._start_timeout_s:.0f} s "
                f"(exit status {self.returncode}):\n{self.log_text()}"
            )

    def stop(self) -> int | None:
        """SIGTERM, SIGKILL after the stop timeout; returns the exit status."""
        if self._process is None:
            return None
        status = _stop_process(self._process, self._stop_timeout_s)
        self.log_text()
        return status

    def kill(self) -> int | None:
        """SIGKILL, as a crash would: the helper cleans up nothing."""
        if self._process is None:
            return None
        if self._process.poll() is None:
            self._process.kill()
        return self._process.wait()

    def wait(self, timeout_s: float) -> int | None:
        """The exit status once the helper exits by itself; None if it still
        runs after timeout_s."""
        if self._process is None:
            return None
        try:
            return self._process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        """Stop the helper and remove its log file (its text stays in log_text())."""
        self.stop()
        self.log_text()
        self.log_path.unlink(missing_ok=True)

    def log_text(self) -> str:
        """Everything the helper wrote to stderr so far."""
        with contextlib.suppress(OSError):
            self._log_text = self.log_path.read_text(errors="replace")
        return self._log_text


def _parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m chadthrottle.helper.standalone",
        description="Run a private system bus, polkitd and the helper, then CMD against them.",
    )
    parser.add_argument("--netns", metavar="NAME", help="run the helper in this network namespace")
    parser.add_argument("--state-dir", type=Path, help="the helper's state directory")
    parser.add_argument("--backend", default="auto", choices=("auto", "tc", "ebpf"))
    parser.add_argument("--log-level", default="info")
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD ARGS...")
    arguments = parser.parse_args(argv)
    if arguments.command[:1] == ["--"]:
        arguments.command = arguments.command[1:]
    if not arguments.command:
        parser.error("give a command to run after --")
    return arguments


def _raise_system_exit(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _parse_arguments(argv)
    logging.basicConfig(level=arguments.log_level.upper(), format="%(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _raise_system_exit)
    try:
        with PrivateSystemBus() as bus, HelperProcess(
            bus.address, netns=arguments.netns, state_dir=arguments.state_dir,
            backend=arguments.backend, log_level=arguments.log_level,
        ) as helper:  # fmt: skip
            child = subprocess.Popen(arguments.command, env=bus.environment())
            try:
                status = child.wait()
            finally:
                _stop_process(child, 5.0)
            sys.stderr.write(helper.log_text() if status else "")
            return status
    except (StandaloneError, OSError) as error:
        print(f"standalone: {error}", file=sys.stderr)
        return SETUP_FAILED_EXIT
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
