"""Where a server's directory goes, and how it is marked as the harness's: a name that
starts with ``DIR_PREFIX`` and an ``OWNER_FILE`` naming the process that owns it (so the
runs after it know whether its owner still runs: see ``orphans``)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

DIR_PREFIX = "failspec-pg-"
OWNER_FILE = "owner.json"
#: RAM-backed, where Linux has it; also where POSIX shared memory (PostgreSQL's dynamic
#: shared memory segments) lives.
SHM = Path("/dev/shm")
SHM_NEEDED = 512 * 1024 * 1024


def server_parents() -> list[Path]:
    """Where servers' directories may be: RAM-backed /dev/shm first, then the temp dir."""
    return [p for p in (SHM, Path(tempfile.gettempdir())) if p.is_dir()]


def server_parent() -> Path:
    """Where a new server's directory goes. In RAM where there is room: a copy of the
    cluster there takes ~0.15 s against ~0.6-0.9 s on this VM's disk, and a test server
    (fsync=off) keeps nothing worth a disk."""
    if os.name != "nt" and SHM.is_dir() and os.access(SHM, os.W_OK):
        stats = os.statvfs(SHM)
        if stats.f_bavail * stats.f_frsize >= SHM_NEEDED:
            return SHM
    return Path(tempfile.gettempdir())
