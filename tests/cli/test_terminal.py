"""chadthrottle-ctl never prints a control character it got from the helper."""

from __future__ import annotations

import json
import unicodedata

import pytest
from chadthrottle.cli import ctl
from chadthrottle.cli.terminal import for_terminal
from chadthrottle.contract import ApplicationInfo, ConnectionInfo, InterfaceInfo

HOSTILE = "evil\x1b[2J\x1b]0;pwned\x07\x9b31m\r\nfake row\u202eexe.txt\u2028"


def _is_safe(text: str) -> bool:
    """No character a terminal acts on, except the newlines between rows."""
    return not any(
        unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp")
        or char in "\u202a\u202b\u202c\u202d\u202e"
        for char in text.replace("\n", "")
    )


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("exe:/usr/bin/curl", "exe:/usr/bin/curl"),
        ("exe:/tmp/\\xff\\xfe", "exe:/tmp/\\xff\\xfe"),  # the helper's escapes print as they are
        ("Café 圖", "Café 圖"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("a\nb\tc\x7f\x85", "a\\x0ab\\x09c\\x7f\\x85"),
        ("left\u202eright\u2066", "left\\u202eright\\u2066"),
        ("line\u2028para\u2029", "line\\u2028para\\u2029"),
    ],
)
def test_for_terminal(text: str, shown: str) -> None:
    assert for_terminal(text) == shown


def _app(app_id: str, name: str) -> ApplicationInfo:
    return ApplicationInfo(id=app_id, name=name, icon="", uids=(0,), pids=(7,), down_bps=0.0, up_bps=0.0,
                           rx_bytes=0, tx_bytes=0, down_limit_bps=0, up_limit_bps=0)  # fmt: skip


def test_tables_escape_what_the_helper_sent() -> None:
    apps = ctl.format_applications([_app(f"exe:/tmp/{HOSTILE}", HOSTILE)])
    interfaces = ctl.format_interfaces([InterfaceInfo(name=HOSTILE, ifindex=3, netns=HOSTILE, loopback=False,
                                                      rx_bytes=1, tx_bytes=2, down_bps=0.0, up_bps=0.0)])  # fmt: skip
    connections = ctl.format_connections([ConnectionInfo(HOSTILE, HOSTILE, HOSTILE, HOSTILE, 7)])
    for table in (apps, interfaces, connections):
        assert _is_safe(table), table
        assert "\\x1b[2J" in table
    assert len(apps.splitlines()) == 2 and len(connections.splitlines()) == 2  # no forged row


def test_json_output_is_ascii_with_escapes_and_reads_back() -> None:
    app = _app(f"exe:/tmp/{HOSTILE}", HOSTILE)
    text = ctl.to_json([app])
    assert text.isascii() and _is_safe(text)
    assert json.loads(text)[0]["name"] == HOSTILE


def test_a_helper_error_is_one_safe_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        ctl._fail(ctl.EXIT_FAILED, f"no application is called {HOSTILE}")
    assert _is_safe(capsys.readouterr().err.rstrip("\n"))


class _HostileHelper:
    """Stands in for BlockingHelperClient: a helper whose replies carry raw controls."""

    def __init__(self, *_args: object) -> None:
        pass

    def __enter__(self) -> _HostileHelper:
        return self

    def __exit__(self, *_exc: object) -> None:
        return None

    def list_applications(self) -> list[ApplicationInfo]:
        app = _app(f"exe:/tmp/{HOSTILE}", HOSTILE)
        return [
            ApplicationInfo(
                **{**app.__dict__, "up_limit_bps": 1_000_000, "up_limit_problem": HOSTILE}
            )
        ]

    def get_limits_paused(self) -> bool:
        return False


def test_list_prints_nothing_raw(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("chadthrottle.blocking_client.BlockingHelperClient", _HostileHelper)
    assert ctl.main(["list"]) == ctl.EXIT_OK
    out = capsys.readouterr().out
    assert (
        _is_safe(out) and "not enforced" in out and len(out.splitlines()) == 3
    )  # header, row, problem
