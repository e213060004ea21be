"""What the modules chadthrottle-ctl imports cost at two commits: the import
time (python -X importtime) of ``chadthrottle-ctl --help`` and of
``import chadthrottle.blocking_client`` (what every helper call adds), and
chadthrottle.contract's share, without a helper or a bus.

    .venv/bin/python bench/cli_imports.py BEFORE_REV AFTER_REV [--runs 120] [--source]

Each commit's common/ and cli/ are laid out as the installed package in a
temporary directory and compiled to bytecode (as pip does on install; --source
leaves them uncompiled, as a development tree under PYTHONDONTWRITEBYTECODE
runs). The two take turns, one run each per round, so a busy moment hits both
alike. bench/cli_startup.py measures whole calls against a real helper.
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMANDS = {
    "ctl --help": ["-X", "importtime", "-m", "chadthrottle.cli.ctl", "--help"],
    "import blocking_client": ["-X", "importtime", "-c", "import chadthrottle.blocking_client"],
}


def _tree(rev: str, root: Path, compiled: bool) -> Path:
    """common/ as chadthrottle/ and cli/ as chadthrottle/cli/, at rev."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "common", "cli"],
                             check=True, capture_output=True).stdout  # fmt: skip
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(root)  # our own git archive
    package = root / "chadthrottle"
    shutil.move(root / "common", package)
    shutil.move(root / "cli", package / "cli")
    if compiled:
        compileall.compile_dir(package, quiet=1)
    return root


def _one(path: Path, argv: list[str], source: bool) -> tuple[float, float]:
    """(all modules' own import time, contract's cumulative), ms, of one run."""
    env = {**os.environ, "PYTHONPATH": str(path)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if source:  # else the first run writes bytecode the others read
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    stderr = subprocess.run(
        [sys.executable, *argv], env=env, cwd="/", capture_output=True, text=True
    ).stderr
    total = contract = 0
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = line.split(":", 1)[1].split("|")
        total += int(self_us)
        if name.strip() == "chadthrottle.contract":
            contract = int(cumulative_us)
    return total / 1000, contract / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--runs", type=int, default=120)
    parser.add_argument("--source", action="store_true", help="no bytecode: compile on every run")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chadthrottle-cli-imports-") as temp:
        trees = {rev: _tree(rev, Path(temp) / label, not options.source)
                 for label, rev in (("before", options.before), ("after", options.after))}  # fmt: skip
        results: dict[tuple[str, str], list[tuple[float, float]]] = {key: [] for key in
                                                                     ((r, c) for r in trees for c in COMMANDS)}  # fmt: skip
        for _ in range(options.runs):
            for rev, path in trees.items():
                for command, argv in COMMANDS.items():
                    results[(rev, command)].append(_one(path, argv, options.source))
    print(
        f"{options.runs} runs each, {'from source' if options.source else 'bytecode compiled'}; ms"
    )
    print(
        f"{'command':24s} {'rev':12s} {'imports median':>15s} {'min':>7s} {'contract median':>16s} {'min':>6s}"
    )
    for (rev, command), runs in results.items():
        totals, contracts = [t for t, _ in runs], [c for _, c in runs]
        print(f"{command:24s} {rev[:12]:12s} {statistics.median(totals):15.2f} {min(totals):7.2f} "
              f"{statistics.median(contracts):16.2f} {min(contracts):6.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
