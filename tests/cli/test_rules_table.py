"""`chadthrottle-ctl rules` says a used-up quota's block where `list` does.

walk28 (real helper): Web Browser's 20 MB daily quota, "then block", was
used up; `list` said "blocked (admin, quota of 20.0 MB used up this day)"
while `rules` read BLOCKED "no" on the same rule, IN FORCE "yes"."""

from __future__ import annotations

from chadthrottle.cli.output import format_rules
from chadthrottle.contract import ADMIN_OWNER, RuleInfo

APP = "app:org.example.Browser"


def blocked_cell(rule: RuleInfo) -> str:
    header, row = format_rules([rule]).splitlines()[:2]
    return row[header.index("BLOCKED") :].split()[0]


def test_a_used_up_quota_that_blocks_reads_blocked_by_quota() -> None:
    spent = RuleInfo(APP, "down", 0, 0, ADMIN_OWNER, True, quota_bytes=20_000_000, quota_period="day",
                     quota_left_bytes=0)  # fmt: skip
    assert blocked_cell(spent) == "quota"
    # Bytes left, or a quota that then limits instead: not blocked.
    left = RuleInfo(APP, "down", 0, 0, ADMIN_OWNER, True, quota_bytes=20_000_000, quota_period="day",
                    quota_left_bytes=1)  # fmt: skip
    slowed = RuleInfo(APP, "down", 0, 0, ADMIN_OWNER, True, quota_bytes=20_000_000, quota_period="day",
                      quota_left_bytes=0, quota_then_bps=100_000)  # fmt: skip
    assert blocked_cell(left) == "no" and blocked_cell(slowed) == "no"
    # A block of its own is "yes", spent quota or not.
    assert blocked_cell(RuleInfo(APP, "down", 0, 0, ADMIN_OWNER, True, blocked=True)) == "yes"
