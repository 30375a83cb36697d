"""Servers that runs which died left behind: every server directory carries the pid of
the process that owns it (``directories``); a server whose owner died without stopping
it (SIGKILL) is found and stopped by the next start, so orphans never accumulate: a
paused one too, and one whose owner is a zombie (killed, never reaped by its parent).
Before such a directory goes, the shared memory its postmaster left is removed
(``shared_memory``)."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal

import psutil

from failspec.harness import processes, waiting
from failspec.harness.postgres.directories import DIR_PREFIX, OWNER_FILE, server_parents
from failspec.harness.postgres.pidfile import is_postmaster_of, postmaster_pid
from failspec.harness.postgres.shared_memory import clean_up_after_dead_postmaster


def reap_stale_servers() -> list[int]:
    """Stop servers whose owning run died, and remove their directories.

    Returns the pids of the servers stopped.
    """
    stopped: list[int] = []
    bases = [base for parent in server_parents() for base in parent.glob(f"{DIR_PREFIX}*")]
    for base in sorted(bases):
        try:
            owner = processes.Owner(**json.loads((base / OWNER_FILE).read_text()))
        except (OSError, ValueError, TypeError):
            continue  # not one of ours, or still being set up
        if owner.alive():
            continue
        pid = postmaster_pid(base / "data")
        if pid is not None and is_postmaster_of(pid, base / "data"):
            _stop_orphan(pid, deadline=10.0)
            stopped.append(pid)
        clean_up_after_dead_postmaster(base / "data")
        shutil.rmtree(base, ignore_errors=True)
    return stopped


def _stop_orphan(pid: int, deadline: float) -> None:
    """Stop an orphaned server, paused or not, and return once every process of it ended.

    A paused (SIGSTOP) server acts on no signal but SIGKILL, and a SIGKILL would end the
    postmaster alone: its children would stay stopped for ever, with the shared memory
    they attach. So every process of the server is continued first; then SIGQUIT has
    the postmaster do an immediate shutdown (pg_ctl stop -m immediate: it has its
    children quit and removes its shared memory on exit). Each child of the postmaster
    leads a process group of its own (PostgreSQL's InitPostmasterChild calls setsid()),
    so each group is signalled, as the postmaster's own signal_child does; past the
    deadline every group still there is SIGKILLed.
    """
    try:
        postmaster = psutil.Process(pid)
        server = [postmaster, *postmaster.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for process in server:
        processes.signal_group(process, signal.SIGCONT)
    processes.signal_group(postmaster, signal.SIGQUIT)
    try:
        waiting.until(
            lambda: all(map(processes.ended, server)),
            timeout=deadline,
            what=f"exit of server {pid}",
        )
    except waiting.WaitTimeout:
        for process in server:
            processes.signal_group(process, signal.SIGKILL)
        with contextlib.suppress(waiting.WaitTimeout):  # one stuck in the kernel: go on
            waiting.until(lambda: all(map(processes.ended, server)), timeout=deadline, what="kill")
