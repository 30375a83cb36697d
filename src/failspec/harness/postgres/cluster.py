"""A PostgreSQL server the harness runs itself, from binaries on this machine
(``binaries``): a copy of the cluster template (``template``) or initdb, in a directory
of its own (``directories``), run as the server user when the harness is root
(``user``), on a free port (``ports``); stopped, crashed, paused and restarted for server
control; on its way out, the shared memory of a postmaster that died is removed
(``shared_memory``).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from failspec.harness import processes, waiting
from failspec.harness.errors import SetupError
from failspec.harness.postgres.binaries import EXE, usable_binaries
from failspec.harness.postgres.directories import DIR_PREFIX, OWNER_FILE, server_parent
from failspec.harness.postgres.ports import free_port, port_in_use
from failspec.harness.postgres.shared_memory import clean_up_after_dead_postmaster
from failspec.harness.postgres.template import cluster_template
from failspec.harness.postgres.user import RunAs, run_as, server_user

SUPERUSER = "failspec"  # the database role the harness connects as
DATABASE = "failspec"


def build_template(bin_dir: Path, ready_timeout: float) -> Path:
    """The cluster template's data directory for these binaries (failspec.harness.postgres
    .template), built once by a server of its own: on the Unix socket alone, so from
    initdb, not from a template. ``ready_timeout``: seconds its start may take."""
    return cluster_template(
        bin_dir,
        server_user(),
        lambda: EmbeddedPostgres(bin_dir, ready_timeout=ready_timeout, listen=False),
        DATABASE,
    )


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


class EmbeddedPostgres:
    """initdb into a temporary directory, run ``postgres`` on 127.0.0.1, stop, clean up."""

    def __init__(
        self,
        bin_dir: Path,
        *,
        port: int | None = None,
        ready_timeout: float = 15.0,
        listen: bool = True,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.requested_port = port
        #: Server settings on top of TEST_SETTINGS (``-c name=value`` at every start).
        self.settings = dict(settings or {})
        #: Whether the data directory is a standby's (standby.signal): it is read-only, so
        #: the start leaves the role's password as the primary set it.
        self.standby = False
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
            self.make_base()
            if self.from_template:
                self._copy_cluster(build_template(self.bin_dir, self.ready_timeout))
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
        if self.from_template and not self.standby:
            # Every run gets a password of its own, though the cluster came from a copy.
            self.execute_local("ALTER ROLE " + SUPERUSER + " PASSWORD %s", self.password)

    def make_base(self) -> None:
        """Make the server's own directory (``base``; the data directory goes in it)."""
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
            self.run_program(
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
        from failspec import drivers

        conn = drivers.connect(
            host=str(self.base), port=self.port, user=SUPERUSER, dbname="postgres"
        )
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql, params or None)
        finally:
            conn.close()

    def run_program(self, program: str, *args: str) -> None:
        """Run one of the server's programs (initdb, pg_basebackup, pg_rewind) to its end,
        in a session of its own, as the server user, in the server's directory.

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
        for name, value in {**TEST_SETTINGS, **self.settings}.items():
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


class _PortTaken(Exception):
    pass


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
