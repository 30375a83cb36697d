"""What a postmaster that died without cleaning up (SIGKILL, the OOM killer) leaves:
its System V shared memory segment and its dynamic shared memory (DSM) segments, and
how they are removed before its data directory goes."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

from failspec.harness import waiting
from failspec.harness.postgres.directories import SHM
from failspec.harness.postgres.pidfile import is_postmaster_of, postmaster_pid
from failspec.harness.postgres.ports import free_port
from failspec.harness.postgres.user import RunAs, run_as

# A postmaster removes its System V segment, its dynamic shared memory (DSM) segments and
# postmaster.pid when it exits (on_shmem_exit / on_proc_exit callbacks); SIGKILL runs none.
# What it left is recorded only in its data directory: postmaster.pid names the SysV
# segment, whose header names the DSM control segment, which lists the DSM segments.
# PostgreSQL's next start on that directory removes them all (sysv_shmem.c
# PGSharedMemoryCreate: a segment whose header names this data directory and that nothing
# is attached to is removed, after dsm_cleanup_using_control_segment). So a dead server's
# directory is started once, then stopped at once, before it goes; what that did not
# remove is removed by hand, from the same records, under the same conditions.

LOCK_FILE_LINE_SHMEM_KEY = 7  # postmaster.pid's "key shmid" line (utils/pidfile.h)
PG_SHMEM_MAGIC = 679834894  # PGShmemHeader.magic (storage/pg_shmem.h)
# PGShmemHeader on LP64: magic, creatorPID, totalsize, freeoffset, dsm_control, index,
# device, inode of the data directory.
SHMEM_HEADER = struct.Struct("=iiQQI4xQQQ")
PG_DYNSHMEM_CONTROL_MAGIC = 0x9A503D32  # dsm_control_header.magic (storage/ipc/dsm.c)
# dsm_control_header: magic, nitems, maxitems, then from offset 16 the items (PostgreSQL
# 14 and later, LP64): handle, refcnt, first_page, npages, impl_private_pm_handle, pinned.
DSM_ITEMS_AT, DSM_ITEM_SIZE = 16, 40
SYSV_SHM = Path("/proc/sysvipc/shm")
SHM_RDONLY = 0o10000  # <sys/shm.h> on Linux
IPC_RMID = 0


@dataclass(frozen=True)
class SharedMemory:
    """The System V segment a postmaster recorded on postmaster.pid's 7th line."""

    key: int
    shmid: int

    @classmethod
    def recorded(cls, data: Path) -> SharedMemory | None:
        """The segment ``data/postmaster.pid`` names; None without the file or the line
        (PostgreSQL removes the file when its postmaster exits normally)."""
        try:
            lines = (data / "postmaster.pid").read_text().splitlines()
            key, shmid = lines[LOCK_FILE_LINE_SHMEM_KEY - 1].split()
            return cls(int(key), int(shmid))
        except (OSError, IndexError, ValueError):
            return None

    def attached(self) -> int | None:
        """How many processes are attached (nattch); None when the segment is gone or
        the OS does not say (no /proc/sysvipc: not Linux)."""
        try:
            rows = SYSV_SHM.read_text().splitlines()[1:]
        except OSError:
            return None
        for row in rows:
            key, shmid, _perms, _size, _cpid, _lpid, nattch = row.split()[:7]
            if (int(key), int(shmid)) == (self.key, self.shmid):
                return int(nattch)
        return None

    def processes(self) -> list[int]:
        """The processes attached to it: their /proc/<pid>/maps map ``/SYSV<key>`` with
        the segment's id in the inode column (proc(5))."""
        name = f"/SYSV{self.key:08x}"
        found = []
        for maps in Path("/proc").glob("[0-9]*/maps"):
            with contextlib.suppress(OSError, ValueError):
                for line in maps.read_text().splitlines():
                    fields = line.split()
                    if len(fields) >= 6 and fields[5] == name and int(fields[4]) == self.shmid:
                        found.append(int(maps.parent.name))
                        break
        return found

    def dsm_control(self, data: Path) -> int | None:
        """The DSM control segment's handle from the segment's header, read without
        writing; None unless the header is PostgreSQL's and names ``data`` (its device
        and inode), the test PGSharedMemoryAttach makes before removing a segment."""
        libc = ctypes.CDLL(None, use_errno=True)
        libc.shmat.restype = ctypes.c_void_p
        libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
        address = libc.shmat(self.shmid, None, SHM_RDONLY)
        if address is None or address == ctypes.c_void_p(-1).value:
            return None
        try:
            magic, _pid, _total, _free, control, _index, device, inode = SHMEM_HEADER.unpack(
                ctypes.string_at(address, SHMEM_HEADER.size)
            )
        finally:
            libc.shmdt(ctypes.c_void_p(address))
        try:
            here = data.stat()
        except OSError:
            return None
        if (magic, device, inode) != (PG_SHMEM_MAGIC, here.st_dev, here.st_ino):
            return None
        return control

    def remove(self) -> None:
        """IPC_RMID: the segment goes once nothing is attached (shmctl(2))."""
        libc = ctypes.CDLL(None, use_errno=True)
        libc.shmctl(self.shmid, IPC_RMID, None)


def clean_up_after_dead_postmaster(data: Path, deadline: float = 10.0) -> None:
    """Remove the shared memory a dead postmaster of ``data`` left; nothing if it left none.

    Called before ``data`` is removed, once its postmaster has ended (a live one is left
    alone). A postmaster that exited normally removed postmaster.pid: nothing to do. One
    that died (SIGKILL) left postmaster.pid naming its System V segment. Any process still
    attached to that segment (a child of the dead postmaster, paused or busy) is killed:
    PostgreSQL removes no segment something is attached to ("pre-existing shared memory
    block is still in use"). Then, postmaster.pid removed, PostgreSQL is started on
    ``data`` once, as the data directory's owner, on the Unix socket alone, and stopped
    at once (immediate mode): its start removes the old segment and the DSM segments it
    records; its stop removes its own. Whatever is still there afterwards (PostgreSQL
    could not start: its binaries gone, say) is removed by hand from the same records,
    only when nothing is attached. Waits at most about ``deadline`` seconds per step;
    raises nothing.
    """
    left = SharedMemory.recorded(data)
    if left is None or os.name == "nt":
        return
    pid = postmaster_pid(data)
    if pid is not None and is_postmaster_of(pid, data):
        return  # alive: not dead after all
    if SYSV_SHM.exists() and left.attached() is None:
        return  # gone already (a reboot, another run's clean-up)
    _end_attached(left, deadline)
    # Stale now (its postmaster ended), but PostgreSQL would take a pid that is a zombie
    # not yet reaped, or reused by a process of the same user, for a live postmaster
    # ("lock file already exists": miscinit.c CreateLockFile checks kill(pid, 0)). Its
    # other check stays: no segment of this directory that anything is attached to is
    # removed (sysv_shmem.c PGSharedMemoryCreate).
    with contextlib.suppress(OSError):
        (data / "postmaster.pid").unlink()
    _start_and_stop_once(data, deadline)
    for segment in {left, SharedMemory.recorded(data)}:
        if segment is not None and segment.attached() == 0:
            _remove_by_hand(segment, data)


def _end_attached(segment: SharedMemory, deadline: float) -> None:
    if not segment.attached():
        return
    for pid in segment.processes():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)  # a paused process acts on no signal but SIGKILL
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(waiting.WaitTimeout):
        waiting.until(
            lambda: not segment.attached(), timeout=deadline,
            what=f"the processes attached to shared memory {segment.shmid} ending",
        )  # fmt: skip


def _start_and_stop_once(data: Path, deadline: float) -> None:
    """Start ``data``'s own postgres on it (postmaster.opts names the program PostgreSQL
    last ran there), wait until it has made its shared memory (postmaster.pid names it
    and has a status line), then stop it (SIGQUIT: immediate mode)."""
    try:
        program = (data / "postmaster.opts").read_text().split(' "', 1)[0].strip()
        owner = data.stat()
    except OSError:
        return
    as_user: RunAs = {}
    if os.geteuid() == 0:
        if owner.st_uid == 0:
            return  # PostgreSQL does not run as root
        as_user = run_as(owner.st_uid, owner.st_gid)
    args = [program, "-D", str(data), "-p", str(free_port()), "-c", "listen_addresses=",
            "-c", f"unix_socket_directories={data.parent}"]  # fmt: skip
    try:
        process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True, cwd="/", **as_user,
        )  # fmt: skip
    except OSError:
        return

    def made_its_memory() -> bool:
        if process.poll() is not None:
            return True
        try:
            lines = (data / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        return len(lines) >= 8 and lines[0].strip() == str(process.pid)

    with contextlib.suppress(waiting.WaitTimeout):
        waiting.until(made_its_memory, timeout=deadline, what="the clean-up start")
    if process.poll() is None:
        process.send_signal(signal.SIGQUIT)
    try:
        process.wait(timeout=deadline)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _remove_by_hand(segment: SharedMemory, data: Path) -> None:
    """What PostgreSQL's start removes, for one unattached segment of ``data``: the DSM
    segments its control segment lists (those in use: refcnt > 0), the control segment,
    then the segment itself (dsm.c dsm_cleanup_using_control_segment, sysv_shmem.c)."""
    control = segment.dsm_control(data)
    if control is None:
        return  # not PostgreSQL's, or not this directory's
    if control != 0:
        control_file = SHM / f"PostgreSQL.{control}"
        with contextlib.suppress(OSError, struct.error):
            raw = control_file.read_bytes()
            magic, nitems, maxitems = struct.unpack_from("=III", raw)
            # The layout is checked against the file's size, which is exactly that of
            # maxitems items (dsm.c dsm_control_bytes_needed).
            if (
                magic == PG_DYNSHMEM_CONTROL_MAGIC
                and nitems <= maxitems
                and (len(raw) == DSM_ITEMS_AT + DSM_ITEM_SIZE * maxitems)
            ):
                for i in range(nitems):
                    handle, refcnt = struct.unpack_from(
                        "=II", raw, DSM_ITEMS_AT + DSM_ITEM_SIZE * i
                    )
                    if refcnt:
                        (SHM / f"PostgreSQL.{handle}").unlink(missing_ok=True)
        control_file.unlink(missing_ok=True)
    segment.remove()
