"""Naming failures the way PostgreSQL does, for the ledger and the harness alike.

Server errors are named by their PostgreSQL condition name (``unique_violation``,
``deadlock_detected``…), taken from psycopg2's copy of PostgreSQL's errcodes table, for
the errors of either driver (psycopg2's ``pgcode``, psycopg's ``sqlstate``).
Failures with no SQLSTATE get names of the same style:

* neither driver gives a SQLSTATE for a failed *connection attempt*, even when the
  server sent one, and psycopg2 (libpq 17) gives none for a session the server ended
  (``pg_terminate_backend``, a timeout of the session: see the driver matrix); the name
  is then recovered from PostgreSQL's own message texts (the servers the suite starts
  run with ``lc_messages=C``), as SQLAlchemy's psycopg2 dialect recognises a lost
  connection.
* client-side failures (nothing listening, a connect timeout, a lost connection, a pool
  timeout) are named for what happened;
* the ledger's own refusals (:class:`NamedFailure`) carry their name.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import psycopg2.errorcodes
import sqlalchemy.exc

from failspec import drivers


class NamedFailure(Exception):
    """A failure the ledger reports itself, named in the same style as PostgreSQL's."""

    condition = "ledger_error"


#: SQLSTATE -> condition name, e.g. "23505" -> "unique_violation".
CONDITION_NAMES: dict[str, str] = {
    code: name.lower()
    for name, code in vars(psycopg2.errorcodes).items()
    if name.isupper() and isinstance(code, str) and len(code) == 5 and not name.startswith("CLASS_")
}

#: Names for failures that carry no SQLSTATE: the client's view of what went wrong.
CLIENT_CONDITIONS = {
    "reference_conflict": "a client reference already names a different operation",
    "unknown_account": "an account the operation names does not exist",
    "connection_refused": "nothing accepted the connection at the server's address",
    "connect_timeout": "the connection was not established within the connect timeout",
    "unknown_host": "the server's host name could not be resolved",
    "connection_lost": "the server closed the connection unexpectedly",
    "network_timeout": "the network did not acknowledge a request within the TCP user timeout",
    "pool_timeout": "no pooled connection became free within the pool timeout",
    "pending_rollback": "the transaction failed earlier and must be rolled back first",
    "invalid_request": "the data layer refused an operation in its current state",
    "application_error": "the application's own code gave up in the middle of its work",
    "deadline_exceeded": "the server did not answer within the application's request deadline",
    "read_only_session": (
        "no server in the connection string that answered accepts writes "
        '(target_session_attrs=read-write; libpq: "session is read-only")'
    ),
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
        # A multi-host string lists every host's error; a server that answered but
        # accepts no writes says more than the others' refusals or timeouts.
        (r"session is read-only|server is in hot standby mode", "read_only_session"),
        (r"Connection refused", "connection_refused"),
        (r"timeout expired", "connect_timeout"),
        (r"could not translate host name", "unknown_host"),
        (r"server closed the connection unexpectedly", "connection_lost"),
        (r"(receive|send) data (from|to) server: Connection timed out", "network_timeout"),
        (r"connection already closed", "connection_lost"),  # psycopg2
        (r"the connection is closed", "connection_lost"),  # psycopg (errors.py)
        (r"SSL SYSCALL error: EOF detected", "connection_lost"),
        (r"SSL connection has been closed unexpectedly", "connection_lost"),
    )
]


def is_known_condition(name: str) -> bool:
    return name in CLIENT_CONDITIONS or name in CONDITION_NAMES.values()


def condition_of(error: BaseException) -> str | None:
    """The condition name of an error raised by SQLAlchemy, either driver, the pool or
    the ledger."""
    if isinstance(error, NamedFailure):
        return error.condition
    if isinstance(error, sqlalchemy.exc.TimeoutError):
        return "pool_timeout"
    if isinstance(error, sqlalchemy.exc.PendingRollbackError):
        return "pending_rollback"
    dbapi = getattr(error, "orig", None) if isinstance(error, sqlalchemy.exc.DBAPIError) else None
    if dbapi is None and isinstance(error, drivers.driver_errors()):
        dbapi = error
    if isinstance(dbapi, NamedFailure):  # a driver error the data layer raised itself
        return dbapi.condition
    if dbapi is not None:
        code = drivers.sqlstate(dbapi)
        if code:
            return CONDITION_NAMES.get(code, code)
        return _condition_from_message(str(dbapi))
    if isinstance(error, sqlalchemy.exc.InvalidRequestError):
        return "invalid_request"
    return None


#: libpq's text for a connection attempt the kernel gave up on (ETIMEDOUT: the TCP user
#: timeout or the SYN retries ran out). Not among the messages above: a data layer's
#: failure with it stays unnamed (see :func:`network_condition_of`).
_CONNECT_TIMED_OUT = re.compile(r"failed: Connection timed out")


def network_condition_of(error: BaseException) -> str | None:
    """:func:`condition_of`, except that a connection attempt the network left
    unacknowledged is ``network_timeout``, as a request is: how the hang matrix names
    the way a wait ended (``failspec.harness.faults.hangs``)."""
    condition = condition_of(error)
    if condition is None and _CONNECT_TIMED_OUT.search(first_line(error)):
        return "network_timeout"
    return condition


def _condition_from_message(message: str) -> str | None:
    for pattern, name in _MESSAGE_CONDITIONS:
        if pattern.search(message):
            return name
    return None


def sqlstate_of(error: BaseException) -> str | None:
    return drivers.sqlstate(getattr(error, "orig", error))


def first_line(error: BaseException) -> str:
    """The error's first meaningful line, without SQLAlchemy's background links."""
    dbapi = getattr(error, "orig", None) or error
    for line in str(dbapi).splitlines():
        line = line.strip()
        if line:
            return line
    return type(error).__name__


def note(error: BaseException, text: str) -> None:
    """Add a note to an error's report (Python 3.11+; older Pythons drop it)."""
    add_note = getattr(error, "add_note", None)
    if add_note is not None:
        add_note(text)
