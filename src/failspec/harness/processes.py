"""Processes of this machine, through psutil (Linux and macOS alike): whether one is
alive (a zombie is not), who owns a server (a pid and its start time, so a recycled pid
is told apart), a process's children, signalling a process group, stopping one with a
deadline. The small kernel the servers, the postgres room and the faults share.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass

import psutil

from failspec.harness import waiting

#: Clock ticks per second (USER_HZ: 100 on Linux), the unit of a process's start time.
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass
class Owner:
    """Who started a server: a pid and, where the OS tells, that process's start time."""

    pid: int
    started: str | None

    @classmethod
    def me(cls) -> Owner:
        return cls(os.getpid(), process_start(os.getpid()))

    def alive(self) -> bool:
        """Whether the owner still runs: not gone, not a zombie, not a recycled pid."""
        if not pid_alive(self.pid):
            return False
        # A recycled pid belongs to a different process with a different start time.
        return self.started is None or process_start(self.pid) == self.started


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and has not ended. A zombie (a process that ended
    and whose parent has not reaped it, e.g. a run killed under a parent that never
    waits) has ended: it runs no code and holds nothing but its exit status (proc(5))."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:  # ZombieProcess too, where the OS says so that way
        return False
    except psutil.AccessDenied:
        return True


def process_start(pid: int) -> str | None:
    """When process ``pid`` started, in clock ticks since the machine booted (field 22 of
    Linux's /proc/PID/stat, the form owner records have always had, so runs of older and
    newer checkouts on one machine still recognise each other's owners), from psutil's
    create_time, so macOS answers too; None if it is gone or hidden."""
    try:
        created = psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return str(round((created - psutil.boot_time()) * CLOCK_TICKS))


def is_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.ZombieProcess:
        return True
    except psutil.NoSuchProcess:
        return False


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (PostgreSQL's backends and workers)."""
    try:
        return [child.pid for child in psutil.Process(pid).children()]
    except psutil.NoSuchProcess:
        return []


def ended(process: psutil.Process) -> bool:
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def signal_group(process: psutil.Process, sig: signal.Signals) -> None:
    """Send ``sig`` to the process group ``process`` leads, or to it alone if it leads
    none; nothing if it has ended (psutil checks its pid was not reused meanwhile)."""
    try:
        if not process.is_running():
            return
        if os.name != "nt" and os.getpgid(process.pid) == process.pid:
            os.killpg(process.pid, sig)
        else:
            process.send_signal(sig)
    except (psutil.NoSuchProcess, ProcessLookupError):
        pass


def stop_pid(pid: int, sig: signal.Signals, deadline: float) -> None:
    """Send ``sig`` and wait for the process to go; SIGKILL it past the deadline."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    try:
        waiting.until(lambda: not pid_alive(pid), timeout=deadline, what=f"exit of process {pid}")
    except waiting.WaitTimeout:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
