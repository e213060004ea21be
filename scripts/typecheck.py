"""mypy --strict over the product code, under the module names it is installed as.

Run with the venv's Python from anywhere: `.venv/bin/python scripts/typecheck.py`.
The installed package maps `chadthrottle` to common/, `chadthrottle.gui` to gui/
... (pyproject.toml's package-dir); the editable install does that with an import
hook, which mypy cannot follow, and mypy given the directories would call the
files `gui.app` and so on, so every `chadthrottle.*` import would be another,
unchecked module. Here each file is handed to mypy with its installed module
name, read from package-dir (one source of truth), so imports resolve to the
files in this tree. Options come from pyproject.toml's [tool.mypy]; the cache
is .mypy_cache at the repository root, one run at a time: mypy keeps it in
SQLite files, and two runs opening a cold cache together can fail with
"database is locked" at once, not after SQLite's 5 s wait: each turns a new
file to WAL and SQLite refuses one rather than wait (two processes opening one
new file at once the way mypy does: 26 of 600 refused within 2-31 ms; CI's
two test lanes each started a run at b2e67bd). Prints mypy's messages; exit
status 1 when there are any.
"""

from __future__ import annotations

import fcntl
import os
import sys
import tomllib
from pathlib import Path

from mypy import build
from mypy.config_parser import parse_config_file
from mypy.errors import CompileError
from mypy.modulefinder import BuildSource
from mypy.options import Options

REPO_ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = REPO_ROOT / "pyproject.toml"


def sources() -> list[BuildSource]:
    """Every .py file of every package in package-dir, named as installed."""
    setuptools = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]
    found = []
    for package, directory in setuptools["package-dir"].items():
        base = REPO_ROOT / directory
        for path in sorted(base.rglob("*.py")):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found.append(BuildSource(str(path.relative_to(REPO_ROOT)), ".".join([package, *parts])))
    return found


def check() -> list[str]:
    """mypy's messages (errors and their notes), paths relative to the repository."""
    options = Options()
    parse_config_file(options, lambda: None, str(PYPROJECT), sys.stdout, sys.stderr)
    cache = REPO_ROOT / ".mypy_cache"
    options.cache_dir = str(cache)
    cache.mkdir(exist_ok=True)
    with open(cache / "typecheck.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the next run waits, then reads a warm cache
        try:
            return build.build(sources(), options).errors
        except CompileError as error:  # a syntax error stops mypy before checking
            return error.messages


def main() -> int:
    os.chdir(REPO_ROOT)  # mypy reports paths relative to the working directory
    messages = check()
    for message in messages:
        print(message)
    errors = sum(": error:" in message for message in messages)
    print(f"typecheck: {errors} error(s)", file=sys.stderr)
    return 1 if messages else 0


if __name__ == "__main__":
    sys.exit(main())
