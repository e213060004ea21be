"""One user cannot fill the helper with rules: past MAX_RULES_PER_USER
applications, their next rule is refused with a clear error, other users'
rules are not held back, and changing a rule one has stays possible.

Written as the attack: uid NOBODY, with monitor + limit-own granted by the
real polkitd, runs MAX_RULES_PER_USER + 1 programs (hard links to one
executable, so each is an application of its own) and limits each."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest
from chadthrottle.contract import MAX_RULES_PER_USER, Direction, ErrorName

from tests.e2e.conftest import Stack
from tests.support.helper_calls import call_helper
from tests.support.other_users import client_as, granted, programs_as

NOBODY = 65534


@pytest.fixture
def programs_of_nobody(stack: Stack) -> Iterator[list[subprocess.Popen[bytes]]]:
    """MAX_RULES_PER_USER + 1 sleeping programs of uid NOBODY, each at its own
    path, in the test's namespace."""
    with programs_as(
        NOBODY, MAX_RULES_PER_USER + 1, 120, stack.pair.host_ns, prefix="ct-bounds-"
    ) as processes:
        yield processes


def test_a_user_keeps_a_bounded_number_of_rules(stack: Stack, programs_of_nobody: list) -> None:  # type: ignore[type-arg]
    with client_as(stack.bus_address, NOBODY) as nobody, granted(nobody):
        # Sent at once (the helper takes them in batches, as a flood would
        # come), not one call after another's answer: at 256 rules each
        # publish of the user's listing made a lone call 70-240 ms.
        wanted = [
            [f"pid:{process.pid}", "up", 50_000]
            for process in programs_of_nobody[:MAX_RULES_PER_USER]
        ]
        answers = nobody.ask("set-many", wanted)["ok"]
        assert [a for a in answers if "ok" not in a] == []
        ids = [answer["ok"] for answer in answers]
        try:
            last = nobody.ask("set", f"pid:{programs_of_nobody[-1].pid}", "up", 50_000)
            assert last == {"error": ErrorName.INVALID_ARGUMENT.value}
            assert nobody.ask("set", ids[0], "up", 60_000) == {
                "ok": ids[0]
            }  # changing one it has: fine
            # root, an administrator, is not held back by this user's rules
            admin = call_helper(stack.bus_address, lambda c: c.set_limit(f"pid:{programs_of_nobody[-1].pid}",
                                                                           Direction.UP, 70_000))  # fmt: skip
            assert admin.endswith(os.path.basename(programs_of_nobody[-1].args[-2]))
            call_helper(stack.bus_address, lambda c: c.clear_limit(admin))
            assert (
                len(
                    [
                        r
                        for r in call_helper(stack.bus_address, lambda c: c.list_rules())
                        if r.owner == NOBODY
                    ]
                )
                == MAX_RULES_PER_USER
            )
        finally:
            assert all("ok" in answer for answer in nobody.ask("clear-many", ids)["ok"])
        assert [
            r for r in call_helper(stack.bus_address, lambda c: c.list_rules()) if r.owner == NOBODY
        ] == []
