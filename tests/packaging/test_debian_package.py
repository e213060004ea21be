"""The Debian package: built by packaging/debian/build, installed with apt on a
clean Debian 12 root (debootstrap), and run there for real.

Inside the root (tests/packaging/fresh_root/): booted with systemd in
systemd-nspawn, the bus starting the helper under the hardened unit and a limit
holding there; then chrooted, Debian's system bus configuration and polkitd,
the bus starting the packaged helper and the GUI connecting to it, a limit on a
real TCP connection, then `apt-get remove` and `purge` with a limit in force, and
what is left. Takes about two minutes (more on the first run of a day, which
makes the base root).
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from chadthrottle.helper.standalone import PrivateSystemBus

from tests.support import fresh_debian_root
from tests.support.package_preparation import LOG, Installed, Preparation, started
from tests.support.requirements import require, require_program, require_root

REPO_ROOT = Path(__file__).resolve().parents[2]
PRIVATE_REQUIREMENTS = REPO_ROOT / "packaging" / "debian" / "private-requirements.txt"
UNIT = REPO_ROOT / "resources" / "chadthrottle-helper.service"
APP_ID = "io.github.chadthrottle"
# pyproject.toml dependencies that Debian 12 has new enough, and its package for each.
FROM_DEBIAN = {"psutil": "python3-psutil", "numpy": "python3-numpy"}
# Linux capability numbers (linux/capability.h) of the names the unit uses.
CAPABILITY_BITS = {
    "CAP_NET_ADMIN": 12,
    "CAP_SYS_PTRACE": 19,
    "CAP_SYS_ADMIN": 21,
    "CAP_PERFMON": 38,
    "CAP_BPF": 39,
}

pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="module")
def preparation() -> Iterator[Preparation]:
    """The package build and the clean root, started when the session's tests
    were collected (tests/packaging/conftest.py); what they made is deleted at
    the end of the module, after the threads have finished, however they did."""
    prepared = started()
    assert prepared is not None, "tests/packaging/conftest.py did not start the preparation"
    try:
        yield prepared
    finally:
        prepared.close()


@pytest.fixture(scope="module")
def root_preparation(preparation: Preparation) -> Future[Installed] | None:
    """Today's base root unpacked into a new directory and the package
    installed there with apt (None: no selected test needs it, or no root,
    debootstrap or bus to make it with)."""
    return preparation.root


@pytest.fixture(scope="module")
def deb(preparation: Preparation) -> Path:
    require_program("dpkg-deb")
    assert preparation.deb is not None
    return preparation.deb.result()


def _contents(deb: Path) -> dict[str, str]:
    """Path in the package -> its tar type letter (d, -, l)."""
    listing = subprocess.run(
        ["dpkg-deb", "--contents", str(deb)], capture_output=True, text=True, check=True
    )
    entries = {}
    for line in listing.stdout.splitlines():
        fields = line.split(maxsplit=5)
        path = fields[5].split(" -> ")[0].removeprefix(".")
        entries[path.rstrip("/") or "/"] = fields[0][0]
    return entries


def _control(deb: Path) -> dict[str, str]:
    text = subprocess.run(
        ["dpkg-deb", "--field", str(deb)], capture_output=True, text=True, check=True
    ).stdout
    return dict(re.findall(r"(?m)^([\w-]+): (.*)$", text))


def test_package_puts_each_file_where_the_desktop_and_the_bus_look(deb: Path) -> None:
    contents = _contents(deb)
    expected = {
        "/usr/bin/chadthrottle", "/usr/bin/chadthrottle-ctl", "/usr/bin/chadthrottle-helper",
        "/usr/share/dbus-1/system.d/io.github.chadthrottle.Helper1.conf",
        "/usr/share/dbus-1/system-services/io.github.chadthrottle.Helper1.service",
        "/usr/share/polkit-1/actions/io.github.chadthrottle.policy",
        "/usr/lib/systemd/system/chadthrottle-helper.service",
        "/usr/lib/tmpfiles.d/chadthrottle.conf",  # the run records' directory from boot
        f"/usr/share/applications/{APP_ID}.desktop", f"/usr/share/metainfo/{APP_ID}.metainfo.xml",
        f"/usr/share/icons/hicolor/scalable/apps/{APP_ID}.svg",
        f"/usr/share/icons/hicolor/symbolic/apps/{APP_ID}-symbolic.svg",
        "/usr/share/doc/chadthrottle/copyright", "/usr/lib/chadthrottle/venv/pyvenv.cfg",
    }  # fmt: skip
    assert sorted(expected - set(contents)) == []
    # Only under /usr: no conffiles, and the state is the helper's to make (and purge's to remove).
    outside = [p for p in contents if p not in ("/", "/usr") and not p.startswith("/usr/")]
    assert outside == []
    venv = "/usr/lib/chadthrottle/venv/lib/python3.11/site-packages"
    for package in ("chadthrottle", "PySide6", "dbus_fast", "pyroute2", "pyqtgraph"):
        assert f"{venv}/{package}/__init__.py" in contents, package
    # Bytecode comes with the package: a root helper must not write into /usr.
    assert f"{venv}/chadthrottle/helper/__pycache__/main.cpython-311.pyc" in contents
    assert not any("/bcc/" in p or "/psutil/" in p or "/numpy/" in p for p in contents), (
        "Debian's, not ours"
    )


def test_what_debian_has_comes_from_debian_and_the_rest_is_carried(deb: Path) -> None:
    control = _control(deb)
    depends = {
        alternative.split()[0]
        for group in control["Depends"].split(",")
        for alternative in group.split("|")
    }
    assert {"python3-bpfcc", "polkitd", *FROM_DEBIAN.values()} <= depends
    assert control["Architecture"] == "amd64"
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert control["Version"].startswith(pyproject["version"] + "-")
    carried = {
        re.split(r"[=<>!]", line)[0].strip().lower().replace("_", "-")
        for line in PRIVATE_REQUIREMENTS.read_text().splitlines()
        if line and not line[0].isspace() and not line.startswith("#")
    }
    for requirement in pyproject["dependencies"]:
        name = re.split(r"[=<>!\[ ]", requirement)[0].lower().replace("_", "-")
        assert name in carried or name in FROM_DEBIAN, (
            f"{name}: neither carried nor a Debian dependency"
        )
    for line in PRIVATE_REQUIREMENTS.read_text().splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            assert "==" in line and line.rstrip().endswith("\\"), f"not pinned with a hash: {line}"


@pytest.fixture(scope="module")
def fresh_root(
    deb: Path, private_bus: PrivateSystemBus, root_preparation: Future[Installed] | None
) -> dict[str, Any]:
    """The package installed on a clean Debian 12 root (while a real polkitd
    ran on this machine: conftest.py), and check-installed run there.
    (private_bus: for its requirements, as before.)"""
    require_root()
    for program in ("unshare", "chroot", "tar", "debootstrap"):
        require_program(program)
    assert root_preparation is not None, (
        "tests/packaging/conftest.py did not see this test selected"
    )
    try:
        installed = root_preparation.result()
    except fresh_debian_root.RootUnavailable as missing:
        require(False, str(missing))
        raise
    results = fresh_debian_root.run_checks(installed.root, LOG)
    results["host_polkitd_alive"] = installed.host_polkitd_alive
    return results


def test_installing_in_the_root_leaves_the_machines_own_daemons_alone(
    fresh_root: dict[str, Any],
) -> None:
    """The install once stopped every polkitd on the machine (the host's, other
    test sessions'): polkitd's maintainer script saw them all through /proc.
    (A copy of another program named polkitd, even run as user polkitd, was
    not stopped: the script finds the daemon by its executable.)"""
    assert fresh_root["host_polkitd_alive"]


def _unit_capabilities() -> set[str]:
    line = next(
        li for li in UNIT.read_text().splitlines() if li.startswith("CapabilityBoundingSet=")
    )
    return set(line.partition("=")[2].split())


def test_unit_verifies_and_scores_at_most_3_5_on_the_installed_system(
    fresh_root: dict[str, Any],
) -> None:
    assert fresh_root["verify"] == {"status": 0, "output": ""}
    exposure = float(
        re.search(
            r"exposure level for chadthrottle-helper\.service: ([\d.]+)", fresh_root["security"]
        )[1]
    )
    assert exposure <= 3.5, fresh_root["security"]


def test_the_bus_starts_the_packaged_helper_and_it_answers(fresh_root: dict[str, Any]) -> None:
    assert (
        "/usr/lib/chadthrottle/venv/bin/python3 -IB /usr/bin/chadthrottle-helper"
        in fresh_root["activated_helper"]
    )
    backends = {b["name"]: b for b in fresh_root["backends"]}
    assert backends["tc"]["available"] and backends["ebpf"]["available"], backends


def test_the_packaged_gui_starts_and_connects_to_the_helper(fresh_root: dict[str, Any]) -> None:
    """PySide6 and pyqtgraph from the private environment, numpy from Debian.
    Its user may monitor (a polkit rule stands in for a desktop's active
    session): the helper answers and the screenshot shows its list."""
    gui = fresh_root["gui"]
    assert gui["status"] == 0 and gui["connected"] and gui["screenshot_bytes"] > 10_000, gui
    assert not gui["refused"], gui
    # The xcb platform plugin loads on an X11 desktop only if the package's Depends bring its libraries.
    assert fresh_root["qt_missing_libraries"] == ""


def _assert_limit_held(measured: dict[str, Any]) -> None:
    limit = measured["limit_bps"]
    # Payload under a limit counted on the wire at L3: a few percent below it.
    assert 0.85 * limit <= measured["limited_bps"] <= 1.05 * limit, measured
    assert measured["before_bps"] > 10 * limit and measured["after_clear_bps"] > 10 * limit, (
        measured
    )
    assert [
        (r["direction"], r["rate_bps"], r["in_force"]) for r in measured["rules_while_limited"]
    ] == [("down", limit, True)]


def test_the_first_start_after_the_install_loads_the_programs_postinst_built(
    fresh_root: dict[str, Any],
) -> None:
    """The helper takes its bus name only once its programs are loaded: a first
    start that compiled them missed dbus-daemon's 25 s activation timeout at
    load 9 (pkg32, CI). postinst now builds them for the running kernel
    (`chadthrottle-helper build-cache`), so the first activation, under the
    unit in the booted root, reads them from the cache."""
    first = fresh_root["unit_first_start"]
    assert "datapath attached" in first and "(programs from the cache" in first, first
    assert "compiling the BPF" not in first, first


def test_a_limit_holds_on_a_real_connection(fresh_root: dict[str, Any]) -> None:
    _assert_limit_held(fresh_root["limit"])


def test_under_systemd_the_bus_starts_the_hardened_unit_and_a_limit_holds(
    fresh_root: dict[str, Any],
) -> None:
    """The root booted with systemd (systemd-nspawn): SystemdService= runs the unit
    with its whole sandbox, seccomp filter included. (A test of the helper under
    the part of that sandbox that could be had without systemd was merged in
    here: its checks are the bounding set, no_new_privs and read-only root below.)"""
    # made at boot (tmpfiles.d) before any helper ran: a Flatpak window started
    # then is given it (docs/packaging.md, "Flatpak"; lock26)
    assert fresh_root["status_dir_at_boot"] == "root 755", fresh_root["status_dir_at_boot"]
    unit = fresh_root["unit_process"]
    assert unit["active"] == "active", unit
    assert "/usr/bin/chadthrottle-helper" in unit["main_pid_cmdline"], unit
    assert int(unit["bounding_set"], 16) == sum(
        1 << CAPABILITY_BITS[c] for c in _unit_capabilities()
    )
    assert unit["no_new_privs"] == "1" and unit["seccomp"] == "2", unit
    assert unit["read_only_root"] is True, unit
    backends = {b["name"]: b for b in fresh_root["unit_backends"]}
    assert backends["tc"]["available"] and backends["ebpf"]["available"], backends
    _assert_limit_held(fresh_root["unit_limit"])
    assert fresh_root["unit_after_stop"] == {"active": "inactive", "qdiscs": ""}
    # under the unit's sandbox (UMask=0077, ProtectSystem=strict) the helper wrote its
    # run record where a user reads it: the window and the CLI say its limits are off
    record = fresh_root["unit_record_after_stop"]
    assert isinstance(record, dict) and record["state"] == "stopped", record


def test_remove_stops_the_helper_reinstall_restarts_it_and_purge_leaves_nothing(
    fresh_root: dict[str, Any],
) -> None:
    before = fresh_root["state_before_removal"]
    assert "htb" in before and "chadt_" in before, "the helper held nothing in the kernel to remove"
    assert fresh_root["helper_after_removal"] == "gone"
    assert fresh_root["state_after_removal"] == ""
    assert fresh_root["package_files_after_removal"] == ""
    assert fresh_root["run_dir_after_removal"] == ""
    assert "rules.json" in fresh_root["state_dir_after_removal"], "remove keeps the stored limits"
    assert "/usr/bin/chadthrottle-helper" in fresh_root["helper_after_reinstall"], (
        "postinst did not start it"
    )
    assert [(r["direction"], r["rate_bps"]) for r in fresh_root["rules_after_reinstall"]] == [
        ("down", 1_000_000)
    ]
    assert fresh_root["helper_after_purge"] == "gone"
    assert fresh_root["state_after_purge"] == ""
    assert fresh_root["package_files_after_purge"] == ""
    assert fresh_root["new_files_after_purge"] == ""
    assert fresh_root["named_chadthrottle_after_purge"] == ""


def test_a_failing_step_says_which_and_shows_the_bus_activated_helpers_log(
    fresh_root: dict[str, Any], root_preparation: Future[Installed] | None
) -> None:
    """CI n5 failed at step 4 with nothing from the packaged helper: the bus
    started it with the bus's stderr, /dev/null. check-installed now keeps the
    bus's log and, when a step fails, says which step and command and shows
    that log's tail. Run again on the same root after the main run (the
    package installed again): it fails on purpose once the bus has started the
    helper (step 2). Activation that times out (a cold BPF compile beyond the
    bus's 25 s at a heavy load) fails the same step and is reported the same way."""
    assert root_preparation is not None
    root = root_preparation.result().root
    # its own directory: the main run's last-bus.log is what a failure above needs kept
    log = LOG.parent / "fail-after-2" / LOG.name
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    log.with_name("last-bus.log").unlink(missing_ok=True)  # only this run's may pass below
    run = fresh_debian_root.run_check_script(root, log, "fail-after", "2")
    assert run.returncode != 0, run.stderr[-3000:]
    assert re.search(r"FAILED \(exit status \d+\) in step '2\. .*' at line \d+: ", run.stderr), (
        run.stderr[-3000:]
    )
    # the helper's own lines (logged as it starts, before any compile), through the bus's log
    assert re.search(r"(?m)^  bus\| .* INFO chadthrottle\.engine: backends: ", run.stderr), (
        run.stderr[-3000:]
    )
    assert "chadthrottle.engine: backends: " in log.with_name("last-bus.log").read_text()
