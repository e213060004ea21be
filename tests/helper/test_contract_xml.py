"""The introspection XML, the polkit policy and the bus policy agree with contract.py."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from importlib import resources

from chadthrottle.contract import BUS_NAME, INTERFACE, INTROSPECTION_XML, METHODS, Action
from chadthrottle.helper.adapter.introspection import introspection_xml
from chadthrottle.helper.adapter.introspection import introspection_xml as load_introspection_xml
from chadthrottle.usage_contract import MAX_USAGE_ROWS, OTHER_APPLICATIONS_ID, UsageResolution


def _resource(name: str) -> str:
    return resources.files("chadthrottle.resources").joinpath(name).read_text("utf-8")


def _interface(name: str) -> ElementTree.Element:
    root = ElementTree.fromstring(_resource(INTROSPECTION_XML))
    found = [node for node in root.findall("interface") if node.get("name") == name]
    assert len(found) == 1, f"interface {name} appears {len(found)} times"
    return found[0]


def test_xml_methods_match_the_contract_exactly() -> None:
    methods = {}
    for method in _interface(INTERFACE).findall("method"):
        args = method.findall("arg")
        assert all(arg.get("name") for arg in args), f"{method.get('name')}: unnamed argument"
        in_signature = "".join(
            arg.get("type", "") for arg in args if arg.get("direction", "in") == "in"
        )
        out_signature = "".join(
            arg.get("type", "") for arg in args if arg.get("direction") == "out"
        )
        methods[method.get("name")] = (in_signature, out_signature)
    assert methods == {
        name: (spec.in_signature, spec.out_signature) for name, spec in METHODS.items()
    }


def test_every_method_is_documented() -> None:
    for method in _interface(INTERFACE).findall("method"):
        docs = [
            a for a in method.findall("annotation") if a.get("name") == "org.gtk.GDBus.DocString"
        ]
        assert docs and docs[0].get("value"), f"{method.get('name')} has no doc annotation"


def test_xml_declares_the_standard_interfaces_the_service_answers() -> None:
    assert (
        _interface("org.freedesktop.DBus.Introspectable").find("method[@name='Introspect']")
        is not None
    )
    assert _interface("org.freedesktop.DBus.Peer").find("method[@name='Ping']") is not None
    assert _interface(INTERFACE).find("property") is None  # no Properties are served


def test_service_serves_this_file() -> None:
    """The served text is the file; tests/helper/adapter checks it over a real bus."""
    assert load_introspection_xml() == _resource(INTROSPECTION_XML)


def _policy_defaults() -> dict[str, dict[str, str]]:
    root = ElementTree.fromstring(_resource("io.github.chadthrottle.policy"))
    return {
        action.get("id", ""): {
            child.tag: (child.text or "").strip() for child in action.find("defaults") or []
        }
        for action in root.findall("action")
    }


def test_policy_declares_exactly_the_contract_actions() -> None:
    assert set(_policy_defaults()) == {action.value for action in Action}


def test_policy_never_allows_callers_without_an_active_session() -> None:
    for action_id, defaults in _policy_defaults().items():
        assert defaults["allow_any"] == "no", action_id
        assert defaults["allow_inactive"] == "no", action_id
    defaults = _policy_defaults()
    assert defaults[Action.LIMIT_ANY.value]["allow_active"].startswith("auth_admin")
    assert defaults[Action.CONFIGURE.value]["allow_active"].startswith("auth_admin")


def test_bus_policy_lets_only_root_own_the_name() -> None:
    root = ElementTree.fromstring(_resource("io.github.chadthrottle.Helper1.conf"))
    owners = [
        (policy.attrib, allow.get("own"))
        for policy in root.findall("policy")
        for allow in policy.findall("allow")
        if allow.get("own")
    ]
    assert owners == [({"user": "root"}, BUS_NAME)]
    sends = {
        allow.get("send_interface")
        for policy in root.findall("policy")
        if policy.get("context") == "default"
        for allow in policy.findall("allow")
        if allow.get("send_destination") == BUS_NAME
    }
    assert sends == {INTERFACE, "org.freedesktop.DBus.Introspectable", "org.freedesktop.DBus.Peer"}


def test_shipped_file_is_what_the_contract_generates() -> None:
    """The file installed with the package is the XML the helper serves; after
    changing a method in common/contract.py, write it anew (the command is in
    helper/adapter/introspection.py)."""
    assert _resource(INTROSPECTION_XML) == introspection_xml(), (
        "resources/io.github.chadthrottle.Helper1.xml is stale: "
        "python -m chadthrottle.helper.adapter.introspection > resources/io.github.chadthrottle.Helper1.xml"
    )


def test_xml_arguments_are_the_declared_ones_in_order() -> None:
    for method in _interface(INTERFACE).findall("method"):
        spec = METHODS[method.get("name", "")]
        declared = [(arg.name, arg.signature, "in") for arg in spec.in_args]
        declared += [(arg.name, arg.signature, "out") for arg in spec.out_args]
        shown = [
            (arg.get("name"), arg.get("type"), arg.get("direction"))
            for arg in method.findall("arg")
        ]
        assert shown == declared, spec.name


def test_usage_doc_numbers_are_usage_contracts() -> None:
    """GetUsage's doc lives in contract.py, its numbers in usage_contract.py
    (which the CLI does not import for every call): they must agree."""
    doc = METHODS["GetUsage"].doc
    assert f"At most {MAX_USAGE_ROWS} rows" in doc
    assert OTHER_APPLICATIONS_ID in doc
    assert all(resolution.value in doc for resolution in UsageResolution)
