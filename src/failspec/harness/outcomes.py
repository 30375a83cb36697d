"""Capturing what an action did (rows or an error) and naming errors the way PostgreSQL does.

A When-step never raises: it captures an :class:`Outcome`, and Then-steps assert on it.
Server errors are named by their PostgreSQL condition name (``unique_violation``,
``deadlock_detected``…), taken from psycopg2's copy of PostgreSQL's errcodes table.
Failures with no SQLSTATE get names of the same style:

* psycopg2 gives no SQLSTATE for a failed *connection attempt*, even when the server
  sent one; the name is then recovered from PostgreSQL's own message texts (the server
  runs with ``lc_messages=C``), exactly as SQLAlchemy recognises a lost connection.
* client-side failures (nothing listening, a connect timeout, a lost connection, a pool
  timeout) are named for what happened.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg2
import psycopg2.errorcodes
import sqlalchemy.exc

log = logging.getLogger("failspec.outcome")

#: SQLSTATE -> condition name, e.g. "23505" -> "unique_violation".
CONDITION_NAMES: dict[str, str] = {
    code: name.lower()
    for name, code in vars(psycopg2.errorcodes).items()
    if name.isupper() and isinstance(code, str) and len(code) == 5 and not name.startswith("CLASS_")
}

#: Names for failures that carry no SQLSTATE: the client's view of what went wrong.
CLIENT_CONDITIONS = {
    "connection_refused": "nothing accepted the connection at the server's address",
    "connect_timeout": "the connection was not established within the connect timeout",
    "unknown_host": "the server's host name could not be resolved",
    "connection_lost": "the server closed the connection unexpectedly",
    "pool_timeout": "no pooled connection became free within the pool timeout",
    "pending_rollback": "the transaction failed earlier and must be rolled back first",
    "invalid_request": "the data layer refused an operation in its current state",
}

# (pattern in the message, condition). Server texts are PostgreSQL's own (src/backend/libpq/
# auth.c, src/backend/utils/init/postinit.c, src/backend/tcop/postgres.c); client texts are
# libpq's (src/interfaces/libpq/fe-connect.c, fe-misc.c).
_MESSAGE_CONDITIONS: Sequence[tuple[re.Pattern[str], str]] = [
    (re.compile(p), name)
    for p, name in (
        (r"password authentication failed for user", "invalid_password"),
        (r'database ".*" does not exist', "invalid_catalog_name"),
        (r'role ".*" does not exist', "invalid_authorization_specification"),
        (r"no pg_hba\.conf entry", "invalid_authorization_specification"),
        (r"sorry, too many clients already", "too_many_connections"),
        (r"remaining connection slots are reserved", "too_many_connections"),
        (r"the database system is (starting up|shutting down|in recovery)", "cannot_connect_now"),
        (r"terminating connection due to administrator command", "admin_shutdown"),
        (r"Connection refused", "connection_refused"),
        (r"timeout expired", "connect_timeout"),
        (r"could not translate host name", "unknown_host"),
        (r"server closed the connection unexpectedly", "connection_lost"),
        (r"connection already closed", "connection_lost"),
        (r"SSL SYSCALL error: EOF detected", "connection_lost"),
    )
]


def is_known_condition(name: str) -> bool:
    return name in CLIENT_CONDITIONS or name in CONDITION_NAMES.values()


def condition_of(error: BaseException) -> str | None:
    """The condition name of an error raised by SQLAlchemy, psycopg2 or the pool."""
    if isinstance(error, sqlalchemy.exc.TimeoutError):
        return "pool_timeout"
    if isinstance(error, sqlalchemy.exc.PendingRollbackError):
        return "pending_rollback"
    dbapi = getattr(error, "orig", None) if isinstance(error, sqlalchemy.exc.DBAPIError) else None
    if dbapi is None and isinstance(error, psycopg2.Error):
        dbapi = error
    if dbapi is not None:
        code = getattr(dbapi, "pgcode", None)
        if code:
            return CONDITION_NAMES.get(code, code)
        return _condition_from_message(str(dbapi))
    if isinstance(error, sqlalchemy.exc.InvalidRequestError):
        return "invalid_request"
    return None


def _condition_from_message(message: str) -> str | None:
    for pattern, name in _MESSAGE_CONDITIONS:
        if pattern.search(message):
            return name
    return None


def sqlstate_of(error: BaseException) -> str | None:
    dbapi = getattr(error, "orig", error)
    return getattr(dbapi, "pgcode", None)


def first_line(error: BaseException) -> str:
    """The error's first meaningful line, without SQLAlchemy's background links."""
    dbapi = getattr(error, "orig", None) or error
    for line in str(dbapi).splitlines():
        line = line.strip()
        if line:
            return line
    return type(error).__name__


@dataclass
class Outcome:
    """What one action did: the rows it returned, or the error it raised."""

    action: str
    rows: list[Any] | None = None
    error: BaseException | None = None
    elapsed: float = 0.0
    value: Any = None
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.error is None

    @property
    def condition(self) -> str | None:
        return condition_of(self.error) if self.error is not None else None

    @property
    def sqlstate(self) -> str | None:
        return sqlstate_of(self.error) if self.error is not None else None

    @property
    def message(self) -> str:
        if self.error is None:
            return ""
        dbapi = getattr(self.error, "orig", None) or self.error
        return str(dbapi).strip()

    @property
    def connection_invalidated(self) -> bool:
        return bool(getattr(self.error, "connection_invalidated", False))

    def describe(self) -> str:
        if self.error is None:
            result = f"{len(self.rows)} row(s)" if self.rows is not None else repr(self.value)
            return f"{self.action} succeeded ({result}) in {self.elapsed:.3f} s"
        name = self.condition or type(self.error).__name__
        extra = " (connection invalidated)" if self.connection_invalidated else ""
        return f"{self.action} failed with {name}{extra}: {first_line(self.error)}"


def capture(action: str, fn: Callable[[], Any]) -> Outcome:
    """Run ``fn`` and capture its result or its error; never raise a database error.

    ``fn`` returns a list of rows, or any other value (kept as ``Outcome.value``).
    """
    started = time.monotonic()
    try:
        result = fn()
    except (sqlalchemy.exc.SQLAlchemyError, psycopg2.Error) as error:
        outcome = Outcome(action, error=error, elapsed=time.monotonic() - started)
    else:
        elapsed = time.monotonic() - started
        if isinstance(result, list):
            outcome = Outcome(action, rows=result, elapsed=elapsed)
        else:
            outcome = Outcome(action, value=result, elapsed=elapsed)
    log.info("%s", outcome.describe())
    return outcome
