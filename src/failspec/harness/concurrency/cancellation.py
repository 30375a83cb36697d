"""Cancelling a statement while it runs, and a client that goes away without cancelling.

What the server shows of a session's work (``failspec.harness.activity``), an
administrator's cancel (``pg_cancel_backend``), and a worker
process of the application that a scenario kills while the server runs its statement.
The application's own cancel (the driver's cancel request) is
:meth:`failspec.harness.concurrency.interleaving.ConcurrentSession.cancel`.

Expected outcomes, from PostgreSQL's documentation:

* libpq, "Canceling Queries in Progress": a cancel request is sent over a connection of
  its own; if it is effective, the command ends early with an error; if the server had
  already finished the command, nothing visible happens at all.
* "Server Signaling Functions": ``pg_cancel_backend(pid)`` cancels the current query of
  that server process.
* "Connections and Authentication", ``client_connection_check_interval`` (PostgreSQL 14
  and later, on Linux, macOS, illumos and the BSDs): the server polls the client's socket
  at that interval while it runs a query, and ends a query whose client the kernel says is
  gone; without it (the default, 0) it notices the loss only when it next waits for,
  receives or sends data.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import select
import signal
import subprocess
import sys
import time

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from failspec import drivers
from failspec.harness.activity import Work, work_of
from failspec.harness.scenario.workspace import Workspace
from failspec.harness.waiting import until

#: A report that keeps the server busy for the seconds given (pg_sleep stands in for a heavy
#: query; a cancel or the end of its session interrupts it).
REPORT = "SELECT count(*) FROM transactions, pg_sleep(%s)"


def run_report(conn: Connection, seconds: float) -> int:
    """Run a report the server needs ``seconds`` for (s) on ``conn``, in its transaction."""
    return conn.exec_driver_sql(REPORT, (seconds,)).scalar_one()


def is_sleeping(admin: Engine, pid: int | None) -> bool:
    """Whether server process ``pid`` is inside ``pg_sleep`` now (False before it exists)."""
    if pid is None:
        return False
    work, _ = work_of(admin, pid)
    return work is not None and work.sleeping


def has_setting(admin: Engine, name: str) -> bool:
    """Whether the server knows the setting ``name`` (``pg_settings``): what a version
    number would only imply."""
    with admin.connect() as conn:
        found = conn.execute(sa.text("SELECT 1 FROM pg_settings WHERE name = :n"), {"n": name})
        return found.first() is not None


def cancel_as_administrator(admin: Engine, pid: int) -> bool:
    """Cancel the statement server process ``pid`` runs now, as an administrator does
    (``pg_cancel_backend``). Returns whether the signal was sent; like the driver's cancel,
    a process running nothing ignores it (PostgreSQL's "Server Signaling Functions")."""
    with admin.connect() as conn:
        return bool(
            conn.execute(sa.text("SELECT pg_cancel_backend(:pid)"), {"pid": pid}).scalar_one()
        )


class WorkerFailed(AssertionError):
    """The worker process could not connect or start its report."""


#: The worker: connects with the run's driver (its module named by the last argument),
#: with the arguments on its stdin (JSON: the password never shows in a process list),
#: prints its server process id, then runs the report.
_WORKER = """
import importlib, json, sys
driver = importlib.import_module(sys.argv[3])
conn = driver.connect(**json.loads(sys.stdin.readline()))
cur = conn.cursor()
cur.execute("SELECT pg_backend_pid()")
print(cur.fetchone()[0], flush=True)
cur.execute(sys.argv[2], (float(sys.argv[1]),))
print("finished", flush=True)
"""


class Worker:
    """A process of the application of its own (another worker, another pod), with one
    connection to the scenario's schema, that runs one report and is then killed, the way
    the OOM killer or a container runtime ends a process: no cancel is sent, the kernel
    closes its socket.

    ``settings`` are server parameters its connection sets when it opens (e.g.
    ``client_connection_check_interval``). ``timeout`` bounds every wait here (s).
    Register :meth:`close` for cleanup as soon as it is made.
    """

    def __init__(self, workspace: Workspace, settings: dict[str, str], timeout: float) -> None:
        self.workspace = workspace
        self.settings = settings
        self.timeout = timeout
        #: The worker's server process, once it has connected.
        self.pid: int | None = None
        #: The report as the server showed it running (its start, by the server's clock).
        self.report: Work | None = None
        #: When the worker's process was gone (time.monotonic()), once killed.
        self.killed_at: float | None = None
        self._process: subprocess.Popen[str] | None = None

    def _connect_args(self) -> dict[str, object]:
        """The arguments the application's own connections get (SQLAlchemy's dialect for
        the run's driver, from the server's URL, then the scenario's identity and these
        settings)."""
        url = self.workspace.url()
        _, args = url.get_dialect()().create_connect_args(url)
        harness = self.workspace.connect_args()
        extra = " ".join(f"-c {key}={value}" for key, value in self.settings.items())
        harness["options"] = f"{harness['options']} {extra}".strip()
        args.update(self.workspace.run.server.endpoint.connect_args(harness))
        return dict(args)

    def start_report(self, seconds: float) -> Work:
        """Start the worker and its report of ``seconds`` (s of server time); return once
        the server shows it running. Raises :class:`WorkerFailed` if the worker ends or
        says nothing within the timeout."""
        self._process = subprocess.Popen(
            [sys.executable, "-c", _WORKER, repr(seconds), REPORT, drivers.current().module],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(json.dumps(self._connect_args()) + "\n")
        self._process.stdin.close()
        ready, _, _ = select.select([self._process.stdout], [], [], self.timeout)
        line = self._process.stdout.readline().strip() if ready else ""
        if not line.isdigit():
            said = self._last_words() if ready else f"nothing after {self.timeout:.2f} s"
            raise WorkerFailed(f"the worker did not start its report: {said}")
        self.pid = int(line)
        pid = self.pid

        def running() -> Work | None:
            work, _ = work_of(self.workspace.run.admin, pid)
            return work if work is not None and work.sleeping else None

        self.report = until(running, timeout=self.timeout, what=f"the worker's report ({pid})")
        return self.report

    def _last_words(self) -> str:
        """What a worker that stopped talking said last (its output ended: it is exiting,
        so its exit is awaited, at most the timeout, before its stderr is read)."""
        process = self._process
        assert process is not None
        try:
            process.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            return f"its output ended, but it still runs after {self.timeout:.2f} s"
        assert process.stderr is not None
        lines = process.stderr.read().strip().splitlines()
        return lines[-1] if lines else f"it exited with {process.returncode}"

    def kill(self) -> float:
        """SIGKILL the worker and wait until it is gone (its socket closed by the kernel);
        returns that moment (time.monotonic())."""
        process = self._process
        assert process is not None, "the worker was never started"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=self.timeout)
        self.killed_at = time.monotonic()
        return self.killed_at

    def server_process_end(self, timeout: float) -> tuple[float, dt.datetime]:
        """Wait until the worker's server process has ended (at most ``timeout`` s): when it
        was first seen gone, by this machine's monotonic clock and by the server's clock.
        Raises :class:`~failspec.harness.waiting.WaitTimeout` if it is still there."""
        pid = self.pid
        assert pid is not None, "the worker never connected"

        def gone() -> tuple[float, dt.datetime] | None:
            work, now = work_of(self.workspace.run.admin, pid)
            return (time.monotonic(), now) if work is None else None

        return until(gone, timeout=timeout, what=f"the worker's server process {pid} ending")

    def close(self) -> None:
        """Kill the worker if it still runs, and end its server process if that still runs
        (a scenario that failed leaves nothing behind)."""
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=self.timeout)
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()
        if self.pid is not None and self.pid in self.workspace.open_backends():
            self.workspace.terminate(self.pid)
