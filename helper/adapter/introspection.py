"""The introspection XML of the helper's object, generated from contract.METHODS.

The helper answers Introspect with this text, and the same text is shipped as
resources/io.github.chadthrottle.Helper1.xml (for people and tools that read
the API without a running helper); tests/helper/test_contract_xml.py fails
when the shipped file is not what this module generates. After changing a
method in common/contract.py, write the file anew:

    .venv/bin/python -m chadthrottle.helper.adapter.introspection > resources/io.github.chadthrottle.Helper1.xml
"""

from __future__ import annotations

import sys

from chadthrottle.contract import (
    ERROR_PREFIX,
    INTERFACE,
    METHODS,
    OBJECT_PATH,
    Action,
    ErrorName,
    MethodSpec,
)

INTROSPECTABLE_INTERFACE = "org.freedesktop.DBus.Introspectable"
PEER_INTERFACE = "org.freedesktop.DBus.Peer"
_DOC = "org.gtk.GDBus.DocString"


def quoteattr(data: str) -> str:
    """xml.sax.saxutils.quoteattr, the same text: importing that module
    imports urllib.request, and with it http.client and email (9 ms of the
    helper's start, which needs none of them)."""
    data = data.replace("&", "&amp;").replace(">", "&gt;").replace("<", "&lt;")
    data = data.replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#9;")
    if '"' not in data:
        return f'"{data}"'
    if "'" not in data:
        return f"'{data}'"
    return '"{}"'.format(data.replace('"', "&quot;"))


_HEADER = f"""<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">
<!--
  The ChadThrottle root helper, served at {OBJECT_PATH} by the
  bus name {INTERFACE}. Generated from common/contract.py by
  helper/adapter/introspection.py: do not edit; tests/helper/test_contract_xml.py
  checks that this file is what it generates.
  Rates are bytes per second on the wire at L3 (IP header included).
  Every method is authorized through polkit; errors are {ERROR_PREFIX}*.
-->
"""


def _interface_doc() -> str:
    errors = ", ".join(name.value.removeprefix(ERROR_PREFIX) for name in ErrorName)
    return f"Per-application network monitor and bandwidth limiter. Errors: {errors} (under {ERROR_PREFIX})."


def method_doc(spec: MethodSpec) -> str:
    """The method's documentation; a method authorized by one action names it."""
    if isinstance(spec.action, Action):
        return f"{spec.doc} polkit action: {spec.action.value}."
    return spec.doc


def _method_xml(spec: MethodSpec) -> list[str]:
    lines = [f"    <method name={quoteattr(spec.name)}>"]
    lines.append(f"      <annotation name={quoteattr(_DOC)} value={quoteattr(method_doc(spec))}/>")
    for direction, args in (("in", spec.in_args), ("out", spec.out_args)):
        for arg in args:
            lines.append(
                f'      <arg name={quoteattr(arg.name)} type={quoteattr(arg.signature)} direction="{direction}"/>'
            )
    lines.append("    </method>")
    return lines


def introspection_xml() -> str:
    """The XML the helper serves and ships: its interface and the standard ones it answers."""
    lines = [_HEADER + "<node>", f"  <interface name={quoteattr(INTERFACE)}>"]
    lines.append(f"    <annotation name={quoteattr(_DOC)} value={quoteattr(_interface_doc())}/>")
    for spec in METHODS.values():
        lines.extend(_method_xml(spec))
    lines += [
        "  </interface>",
        f"  <interface name={quoteattr(INTROSPECTABLE_INTERFACE)}>",
        '    <method name="Introspect">',
        '      <arg name="xml_data" type="s" direction="out"/>',
        "    </method>",
        "  </interface>",
        f"  <interface name={quoteattr(PEER_INTERFACE)}>",
        '    <method name="Ping"/>',
        "  </interface>",
        "</node>",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(introspection_xml())
