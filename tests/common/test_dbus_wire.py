"""chadthrottle.dbus_wire, the CLI's own D-Bus marshalling, checked against
dbus-fast's (the helper's): the same bytes for every call the contract has,
the helper's replies read back as dbus-fast reads them, and malformed input
refused with a WireError, never another exception."""

from __future__ import annotations

import contextlib
import struct
from pathlib import Path

import pytest
from chadthrottle.contract import (
    BUS_NAME,
    INTERFACE,
    METHODS,
    OBJECT_PATH,
    ApplicationInfo,
    RuleInfo,
)
from chadthrottle.dbus_codec import encode_application, encode_rule
from chadthrottle.dbus_wire import (
    INVALID_MESSAGE,
    NO_SERVER,
    Variant,
    WireError,
    complete_types,
    decode_message,
    encode_call,
    socket_addresses,
)
from chadthrottle.record_codec import decode_application, decode_rule
from dbus_fast import Message, MessageType
from dbus_fast import Variant as FastVariant
from hypothesis import given, settings
from hypothesis import strategies as st

APP = ApplicationInfo(
    id="app:org.example.Café", name="naïve \u202e\x1b[2J", icon="", uids=(1000, 0), pids=(4, 4_000_000),
    down_bps=1.5e9, up_bps=0.0, rx_bytes=2**64 - 1, tx_bytes=0, down_limit_bps=10**11, up_limit_bps=0,
    running=False, down_limit_owner=-1, up_limit_owner=2**31, down_limit_problem="ifb0: gone",
)  # fmt: skip
RULE = RuleInfo("exe:/usr/bin/curl", "down", 1_000, 1_500, -1, True)
SAMPLES = {"s": "app:\u00e9 x", "o": "/a", "g": "as", "t": 2**64 - 1, "x": -(2**63), "u": 7, "i": -7, "q": 9,
           "n": -9, "y": 200, "b": True, "d": 0.5}  # fmt: skip


def _sample_body(signature: str) -> list[object]:
    """A value for each argument of a signature of basic types (arrays empty)."""
    return [
        [] if single.startswith("a") else SAMPLES[single] for single in complete_types(signature)
    ]


def _fast_reply(signature: str, body: list[object], *, error_name: str | None = None) -> bytes:
    message = Message(
        message_type=MessageType.ERROR if error_name else MessageType.METHOD_RETURN, reply_serial=7, serial=9,
        destination=":1.5", signature=signature, body=body, error_name=error_name,
    )  # fmt: skip
    return bytes(message._marshall(False))


@pytest.mark.parametrize("member", sorted(METHODS))
@pytest.mark.parametrize("flags", [0, 4])
def test_every_call_is_marshalled_as_dbus_fast_marshals_it(member: str, flags: int) -> None:
    signature = METHODS[member].in_signature
    body = _sample_body(signature)
    ours = encode_call(11, BUS_NAME, OBJECT_PATH, INTERFACE, member, signature, body, flags)
    theirs = Message(destination=BUS_NAME, path=OBJECT_PATH, interface=INTERFACE, member=member,
                     signature=signature, body=body, serial=11, flags=flags)._marshall(False)  # fmt: skip
    assert ours == bytes(theirs)


def test_a_listing_reads_back_as_the_helper_encoded_it() -> None:
    data = _fast_reply("aa{sv}", [[encode_application(APP), encode_application(APP)]])
    message_type, _flags, fields, body = decode_message(data)
    assert message_type == 2 and fields[5] == 7 and fields[8] == "aa{sv}"
    assert [decode_application(entry) for entry in body[0]] == [APP, APP]
    rules = decode_message(_fast_reply("aa{sv}", [[encode_rule(RULE)]]))[3]
    assert decode_rule(rules[0][0]) == RULE


def test_an_error_reply_carries_its_name_and_text() -> None:
    data = _fast_reply(
        "s", ["polkit said no"], error_name="io.github.chadthrottle.Error.NotAuthorized"
    )
    message_type, _flags, fields, body = decode_message(data)
    assert (message_type, fields[4], body) == (
        3,
        "io.github.chadthrottle.Error.NotAuthorized",
        ["polkit said no"],
    )


def _fast(value: object) -> object:
    """Our values with dbus-fast's Variant in place of ours."""
    if isinstance(value, Variant):
        return FastVariant(value.signature, _fast(value.value))
    if isinstance(value, dict):
        return {key: _fast(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_fast(item) for item in value]
    return value


def test_every_type_round_trips_and_is_marshalled_as_dbus_fast_marshals_it() -> None:
    signature = "ybnqiuxtdsoga{sv}(ias)av"
    body = [255, True, -2, 65535, -(2**31), 2**32 - 1, -(2**63), 2**64 - 1, 0.25, "ß", "/a/b", "a{sv}",
            {"k": Variant("as", ["x", "y"])}, [-1, ["p"]], [Variant("u", 3), Variant("(sb)", ["s", False])]]  # fmt: skip
    ours = encode_call(3, "d.e", "/p", "i.f", "M", signature, body)
    theirs = Message(destination="d.e", path="/p", interface="i.f", member="M", signature=signature,
                     body=_fast(body), serial=3)._marshall(False)  # fmt: skip
    assert ours == bytes(theirs)
    assert decode_message(ours)[3] == body


def test_a_big_endian_message_is_read() -> None:
    body = (b"\x00\x00\x00\x12" + bytes(4) + b"\x00\x00\x00\x01k\x00" + b"\x01s\x00" + bytes(3)
            + b"\x00\x00\x00\x01v\x00" + bytes(2) + b"\x00\x00\x00\x08" + b"\x00\x00\x00\x03abc\x00")  # fmt: skip
    assert decode_message(_big_endian_return("a{sv}as", body))[3] == [
        {"k": Variant("s", "v")},
        ["abc"],
    ]


def _big_endian_return(signature: str, body: bytes) -> bytes:
    """A METHOD_RETURN in big-endian order, built by hand (dbus-fast writes only little-endian)."""
    sig = signature.encode()
    fields = b"\x05\x01u\x00\x00\x00\x00\x07" + b"\x08\x01g\x00" + bytes([len(sig)]) + sig + b"\x00"
    header = b"B\x02\x00\x01" + struct.pack(">III", len(body), 1, len(fields)) + fields
    return header + bytes(-len(header) % 8) + body


def test_nesting_is_bounded() -> None:
    levels = 70
    nested = struct.pack(">I", 1) + b"\x07"  # the innermost ay: one byte
    for _ in range(levels - 1):
        nested = struct.pack(">I", len(nested)) + nested
    with pytest.raises(WireError, match="nested too deeply"):
        decode_message(_big_endian_return("a" * levels + "y", nested))
    assert decode_message(_big_endian_return("aaay", struct.pack(">III", 9, 5, 1) + b"\x07"))[
        3
    ] == [[[[7]]]]


@pytest.mark.parametrize("signature", ["a", "(", "()", "(a{sv}", "a{vs}", "{ss}", "z"])
def test_a_bad_signature_is_a_wire_error(signature: str) -> None:
    with pytest.raises(WireError):
        decode_message(_big_endian_return(signature, b""))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not a D-Bus message"),
        (b"x" * 16, "not a D-Bus message"),
        (_fast_reply("s", ["abc"])[:-3], "past the end"),
        (_fast_reply("s", ["abc"]) + b"\x00" * 8, "longer than its signature"),
        (_fast_reply("s", ["abc"]).replace(b"abc", b"a\xffc"), "not UTF-8"),
        (
            _fast_reply("au", [[1, 2]]).replace(b"\x08\x00\x00\x00\x01", b"\xf8\x00\x00\x00\x01"),
            "array",
        ),
    ],
)
def test_a_malformed_message_is_a_wire_error(data: bytes, reason: str) -> None:
    with pytest.raises(WireError, match=reason) as caught:
        decode_message(data)
    assert caught.value.name == INVALID_MESSAGE


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_corruption_is_a_wire_error_or_a_message(data: st.DataObject) -> None:
    """Flipped, cut or added bytes never raise anything but WireError."""
    message = bytearray(_fast_reply("aa{sv}", [[encode_application(APP)]]))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(message) - 1))
        message[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(message)))
    with contextlib.suppress(WireError):
        decode_message(bytes(message[:cut]))


@pytest.mark.parametrize(
    ("address", "sockets"),
    [
        ("unix:path=/run/dbus/system_bus_socket", ["/run/dbus/system_bus_socket"]),
        ("unix:path=/tmp/a%20b,guid=0123", ["/tmp/a b"]),
        ("tcp:host=x,port=1;unix:abstract=/tmp/dbus-x", [b"\0/tmp/dbus-x"]),
        ("unix:path=/a;unix:path=/b", ["/a", "/b"]),
    ],
)
def test_bus_addresses(address: str, sockets: list[object]) -> None:
    assert socket_addresses(address) == sockets


@pytest.mark.parametrize(
    "address", ["", "tcp:host=localhost,port=4000", "unix:tmpdir=/tmp", "unix:path=/a%zz"]
)
def test_an_address_without_a_usable_socket_is_no_server(address: str) -> None:
    with pytest.raises(WireError) as caught:
        socket_addresses(address)
    assert caught.value.name == NO_SERVER


class _SilentBus:
    """A unix socket that answers authentication as a bus does, then says
    what it is told to: nothing, a hang-up, or bytes that are no message.
    (Timeouts and hang-ups, which a real bus daemon does not do on request.)"""

    def __init__(self, path: str, auth_reply: bytes, then: bytes | None) -> None:
        import socket
        import threading

        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(1)
        self.auth_reply, self.then = auth_reply, then
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        peer, _ = self.server.accept()
        with peer:
            received = b""
            while b"\r\n" not in received:
                received += peer.recv(4096)
            peer.sendall(self.auth_reply)
            if self.then is None:  # hang up
                return
            try:
                peer.sendall(self.then)
                while peer.recv(4096):  # then stay silent until the client leaves
                    pass
            except OSError:  # the client left first (it refused the authentication)
                pass

    def close(self) -> None:
        self.server.close()
        self.thread.join(5)


@pytest.mark.parametrize(
    ("auth_reply", "then", "name"),
    [
        (b"OK 0123456789abcdef0123456789abcdef\r\n", b"", "org.freedesktop.DBus.Error.NoReply"),
        (
            b"OK 0123456789abcdef0123456789abcdef\r\n",
            None,
            "org.freedesktop.DBus.Error.Disconnected",
        ),
        (b"OK 0123456789abcdef0123456789abcdef\r\n", b"\x00" * 16, INVALID_MESSAGE),
        (b"REJECTED EXTERNAL\r\n", b"", NO_SERVER),
    ],
)
def test_a_bus_that_does_not_answer_ends_the_call_with_a_named_error(
    auth_reply: bytes, then: bytes | None, name: str, tmp_path: Path
) -> None:
    import time

    from chadthrottle.dbus_wire import Connection

    path = f"{tmp_path}/bus"
    bus = _SilentBus(path, auth_reply, then)
    started = time.monotonic()
    try:
        with pytest.raises(WireError) as caught:
            connection = Connection(f"unix:path={path}", timeout_s=0.5)
            try:
                connection.call("a.b", "/a", "a.b", "M", "", [], timeout_s=0.5)
            finally:
                connection.close()
    finally:
        bus.close()
    assert caught.value.name == name
    assert time.monotonic() - started < 3.0


def test_no_socket_at_the_address_is_no_server(tmp_path: Path) -> None:
    from chadthrottle.dbus_wire import Connection

    with pytest.raises(WireError) as caught:
        Connection(
            f"unix:path={tmp_path}/nothing;unix:path={tmp_path}/nothing-either", timeout_s=0.5
        )
    assert caught.value.name == NO_SERVER and "nothing-either" in caught.value.message
