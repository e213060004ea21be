"""The desktop, D-Bus, polkit and systemd files under resources/ are valid and
name the same things as common/contract.py. A renamed bus name or action id that
is not renamed everywhere fails here, not on a user's desktop."""

from __future__ import annotations

import configparser
import fnmatch
import re
import subprocess
import tomllib
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from chadthrottle import contract

from tests.support.requirements import require_program

REPO_ROOT = Path(__file__).resolve().parents[2]
RESOURCES = REPO_ROOT / "resources"
APP_ID = "io.github.chadthrottle"
DESKTOP_FILE = RESOURCES / f"{APP_ID}.desktop"
METAINFO_FILE = RESOURCES / f"{APP_ID}.metainfo.xml"
BUS_POLICY_FILE = RESOURCES / f"{contract.BUS_NAME}.conf"
ACTIVATION_FILE = RESOURCES / f"{contract.BUS_NAME}.service"
POLKIT_FILE = RESOURCES / f"{APP_ID}.policy"
SYSTEMD_UNIT_FILE = RESOURCES / "chadthrottle-helper.service"
FLATPAK_MANIFEST = REPO_ROOT / "packaging" / "flatpak" / f"{APP_ID}.yml"


def read_ini(path: Path) -> configparser.ConfigParser:
    """Desktop entries, D-Bus activation files and systemd units are all
    "[Group]" + "Key=Value" files; keys keep their case."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text(encoding="utf-8"))
    return parser


def run_validator(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, f"{' '.join(argv)} failed:\n{result.stdout}{result.stderr}"


def test_desktop_file_validates() -> None:
    run_validator([require_program("desktop-file-validate"), str(DESKTOP_FILE)])


def test_metainfo_validates() -> None:
    run_validator([require_program("appstreamcli"), "validate", "--no-net", str(METAINFO_FILE)])


def test_desktop_file_and_metainfo_agree() -> None:
    entry = read_ini(DESKTOP_FILE)["Desktop Entry"]
    metainfo = ElementTree.parse(METAINFO_FILE).getroot()
    assert metainfo.findtext("id") == APP_ID
    assert metainfo.findtext("launchable[@type='desktop-id']") == DESKTOP_FILE.name
    assert metainfo.findtext("project_license") == "GPL-3.0-or-later"
    assert metainfo.find("content_rating") is not None
    assert next(r.get("version") for r in metainfo.iter("release")) == "0.1.0"
    assert entry["Icon"] == APP_ID
    assert (RESOURCES / f"{entry['Icon']}.svg").is_file()
    provided_buses = [e.text for e in metainfo.iterfind("provides/dbus[@type='system']")]
    assert provided_buses == [contract.BUS_NAME]


@pytest.mark.parametrize("name", [f"{APP_ID}.svg", f"{APP_ID}-symbolic.svg"])
def test_icons_are_svg_with_a_view_box(name: str) -> None:
    root = ElementTree.parse(RESOURCES / name).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("viewBox")


def test_bus_policy_lets_only_root_own_the_bus_name() -> None:
    root = ElementTree.parse(BUS_POLICY_FILE).getroot()
    owners = {
        (policy.get("user"), policy.get("context"), allow.get("own"))
        for policy in root.iter("policy")
        for allow in policy.iter("allow")
        if allow.get("own") is not None
    }
    assert owners == {("root", None, contract.BUS_NAME)}
    destinations = {e.get("send_destination") for e in root.iter() if e.get("send_destination")}
    assert destinations == {contract.BUS_NAME}
    interfaces = {e.get("send_interface") for e in root.iter() if e.get("send_interface")}
    assert contract.INTERFACE in interfaces


def test_polkit_policy_declares_exactly_the_contract_actions() -> None:
    root = ElementTree.parse(POLKIT_FILE).getroot()
    declared = [action.get("id") for action in root.iter("action")]
    assert sorted(declared) == sorted(action.value for action in contract.Action)
    for action in root.iter("action"):
        assert action.findtext("description"), action.get("id")
        assert action.findtext("message"), action.get("id")
        # Fail closed: nobody without a session gets anything by default.
        assert action.findtext("defaults/allow_any") == "no", action.get("id")


def test_methods_name_only_declared_actions() -> None:
    declared = {
        action.get("id") for action in ElementTree.parse(POLKIT_FILE).getroot().iter("action")
    }
    for spec in contract.METHODS.values():
        if isinstance(spec.action, contract.Action):
            assert spec.action.value in declared, spec.name


def test_activation_file_names_the_bus_and_the_systemd_unit() -> None:
    service = read_ini(ACTIVATION_FILE)["D-BUS Service"]
    assert service["Name"] == contract.BUS_NAME
    assert service["User"] == "root"
    assert service["Exec"].split()[0].endswith("/chadthrottle-helper")
    assert service["SystemdService"] == SYSTEMD_UNIT_FILE.name


def test_systemd_unit_is_a_hardened_dbus_service() -> None:
    unit = read_ini(SYSTEMD_UNIT_FILE)["Service"]
    assert unit["Type"] == "dbus"
    assert unit["BusName"] == contract.BUS_NAME
    assert unit["ExecStart"].split()[0].endswith("/chadthrottle-helper")
    assert unit["ProtectSystem"] == "strict"
    assert unit["ProtectHome"] == "yes"
    assert unit["PrivateTmp"] == "yes"
    assert unit["NoNewPrivileges"] == "yes"
    assert set(unit["RestrictAddressFamilies"].split()) == {"AF_UNIX", "AF_NETLINK"}
    # Each one measured (docs/packaging.md); tests/packaging/test_debian_package.py runs the helper with them.
    assert set(unit["CapabilityBoundingSet"].split()) == {
        "CAP_SYS_ADMIN",
        "CAP_NET_ADMIN",
        "CAP_BPF",
        "CAP_PERFMON",
        "CAP_SYS_PTRACE",
    }
    assert unit["StateDirectory"] == "chadthrottle"


def test_flatpak_manifest_talks_to_the_helper_bus_name() -> None:
    text = FLATPAK_MANIFEST.read_text(encoding="utf-8")
    assert re.search(rf"^(?:app-)?id:\s*{re.escape(APP_ID)}\s*$", text, re.MULTILINE)
    assert re.findall(r"--system-talk-name=([\w.]+)", text) == [contract.BUS_NAME]


def test_every_resource_file_is_package_data() -> None:
    """A file in resources/ that no package-data glob matches is missing from the
    wheel, and from the installed helper and GUI."""
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    globs = pyproject["tool"]["setuptools"]["package-data"]["chadthrottle.resources"]
    for path in RESOURCES.iterdir():
        if path.is_file() and path.suffix != ".py":
            assert any(fnmatch.fnmatch(path.name, g) for g in globs), path.name


def test_every_python_package_is_listed_in_pyproject() -> None:
    """Editable installs find unlisted subpackages anyway; a wheel (and the
    Flatpak) silently lacks them. List each one in [tool.setuptools] packages."""
    setuptools_config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))[
        "tool"
    ]["setuptools"]
    listed = set(setuptools_config["packages"])
    found = set()
    for package, directory in setuptools_config["package-dir"].items():
        root = REPO_ROOT / directory
        for init_file in root.rglob("__init__.py"):
            relative = init_file.parent.relative_to(root).parts
            found.add(".".join((package, *relative)))
    assert sorted(found - listed) == [], "packages missing from pyproject.toml"
    assert sorted(listed - found) == [], "listed packages without a directory"
