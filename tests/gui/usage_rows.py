"""Usage rows as GetUsage delivers them: encoded by the helper's codec
(dbus_codec.encode_usage), marshalled into a real D-Bus message and back, and
decoded as the client does (record_codec.decode_usage); not built by hand."""

from __future__ import annotations

import io

from chadthrottle.dbus_codec import encode_usage
from chadthrottle.record_codec import decode_usage
from chadthrottle.usage_contract import UsageRow
from dbus_fast import Message
from dbus_fast._private.unmarshaller import Unmarshaller


def over_the_wire(rows: list[UsageRow]) -> list[UsageRow]:
    """The rows after a trip through the codec and the D-Bus wire format."""
    message = Message(path="/io/github/chadthrottle", member="GetUsage", signature="aa{sv}",
                      body=[[encode_usage(row) for row in rows]])  # fmt: skip
    unmarshaller = Unmarshaller(io.BytesIO(message._marshall(False)))
    received = unmarshaller.unmarshall()
    assert received is not None
    return [decode_usage(entry) for entry in received.body[0]]


def row(app_id: str, start: int, seconds: int, down: int, up: int = 0) -> UsageRow:
    return UsageRow(app_id, start, start + seconds, down, up, 0, 0)
