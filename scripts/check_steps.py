"""Fail when a scenario uses an undefined step or a step definition is used by no scenario.

Runs ``behave --dry-run -f steps.usage`` (extra arguments go to behave). A dry run matches
steps without running any hook or step (behave 1.3.3 skips hooks in dry runs), so no server
starts; ``-D backend=embedded`` keeps it so should that change (never a Docker lookup).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# behave's steps.usage ends with these sections when there is something to say.
PROBLEMS = re.compile(r"^(UNUSED STEP DEFINITIONS|UNDEFINED STEPS)\[\d+\]:$")


def problems(usage: str) -> dict[str, list[str]]:
    """The UNUSED / UNDEFINED sections of a steps.usage output, each with its lines."""
    found: dict[str, list[str]] = {}
    section = None
    for line in usage.splitlines():
        heading = PROBLEMS.match(line)
        if heading:
            section = heading.group(1)
            found[section] = []
        elif section is not None and line.startswith("  "):
            found[section].append(line.strip())
        else:
            section = None
    return found


def main(args: list[str]) -> int:
    done = subprocess.run(
        [sys.executable, "-m", "behave", "--dry-run", "-f", "steps.usage", "--no-summary",
         "--no-junit", "-D", "backend=embedded", *args],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    found = problems(done.stdout)
    for section, lines in found.items():
        print(f"steps: {section.lower()}:", *lines, sep="\n  ", file=sys.stderr)
    if found:
        return 1
    if done.returncode != 0:  # e.g. an ambiguous step or a parse error: behave says which
        print(done.stdout, done.stderr, sep="\n", file=sys.stderr)
        return done.returncode
    print("steps: every step is defined and every step definition is used")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
