"""Interpreters, whose programs are their scripts: two Python programs are two
applications, and a .desktop file's `Exec=python3 /opt/x/x.py` names x.py."""

from __future__ import annotations

import os
import re

INTERPRETERS = re.compile(
    r"^(python[0-9.]*|perl[0-9.]*|ruby[0-9.]*|node|nodejs|bash|sh|dash|zsh|lua[0-9.]*)$"
)


def is_interpreter(path: str) -> bool:
    return bool(INTERPRETERS.match(os.path.basename(path)))


def script_argument(arguments: tuple[str, ...] | list[str]) -> str | None:
    """The script an interpreter runs, from the arguments after its own name:
    the first that is not an option, if it is an absolute path; None for
    inline code or a module (-c, -m, -e) and for a relative path."""
    for arg in arguments:
        if arg.startswith("-"):
            if arg in ("-c", "-m", "-e"):
                return None
            continue
        return arg if os.path.isabs(arg) else None
    return None
