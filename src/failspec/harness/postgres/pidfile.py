"""What a data directory's ``postmaster.pid`` says about its postmaster: its pid, and
whether that pid is still the postmaster of the directory."""

from __future__ import annotations

from pathlib import Path

from failspec.harness import processes


def postmaster_pid(data: Path) -> int | None:
    """The pid on ``data/postmaster.pid``'s first line; None without the file (PostgreSQL
    removes it when its postmaster exits normally)."""
    try:
        return int((data / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def is_postmaster_of(pid: int, data: Path) -> bool:
    """Whether process ``pid`` is a postgres running on ``data`` (its command line names
    the directory), not a process that got the pid of a postmaster that died."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return processes.pid_alive(pid)  # no /proc (macOS): trust postmaster.pid, as pg_ctl does
    return str(data).encode() in cmdline
