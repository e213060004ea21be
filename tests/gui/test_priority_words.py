"""The link field's and `capacity --off`'s words for what priorities need:
"priorities have nothing to order within" was the helper's own word for its
classes, as "up is not ordered" was (walk26); said as a user knows it."""

from __future__ import annotations

import argparse

from chadthrottle.cli.priorities import run_capacity
from chadthrottle.contract import LinkShapingInfo
from chadthrottle.gui.models.priority_view import link_summary
from chadthrottle.units import UnitSystem


def test_no_capacity_says_priorities_need_it_in_plain_words() -> None:
    shaping = LinkShapingInfo(problem="no link capacity is set: priorities need it")
    tooltip = link_summary(shaping, UnitSystem.BYTES_DECIMAL).tooltip
    assert tooltip.startswith("No link capacity is set: priorities need it to take effect."), (
        tooltip
    )
    assert "order" not in tooltip.split()

    class Client:
        def set_link_capacity(self, down: int, up: int, estimate: bool) -> None:
            self.set = (down, up, estimate)

    client = Client()
    text, problem = run_capacity(client, argparse.Namespace(off=True))  # type: ignore[arg-type]
    assert (text, problem, client.set) == (
        "link capacity cleared, not set: priorities need one to take effect",
        "",
        (0, 0, False),
    )
