"""Named database sessions: what "the application" holds open across steps.

A session owns one connection of the scenario. Every action on it is captured as an
:class:`~failspec.harness.outcomes.Outcome`; nothing here raises a database error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from failspec.harness.outcomes import Outcome, capture


class LazyConnection:
    """A session's one connection of an engine: opened at its first use, and opened anew
    at the first use after it closed. ``opened`` runs on each new connection."""

    def __init__(
        self, engine: Callable[[], Engine], opened: Callable[[Connection], None] | None = None
    ) -> None:
        self._engine = engine
        self._opened = opened
        self._conn: Connection | None = None

    def get(self) -> Connection:
        if self._conn is None or self._conn.closed:
            self._conn = self._engine().connect()
            if self._opened is not None:
                self._opened(self._conn)
        return self._conn

    def is_open(self) -> bool:
        return self._conn is not None and not self._conn.closed

    def in_transaction(self) -> bool:
        return self._conn is not None and self._conn.in_transaction()

    def take(self) -> Connection | None:
        """The connection, if one was opened, which is now the caller's to close."""
        conn, self._conn = self._conn, None
        return conn

    def close(self) -> None:
        conn = self.take()
        if conn is not None:
            conn.close()


class DbSession:
    """One connection, held across steps, with explicit transaction control."""

    def __init__(self, name: str, engine: Engine) -> None:
        self.name = name
        self.engine = engine
        self._conn = LazyConnection(lambda: self.engine, self._opened)
        self.backend_pid: int | None = None
        self._savepoints: list[Any] = []

    def _opened(self, conn: Connection) -> None:
        self.backend_pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        conn.commit()  # end the autobegun transaction of that probe

    @property
    def conn(self) -> Connection:
        return self._conn.get()

    def connect(self) -> Outcome:
        return capture(f"{self.name}: connect", lambda: self.conn and None)

    def run(self, action: str, fn: Callable[[Connection], Any]) -> Outcome:
        """Run ``fn`` on this session's connection, in its current transaction (if any)."""
        return capture(f"{self.name}: {action}", lambda: fn(self.conn))

    def execute(self, sql: str) -> Outcome:
        def go(conn: Connection) -> Any:
            result = conn.execute(sa.text(sql))
            return list(result) if result.returns_rows else result.rowcount

        return self.run(sql, go)

    def run_alone(self, action: str, fn: Callable[[Connection], Any]) -> Outcome:
        """Run ``fn`` in a transaction of its own: committed on success, rolled back on error."""

        def go(conn: Connection) -> Any:
            with conn.begin():
                return fn(conn)

        return self.run(action, go)

    def savepoint(self) -> Outcome:
        def set_it(conn: Connection) -> None:
            self._savepoints.append(conn.begin_nested())

        return self.run("savepoint", set_it)

    def release_savepoint(self) -> Outcome:
        return self.run("release savepoint", lambda conn: self._savepoints.pop().commit())

    def rollback_to_savepoint(self) -> Outcome:
        return self.run("rollback to savepoint", lambda conn: self._savepoints.pop().rollback())

    def begin(self) -> Outcome:
        return self.run("begin", lambda conn: conn.begin() and None)

    def commit(self) -> Outcome:
        return self.run("commit", lambda conn: conn.commit())

    def rollback(self) -> Outcome:
        return self.run("rollback", lambda conn: conn.rollback())

    def is_open(self) -> bool:
        return self._conn.is_open()

    def current_backend_pid(self) -> int:
        """The server process now serving this session (asked of the server, not remembered)."""
        pid = self.conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        self.conn.rollback()
        return pid

    def in_transaction(self) -> bool:
        return self._conn.in_transaction()

    def close(self) -> None:
        self._conn.close()


class Sessions:
    """The scenario's named sessions, opened on first use, closed at the end."""

    def __init__(self, engine_for: Callable[[], Engine]) -> None:
        self._engine_for = engine_for
        self._sessions: dict[str, DbSession] = {}

    def __getitem__(self, name: str) -> DbSession:
        if name not in self._sessions:
            self._sessions[name] = DbSession(name, self._engine_for())
        return self._sessions[name]

    def close(self) -> None:
        for session in self._sessions.values():
            # A dead connection needs no closing; the workspace ends any straggler.
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                session.close()
        self._sessions.clear()
