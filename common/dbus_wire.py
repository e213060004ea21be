"""A minimal blocking D-Bus connection: method calls over a unix socket.

Why not dbus-fast: importing it costs about 40 ms of CPU (it imports asyncio,
ssl, logging, xml.etree and its own introspection and service layers), more
than the whole budget of one chadthrottle-ctl call (issue 19: under 30 ms).
A command-line call needs none of that: connect, authenticate, call a method,
read the reply. This module does exactly that with the standard library, for
chadthrottle.blocking_client; the helper and the GUI keep dbus-fast.

What it covers: unix:path= and unix:abstract= addresses (what a system bus
listens on), SASL EXTERNAL, method calls and their replies or errors, and the
full D-Bus type system except passing file descriptors. What it does not:
signals, serving objects, other transports (they fail with a named error).
Every message read is checked (lengths, alignment padding stays in bounds,
UTF-8); a malformed one is a WireError, never a crash or an endless wait.
"""

from __future__ import annotations

# The C module behind `socket`: socket.py adds 2 ms of imports (selectors,
# array, its IntEnum conversions) for nothing a blocking unix socket needs.
import _socket
import os
import struct
import time
from collections.abc import Iterator

TYPE_CHECKING = (
    False  # not typing's: importing typing costs a CLI call ~2 ms (mypy reads this name alike)
)
if TYPE_CHECKING:
    from typing import Any

NO_SERVER = "org.freedesktop.DBus.Error.NoServer"
NO_REPLY = "org.freedesktop.DBus.Error.NoReply"
DISCONNECTED = "org.freedesktop.DBus.Error.Disconnected"
INVALID_MESSAGE = "org.freedesktop.DBus.Error.InconsistentMessage"

DEFAULT_SYSTEM_BUS_ADDRESS = "unix:path=/var/run/dbus/system_bus_socket"  # as libdbus and dbus-fast
MAX_MESSAGE_BYTES = 128 * 1024 * 1024  # the specification's limit

METHOD_CALL, METHOD_RETURN, ERROR, SIGNAL = 1, 2, 3, 4
FLAG_ALLOW_INTERACTIVE_AUTHORIZATION = 0x4
_PATH, _INTERFACE, _MEMBER, _ERROR_NAME, _REPLY_SERIAL, _DESTINATION, _SENDER, _SIGNATURE = range(
    1, 9
)

_FIXED = {
    "y": "B",
    "b": "I",
    "n": "h",
    "q": "H",
    "i": "i",
    "u": "I",
    "x": "q",
    "t": "Q",
    "d": "d",
    "h": "I",
}
_ALIGNMENT = {**{code: struct.calcsize(fmt) for code, fmt in _FIXED.items()},
              "s": 4, "o": 4, "g": 1, "a": 4, "(": 8, "{": 8, "v": 1}  # fmt: skip
_MAX_DEPTH = 64
_LITTLE = {code: struct.Struct("<" + fmt) for code, fmt in _FIXED.items()}
_BIG = {code: struct.Struct(">" + fmt) for code, fmt in _FIXED.items()}


class WireError(Exception):
    """The bus could not be reached, or a message could not be sent or read.
    name is a standard org.freedesktop.DBus.Error.* name."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message


class Variant:
    """A D-Bus variant: a value with its own signature."""

    __slots__ = ("signature", "value")

    def __init__(self, signature: str, value: Any) -> None:
        self.signature = signature
        self.value = value

    def __repr__(self) -> str:
        return f"Variant({self.signature!r}, {self.value!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Variant) and (self.signature, self.value) == (
            other.signature,
            other.value,
        )

    __hash__ = None  # type: ignore[assignment]


class Reply:
    """A METHOD_RETURN or ERROR message."""

    __slots__ = ("body", "error_name", "message_type", "signature")

    def __init__(self, message_type: int, error_name: str, signature: str, body: list[Any]) -> None:
        self.message_type = message_type
        self.error_name = error_name
        self.signature = signature
        self.body = body


def complete_types(signature: str) -> Iterator[str]:
    """The single complete types a signature is made of ("sa{sv}" -> "s", "a{sv}")."""
    start = 0
    while start < len(signature):
        end = _type_end(signature, start)
        yield signature[start:end]
        start = end


def _type_end(signature: str, start: int) -> int:
    if start >= len(signature):
        raise WireError(INVALID_MESSAGE, f"bad signature {signature!r}")
    code = signature[start]
    if code == "a":
        return _type_end(signature, start + 1)
    if code in "({":
        closing = ")" if code == "(" else "}"
        position = start + 1
        while position < len(signature) and signature[position] != closing:
            position = _type_end(signature, position)
        if position >= len(signature) or position == start + 1:
            raise WireError(INVALID_MESSAGE, f"bad signature {signature!r}")
        return position + 1
    if code in _ALIGNMENT:
        return start + 1
    raise WireError(INVALID_MESSAGE, f"bad signature {signature!r}")


# --- writing -------------------------------------------------------------------


def _write(buffer: bytearray, signature: str, value: Any) -> None:
    code = signature[0]
    buffer.extend(bytes(-len(buffer) % _ALIGNMENT[code]))
    if code in _FIXED:
        buffer.extend(struct.pack("<" + _FIXED[code], int(value) if code == "b" else value))
    elif code in "so":
        data = value.encode()
        buffer.extend(struct.pack("<I", len(data)) + data + b"\0")
    elif code == "g":
        data = value.encode()
        buffer.extend(struct.pack("<B", len(data)) + data + b"\0")
    elif code == "v":
        _write(buffer, "g", value.signature)
        _write(buffer, value.signature, value.value)
    elif code == "a":
        length_at = len(buffer)
        buffer.extend(bytes(4))
        element = signature[1:]
        buffer.extend(bytes(-len(buffer) % _ALIGNMENT[element[0]]))
        start = len(buffer)
        for item in value.items() if element[0] == "{" else value:
            _write(buffer, element, item)
        struct.pack_into("<I", buffer, length_at, len(buffer) - start)
    else:  # struct or dict entry
        for member, item in zip(complete_types(signature[1:-1]), value, strict=True):
            _write(buffer, member, item)


def encode_call(serial: int, destination: str, path: str, interface: str, member: str,
                signature: str, body: list[Any], flags: int = 0) -> bytes:  # fmt: skip
    """One METHOD_CALL message, little-endian."""
    payload = bytearray()
    for single, value in zip(list(complete_types(signature)), body, strict=True):
        _write(payload, single, value)
    fields = [(_PATH, Variant("o", path)), (_INTERFACE, Variant("s", interface)),
              (_MEMBER, Variant("s", member)), (_DESTINATION, Variant("s", destination))]  # fmt: skip
    if signature:
        fields.append((_SIGNATURE, Variant("g", signature)))
    header = bytearray(struct.pack("<cBBBII", b"l", METHOD_CALL, flags, 1, len(payload), serial))
    _write(header, "a(yv)", fields)
    header.extend(bytes(-len(header) % 8))
    return bytes(header + payload)


# --- reading -------------------------------------------------------------------
#
# A signature is turned once into a reader function (cached), which reads one
# value at an offset and returns it with the offset after it: about six times
# faster than interpreting the signature for every value, which matters for a
# listing of a few hundred applications, read every second by `watch`. Reads
# past the end raise struct.error or WireError; decode_message turns every
# failure into a WireError.

if TYPE_CHECKING:
    from collections.abc import Callable

    ValueReader = Callable[
        [bytes, int, int], tuple[Any, int]
    ]  # (data, offset, depth) -> (value, offset)

_READERS: dict[tuple[str, bool], ValueReader] = {}
_MAX_CACHED_READERS = 512  # signatures come from the bus: a bounded cache


def _past_the_end() -> WireError:
    return WireError(INVALID_MESSAGE, "a value runs past the end of the message")


def _too_deep() -> WireError:
    return WireError(INVALID_MESSAGE, "values nested too deeply")


def reader_for(signature: str, little: bool) -> ValueReader:
    """The reader of one complete type, in one byte order."""
    key = (signature, little)
    found = _READERS.get(key)
    if found is None:
        if _type_end(signature, 0) != len(signature):
            raise WireError(INVALID_MESSAGE, f"{signature!r} is not one complete type")
        found = _build_reader(signature, little)
        if len(_READERS) < _MAX_CACHED_READERS:
            _READERS[key] = found
    return found


def _build_reader(signature: str, little: bool) -> ValueReader:
    code = signature[0]
    fixed = _LITTLE if little else _BIG
    unpack_u32 = fixed["u"].unpack_from
    if code in _FIXED:
        return _fixed_reader(fixed[code], code == "b")
    if code in "so":

        def read_string(data: bytes, offset: int, depth: int) -> tuple[str, int]:
            offset += -offset % 4
            (length,) = unpack_u32(data, offset)
            start = offset + 4
            end = start + length
            if end >= len(data):
                raise _past_the_end()
            return data[start:end].decode(), end + 1

        return read_string
    if code == "g":

        def read_signature(data: bytes, offset: int, depth: int) -> tuple[str, int]:
            end = offset + 1 + data[offset]
            if end >= len(data):
                raise _past_the_end()
            return data[offset + 1 : end].decode(), end + 1

        return read_signature
    if code == "v":
        known: dict[
            bytes, tuple[str, ValueReader]
        ] = {}  # the inner signature's bytes -> its reader

        def read_variant(data: bytes, offset: int, depth: int) -> tuple[Variant, int]:
            if depth > _MAX_DEPTH:
                raise _too_deep()
            end = offset + 1 + data[offset]
            if end >= len(data):
                raise _past_the_end()
            raw = data[offset + 1 : end]
            entry = known.get(raw)
            if entry is None:
                inner = raw.decode()
                entry = (inner, reader_for(inner, little))
                if len(known) < _MAX_CACHED_READERS:
                    known[raw] = entry
            value, offset = entry[1](data, end + 1, depth + 1)
            return Variant(entry[0], value), offset

        return read_variant
    if code == "a":
        return _array_reader(signature[1:], little, unpack_u32)
    if code == "{":
        raise WireError(INVALID_MESSAGE, f"a dictionary entry outside an array in {signature!r}")
    members = [reader_for(member, little) for member in complete_types(signature[1:-1])]

    def read_struct(data: bytes, offset: int, depth: int) -> tuple[list[Any], int]:
        if depth > _MAX_DEPTH:
            raise _too_deep()
        offset += -offset % 8
        values = []
        for member in members:
            value, offset = member(data, offset, depth + 1)
            values.append(value)
        return values, offset

    return read_struct


def _fixed_reader(packing: struct.Struct, boolean: bool) -> ValueReader:
    size, unpack = packing.size, packing.unpack_from

    def read_fixed(data: bytes, offset: int, depth: int) -> tuple[Any, int]:
        offset += -offset % size
        (value,) = unpack(data, offset)
        return (value != 0 if boolean else value), offset + size

    return read_fixed


def _array_reader(
    element: str, little: bool, unpack_u32: Callable[[bytes, int], tuple[int]]
) -> ValueReader:
    alignment = _ALIGNMENT[element[0]]
    if element[0] == "{":
        key_type, value_type = _entry_types(element)
        read_key, read_value = reader_for(key_type, little), reader_for(value_type, little)
    else:
        read_element = reader_for(element, little)

    def read_array(data: bytes, offset: int, depth: int) -> tuple[Any, int]:
        if depth > _MAX_DEPTH:
            raise _too_deep()
        offset += -offset % 4
        (length,) = unpack_u32(data, offset)
        offset += 4
        offset += -offset % alignment
        end = offset + length
        if end > len(data):
            raise WireError(INVALID_MESSAGE, "an array runs past the end of the message")
        found: Any
        if element[0] == "{":
            found = {}
            while offset < end:
                key, offset = read_key(data, offset + -offset % 8, depth + 1)
                found[key], offset = read_value(data, offset, depth + 1)
        else:
            found = []
            while offset < end:
                value, offset = read_element(data, offset, depth + 1)
                found.append(value)
        if offset != end:
            raise WireError(INVALID_MESSAGE, "an array's length does not match its elements")
        return found, offset

    return read_array


def _entry_types(element: str) -> tuple[str, str]:
    types = list(complete_types(element[1:-1]))
    if len(types) != 2 or len(types[0]) != 1 or types[0] in "av({":  # the key: a basic type
        raise WireError(INVALID_MESSAGE, f"bad dictionary entry type {element!r}")
    return types[0], types[1]


def decode_message(data: bytes) -> tuple[int, int, dict[int, Any], list[Any]]:
    """(type, flags, header fields, body) of one whole message."""
    if len(data) < 16 or data[:1] not in (b"l", b"B"):
        raise WireError(INVALID_MESSAGE, "not a D-Bus message")
    little = data[:1] == b"l"
    try:
        header, offset = reader_for("a(yv)", little)(data, 12, 0)
        fields = {code: variant.value for code, variant in header}
        offset += -offset % 8
        body = []
        for single in complete_types(fields.get(_SIGNATURE, "")):
            value, offset = reader_for(single, little)(data, offset, 0)
            body.append(value)
    except UnicodeDecodeError:
        raise WireError(INVALID_MESSAGE, "a string is not UTF-8") from None
    except (
        struct.error,
        IndexError,
        KeyError,
        TypeError,
        ValueError,
        AttributeError,
        RecursionError,
    ) as error:
        raise WireError(INVALID_MESSAGE, f"a malformed message: {type(error).__name__}") from None
    if offset != len(data):
        raise WireError(INVALID_MESSAGE, "the body is longer than its signature says")
    return data[1], data[2], fields, body


# --- the connection ------------------------------------------------------------


def _unescape(value: str) -> str:
    """A D-Bus address value with its %XX escapes decoded."""
    parts = value.split("%")
    raw = bytearray(parts[0].encode())
    for part in parts[1:]:
        try:
            raw.append(int(part[:2], 16))
        except ValueError:
            raise WireError(NO_SERVER, f"bad escape in bus address value {value!r}") from None
        raw.extend(part[2:].encode())
    return raw.decode(errors="surrogateescape")


def socket_addresses(address: str) -> list[str | bytes]:
    """The unix socket addresses (a path, or bytes for an abstract name) an
    address string names, in the order to try them."""
    found: list[str | bytes] = []
    for entry in filter(None, address.split(";")):
        transport, _, rest = entry.partition(":")
        options = dict(option.partition("=")[::2] for option in rest.split(",") if option)
        if transport == "unix" and "path" in options:
            found.append(_unescape(options["path"]))
        elif transport == "unix" and "abstract" in options:
            found.append(b"\0" + _unescape(options["abstract"]).encode(errors="surrogateescape"))
    if not found:
        raise WireError(
            NO_SERVER,
            f"no unix socket in the bus address {address!r} (other transports are not supported)",
        )
    return found


class Connection:
    """One authenticated connection to a bus; calls are made one at a time."""

    def __init__(self, address: str, timeout_s: float) -> None:
        """Connect to the first socket of address that answers, and authenticate."""
        self._serial = 0
        self._buffer = bytearray()
        self._sock: _socket.socket | None = None
        errors = []
        for target in socket_addresses(address):
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
            sock.settimeout(timeout_s)
            try:
                sock.connect(target)
                self._sock = sock
                break
            except OSError as error:
                sock.close()
                errors.append(f"{target!r}: {error.strerror or error}")
        if self._sock is None:
            raise WireError(NO_SERVER, "; ".join(errors))
        try:
            self._authenticate(time.monotonic() + timeout_s)
        except BaseException:
            self.close()
            raise

    def _authenticate(self, deadline: float) -> None:
        """SASL EXTERNAL as our uid, then BEGIN and Hello, which must come first
        (its reply is read, and skipped, by the first call)."""
        self._send(b"\0AUTH EXTERNAL " + str(os.getuid()).encode().hex().encode() + b"\r\n")
        line = self._read_line(deadline)
        if not line.startswith(b"OK "):
            raise WireError(
                NO_SERVER,
                f"the bus refused authentication: {line.decode(errors='replace').strip()}",
            )
        hello = self._next_call(
            "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello", "", []
        )
        self._send(b"BEGIN\r\n" + hello)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def call(self, destination: str, path: str, interface: str, member: str, signature: str,
             body: list[Any], *, timeout_s: float, flags: int = 0) -> Reply:  # fmt: skip
        """Send one method call and wait for its reply (or error) for timeout_s."""
        deadline = time.monotonic() + timeout_s
        message = self._next_call(destination, path, interface, member, signature, body, flags)
        serial = self._serial
        self._send(message)
        while True:
            message_type, _flags, fields, reply_body = decode_message(self._read_message(deadline))
            if message_type in (METHOD_RETURN, ERROR) and fields.get(_REPLY_SERIAL) == serial:
                return Reply(
                    message_type,
                    fields.get(_ERROR_NAME, ""),
                    fields.get(_SIGNATURE, ""),
                    reply_body,
                )

    def _next_call(self, destination: str, path: str, interface: str, member: str, signature: str,
                   body: list[Any], flags: int = 0) -> bytes:  # fmt: skip
        self._serial += 1
        return encode_call(
            self._serial, destination, path, interface, member, signature, body, flags
        )

    def _send(self, data: bytes) -> None:
        if self._sock is None:
            raise WireError(DISCONNECTED, "not connected")
        try:
            self._sock.sendall(data)
        except OSError as error:
            self.close()
            raise WireError(DISCONNECTED, f"lost the bus connection: {error}") from None

    def _receive(self, deadline: float) -> None:
        """Read what the bus sent into the buffer, waiting until deadline."""
        if self._sock is None:
            raise WireError(DISCONNECTED, "not connected")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WireError(NO_REPLY, "no answer in time")
        self._sock.settimeout(remaining)
        try:
            chunk = self._sock.recv(65536)
        except TimeoutError:
            raise WireError(NO_REPLY, "no answer in time") from None
        except OSError as error:
            self.close()
            raise WireError(DISCONNECTED, f"lost the bus connection: {error}") from None
        if not chunk:
            self.close()
            raise WireError(DISCONNECTED, "the bus closed the connection")
        self._buffer.extend(chunk)

    def _read_line(self, deadline: float) -> bytes:
        while b"\r\n" not in self._buffer:
            if len(self._buffer) > 4096:
                raise WireError(NO_SERVER, "the bus sent an overlong authentication line")
            self._receive(deadline)
        line, _, rest = bytes(self._buffer).partition(b"\r\n")
        self._buffer = bytearray(rest)
        return line

    def _read_message(self, deadline: float) -> bytes:
        while len(self._buffer) < 16:
            self._receive(deadline)
        first = bytes(self._buffer[:1])
        order = "<" if first == b"l" else ">"
        body_length, _serial, fields_length = struct.unpack_from(order + "III", self._buffer, 4)
        total = 16 + fields_length + (-fields_length % 8) + body_length
        if first not in (b"l", b"B") or total > MAX_MESSAGE_BYTES:
            self.close()
            raise WireError(INVALID_MESSAGE, "the bus sent something that is not a D-Bus message")
        while len(self._buffer) < total:
            self._receive(deadline)
        message = bytes(self._buffer[:total])
        del self._buffer[:total]
        return message
