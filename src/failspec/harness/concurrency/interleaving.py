"""Concurrent named sessions with deterministic interleavings.

Modelled on PostgreSQL's isolation tester (src/test/isolation): a scenario names its
sessions (T1, T2, …) and gives them one action per step. Each session has its own
connection and its own thread, so an action that waits for a lock does not stop the
scenario. A step returns as soon as its action has *finished*, is *blocked* (the server
shows the session waiting: ``pg_blocking_pids``) or has *paused* at a point the scenario
armed; it never sleeps to let the server "get there". A later step waits for a blocked
action to finish and reads its outcome. Whatever would hang fails at a deadline with the
stuck session's name and what it waits for.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine

from failspec import drivers
from failspec.harness.activity import work_of
from failspec.harness.outcomes import Outcome, capture
from failspec.harness.scenario.sessions import LazyConnection
from failspec.harness.scenario.workspace import Workspace
from failspec.harness.waiting import WaitTimeout, until

#: Where SQLAlchemy's QueuePool waits for a connection to be given back.
_POOL_QUEUE = os.path.join("sqlalchemy", "util", "queue.py")


class Stuck(AssertionError):
    """A session's action did not finish, block or pause within the deadline."""


@dataclass
class Action:
    """One action a session was given, and what became of it."""

    text: str
    future: Future[Outcome]
    started: float = field(default_factory=time.monotonic)
    #: When it finished (monotonic), once it has.
    ended: float | None = None
    #: The sessions this action was seen waiting for (names), in the order first seen.
    waited_for: list[str] = field(default_factory=list)
    #: The thread running it, once it has started (``threading.get_ident()``).
    thread: int | None = None

    @property
    def done(self) -> bool:
        return self.future.done()

    @property
    def outcome(self) -> Outcome:
        return self.future.result()


#: The gate a session stops at just before it sends COMMIT (SQLAlchemy's "commit" event).
BEFORE_COMMIT = "before commit"


class Gate:
    """A point inside an operation where a session stops until the scenario says go."""

    def __init__(self, session: ConcurrentSession, point: str, timeout: float) -> None:
        self.session = session
        self.point = point
        self.timeout = timeout
        self.reached = threading.Event()
        self._go = threading.Event()
        self._aborted = False
        self.used = False

    def __call__(self, conn: Connection | None) -> None:
        if self.used:
            return  # once: a retried operation runs straight through
        self.used = True
        self.session.log(f"paused {self.point}")
        self.reached.set()
        if not self._go.wait(self.timeout):
            raise Stuck(f"{self.session.name} was never told to continue {self.point}")
        if self._aborted:
            raise Stuck(f"{self.session.name} was closed while paused {self.point}")

    def open(self) -> None:
        self.reached.clear()
        self._go.set()

    def abort(self) -> None:
        """Release a paused session by failing its operation (never by letting it go on)."""
        self._aborted = True
        self.open()


class ConcurrentSession:
    """A named session: its own connection pool of one, its own thread, one action at a time.

    ``settings`` are server parameters (e.g. ``lock_timeout``) given to the session's
    connection when it opens. Actions run in order on the session's thread; the
    connection a scenario's SQL-level actions use (``conn``) is opened and used there only.
    """

    def __init__(
        self,
        name: str,
        workspace: Workspace,
        timeout: float,
        engine_options: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.name = name
        self.workspace = workspace
        self.timeout = timeout
        #: Engine options the session's pool shares with the application (read when the
        #: session first connects: e.g. its isolation level or pre-ping).
        self.engine_options = engine_options or dict
        self.settings: dict[str, str] = {}
        #: Where the session connects: the server, or the scenario's fault proxy.
        self.url: URL | None = None
        #: The server process of the connection the session works on (set at checkout).
        self.pid: int | None = None
        #: The driver's connection the session works on (set at checkout), for :meth:`cancel`.
        self.dbapi_connection: Any = None
        self.transcript: list[str] = []
        self.actions: list[Action] = []
        #: Values the session read, in order: (what, value).
        self.reads: list[tuple[str, Any]] = []
        #: The isolation level of the session's current transaction, once begun.
        self.isolation: str | None = None
        self.gates: dict[str, Gate] = {}
        self._engine: Engine | None = None
        self._conn = LazyConnection(lambda: self.engine)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"failspec-{name}")
        self._started = time.monotonic()

    # -- resources --------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            options = " ".join(f"-c {key}={value}" for key, value in self.settings.items())
            base = self.workspace.connect_args()["options"]
            self._engine = self.workspace.engine(
                self.url, label=f"session {self.name}", **self.engine_options(),
                pool_size=1, max_overflow=0, pool_timeout=self.timeout,
                connect_args={"options": f"{base} {options}".strip()},
            )  # fmt: skip
            event.listen(self._engine, "checkout", self._checked_out)
            event.listen(self._engine, "commit", self._before_commit)
        return self._engine

    def _before_commit(self, conn: Connection) -> None:
        """SQLAlchemy's "commit" engine event, just before COMMIT is sent: the session
        stops at its :data:`BEFORE_COMMIT` gate, if one is set."""
        gate = self.gates.get(BEFORE_COMMIT)
        if gate is not None:
            gate(conn)

    def _checked_out(self, dbapi_conn: Any, record: Any, proxy: Any) -> None:
        self.pid = drivers.backend_pid(dbapi_conn)
        self.dbapi_connection = dbapi_conn

    def cancel(self) -> None:
        """Cancel the statement the session runs now, as the application itself does: the
        driver's cancel request (psycopg2's ``connection.cancel()``, psycopg's
        ``cancel_safe()``; libpq's ``PQcancel``, ``PQcancelBlocking``),
        sent from the calling thread while the session's own thread waits for its reply.

        libpq sends it over a connection of its own and returns once the server has taken
        it; if it is effective the statement fails with ``query_canceled``, and if the
        server had already finished the statement nothing visible happens (libpq,
        "Canceling Queries in Progress"; psycopg2: cancel() may be called from another
        thread, and does nothing when no query runs; psycopg: ``cancel_safe()`` likewise).
        Raises RuntimeError if the session has never connected, and the driver's error if
        the request could not be sent.
        """
        if self.dbapi_connection is None:
            raise RuntimeError(f"{self.name} has no connection to cancel a statement on")
        self.log("cancelled by the application")
        drivers.cancel(self.dbapi_connection)

    @property
    def conn(self) -> Connection:
        """The session's connection for SQL-level actions (use on the session's thread)."""
        return self._conn.get()

    def configure(self, **settings: str) -> None:
        if self._engine is not None:
            raise RuntimeError(f"{self.name} is already connected; configure it first")
        self.settings.update(settings)

    # -- actions ----------------------------------------------------------------------

    @property
    def current(self) -> Action | None:
        return self.actions[-1] if self.actions else None

    def submit(self, text: str, fn: Callable[[], Any]) -> Action:
        """Start ``fn`` on the session's thread; its outcome is captured, never raised."""

        def run() -> Outcome:
            action.thread = threading.get_ident()
            outcome = capture(f"{self.name}: {text}", fn)
            action.ended = time.monotonic()
            self.log(f"{text} -> {_result(outcome)}")
            return outcome

        action = Action(text, Future())
        action.future = self._thread.submit(run)
        self.actions.append(action)
        return action

    def log(self, line: str) -> None:
        self.transcript.append(f"+{time.monotonic() - self._started:.3f}s {line}")

    def remember(self, what: str, value: Any) -> Any:
        self.reads.append((what, value))
        return value

    def paused_at(self) -> str | None:
        for gate in self.gates.values():
            if gate.reached.is_set():
                return gate.point
        return None

    def outcomes(self) -> list[Outcome]:
        return [a.outcome for a in self.actions if a.done]

    def failed_with(self, condition: str) -> bool:
        return any(o.condition == condition for o in self.outcomes())

    def close(self) -> None:
        """Close the connection on the session's thread, then end the thread: waited for
        when the session is idle, left to end on its own when it is stuck (never waited
        for without limit)."""
        idle = self.current is None or self.current.done
        conn = self._conn.take()
        if conn is not None:
            with contextlib.suppress(Exception):
                self._thread.submit(conn.close).result(timeout=self.timeout)
        self._thread.shutdown(wait=idle)


class Interleaving:
    """The scenario's concurrent sessions and the order in which their actions happen."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        timeout: float,
        engine_options: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.workspace = workspace
        #: Engine options each session shares with the application (see ConcurrentSession).
        self.engine_options = engine_options
        #: How long any one action may take to finish, block or pause.
        self.timeout = timeout
        #: Where new sessions connect (None: the server itself).
        self.url: URL | None = None
        self._sessions: dict[str, ConcurrentSession] = {}

    def __getitem__(self, name: str) -> ConcurrentSession:
        if name not in self._sessions:
            session = ConcurrentSession(name, self.workspace, self.timeout, self.engine_options)
            session.url = self.url
            self._sessions[name] = session
        return self._sessions[name]

    def __iter__(self) -> Iterator[ConcurrentSession]:
        return iter(self._sessions.values())

    # -- running actions --------------------------------------------------------------

    def perform(
        self, name: str, text: str, fn: Callable[[], Any], *, busy: Callable[[], bool] | None = None
    ) -> str:
        """Start an action in a session; return when it has finished, is blocked, or paused
        (or, if ``busy`` is given, as soon as ``busy()`` says the action is under way).

        A session still busy with an earlier (blocked) action finishes that one first, as
        a client library would. Returns ``"finished"``, ``"blocked"``, ``"paused"`` or
        ``"busy"``.
        """
        session = self[name]
        if session.current is not None and not session.current.done:
            self.finish(name)
        action = session.submit(text, fn)
        return self._settle(session, action, busy)

    def resume(self, name: str, point: str) -> str:
        """Let a paused session go on; return as :meth:`perform` does."""
        session = self[name]
        assert self.reaches(name, point), f"{name} finished without pausing {point}"
        session.gates[point].open()
        session.log(f"continues {point}")
        action = session.current
        assert action is not None
        return self._settle(session, action)

    def reaches(self, name: str, point: str) -> bool:
        """Wait until the session pauses at ``point`` (True) or its action ends (False).

        It may still be on its way there, e.g. waiting for a lock first.
        """
        session = self[name]
        gate = session.gates[point]
        action = session.current
        assert action is not None, f"{name} has done nothing yet"
        try:
            until(
                lambda: gate.reached.is_set() or action.done,
                timeout=self.timeout, what=f"{name} pausing {point}",
            )  # fmt: skip
        except WaitTimeout:
            raise Stuck(self.describe_stuck(name)) from None
        return gate.reached.is_set()

    def _settle(
        self, session: ConcurrentSession, action: Action, busy: Callable[[], bool] | None = None
    ) -> str:
        def settled() -> str | None:
            if action.done:
                return "finished"
            if busy is not None and busy():
                return "busy"
            if session.paused_at() is not None:
                return "paused"
            blockers = self.blockers(session.name)
            if blockers:
                for blocker in blockers:
                    if blocker not in action.waited_for:
                        action.waited_for.append(blocker)
                session.log(f"{action.text} -> blocked by {', '.join(blockers)}")
                return "blocked"
            return None

        try:
            return until(settled, timeout=self.timeout, what=f"{session.name}: {action.text}")
        except WaitTimeout:
            raise Stuck(self.describe_stuck(session.name)) from None

    def finish(self, name: str) -> Outcome:
        """Wait for the session's current action to finish (within the deadline)."""
        session = self[name]
        action = session.current
        assert action is not None, f"{name} has done nothing yet"

        def finished() -> bool:
            if not action.done:
                for blocker in self.blockers(name):
                    if blocker not in action.waited_for:
                        action.waited_for.append(blocker)
            return action.done

        try:
            until(finished, timeout=self.timeout, what=f"{name}: {action.text}")
        except WaitTimeout:
            raise Stuck(self.describe_stuck(name)) from None
        return action.outcome

    def finish_all(self) -> None:
        for session in self:
            if session.current is not None and not session.current.done:
                self.finish(session.name)

    # -- what the server shows --------------------------------------------------------

    def running_statement(self, name: str) -> bool:
        """Whether the server shows the session running a statement now."""
        pid = self[name].pid
        if pid is None:
            return False
        work, _ = work_of(self.workspace.run.admin, pid)
        return work is not None and work.running

    def waits_for_pool(self, name: str) -> bool:
        """Whether the session's current action is waiting inside a connection pool for a
        connection to be given back (its thread is blocked in the pool's queue: SQLAlchemy's
        ``QueuePool`` waits in ``sqlalchemy.util.queue.Queue.get``). The pool's side of
        what :meth:`blockers` tells for the server's locks."""
        action = self[name].current
        if action is None or action.done or action.thread is None:
            return False
        frame = sys._current_frames().get(action.thread)
        while frame is not None:
            code = frame.f_code
            if code.co_name == "get" and code.co_filename.endswith(_POOL_QUEUE):
                return True
            frame = frame.f_back
        return False

    def blockers(self, name: str) -> list[str]:
        """The sessions (or foreign server processes) that ``name`` waits for now."""
        pid = self[name].pid
        if pid is None:
            return []
        with self.workspace.run.admin.connect() as conn:
            pids = conn.execute(sa.text("SELECT pg_blocking_pids(:pid)"), {"pid": pid}).scalar()
        by_pid = {s.pid: s.name for s in self if s.pid is not None}
        return [by_pid.get(p, f"server process {p}") for p in pids or []]

    def describe_stuck(self, name: str) -> str:
        session = self[name]
        action = session.current
        text = action.text if action is not None else "(nothing)"
        waited = time.monotonic() - action.started if action is not None else 0.0
        wait = "no lock"
        if session.pid is not None:
            work, _ = work_of(self.workspace.run.admin, session.pid)
            if work is not None:
                wait = f"wait event {work.wait_event_type}/{work.wait_event} (state {work.state})"
        blockers = self.blockers(name)
        held_by = f", blocked by {', '.join(blockers)}" if blockers else ""
        return (
            f"{name} is stuck: '{text}' has not finished after {waited:.2f} s "
            f"(deadline {self.timeout:.2f} s); the server shows {wait}{held_by}"
        )

    def transcripts(self) -> dict[str, list[str]]:
        return {s.name: list(s.transcript) for s in self}

    # -- cleanup ----------------------------------------------------------------------

    def close(self) -> None:
        """End every session, also after a failure, without waiting without limit.

        Idle sessions close first (rolling back, so their locks go); a paused operation is
        failed, not let go on; a running statement is cancelled again at every poll, and
        its server process ended at the deadline. A session that still does not finish is
        reported as stuck, after every other session has been closed.
        """
        sessions = list(self)
        self._sessions.clear()
        idle = [s for s in sessions if s.current is None or s.current.done]
        busy = [s for s in sessions if s not in idle]
        for session in idle:
            session.close()
        stuck = []
        for session in busy:
            for gate in session.gates.values():
                gate.abort()
            if not self._stop(session):
                stuck.append(session.name)
            session.close()
        if stuck:
            raise Stuck(f"sessions still running after cancel and terminate: {stuck}")

    def _stop(self, session: ConcurrentSession) -> bool:
        """Cancel the session's statement until its action ends; terminate it at the
        deadline. Whether the action ended."""
        action = session.current
        assert action is not None

        def ended(signal: str) -> bool:
            if not action.done and session.pid is not None:
                with self.workspace.run.admin.connect() as conn:
                    conn.execute(sa.text(f"SELECT {signal}(:p)"), {"p": session.pid})
            return action.done

        for signal in ("pg_cancel_backend", "pg_terminate_backend"):
            with contextlib.suppress(WaitTimeout):
                until(
                    functools.partial(ended, signal),
                    timeout=self.timeout, what=f"{session.name} ending",
                )  # fmt: skip
                return True
        return action.done


def _result(outcome: Outcome) -> str:
    if outcome.error is not None:
        return f"{outcome.condition or type(outcome.error).__name__}"
    if outcome.rows is not None:
        return f"{len(outcome.rows)} row(s)"
    return "ok" if outcome.value is None else repr(outcome.value)
