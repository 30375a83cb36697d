"""What the tests' runs own on this machine, found by the owner file the harness writes
into each server directory (failspec.harness.postgres.directories): other runs (other
test sessions, other agents) make and remove theirs at any time."""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path

from failspec.harness.postgres import directories


def server_dirs_of(pids: Collection[int]) -> list[Path]:
    """The server directories whose owner file names one of ``pids``, sorted."""
    found = []
    for parent in directories.server_parents():
        for base in parent.glob(f"{directories.DIR_PREFIX}*"):
            try:
                owner = json.loads((base / directories.OWNER_FILE).read_text())
            except (OSError, ValueError):
                continue  # another run's, being made or removed right now
            if owner.get("pid") in pids:
                found.append(base)
    return sorted(found)
