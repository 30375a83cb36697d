"""A request deadline: how long the ledger waits for the database, in every phase.

libpq bounds some waits and not others. ``connect_timeout`` bounds opening a connection;
``tcp_user_timeout`` and the keepalives bound a wait only where the network stops
acknowledging; ``statement_timeout`` and ``lock_timeout`` are the server's, and a server
that is frozen (its processes stopped, its kernel still acknowledging) or a peer that
acknowledges but never answers applies none of them. A request sent then — the pool's
test of an idle connection, a statement, COMMIT — waits as long as the silence lasts.
The deadline bounds each of those waits by one clock per request: when it runs out the
wait fails with :class:`DeadlineExceeded` (condition ``deadline_exceeded``) and the
connection is closed, so the pool never hands it out again.

How, with psycopg2 (2.9), and why this way:

* **psycopg2's wait callback (chosen).** ``psycopg2.extensions.set_wait_callback(f)``
  makes psycopg2 use libpq's non-blocking calls (``PQconnectStart``/``PQconnectPoll``,
  ``PQsendQuery``, ``PQconsumeInput``/``PQisBusy``) and call ``f(conn)`` wherever it
  would block, for connecting, every statement and COMMIT/ROLLBACK
  (psycopg/green.c, pqpath.c, connection_int.c). ``f`` loops on ``conn.poll()`` and waits
  for the socket itself (``psycopg2.extras.wait_select`` is the model), so it can stop
  waiting at the deadline, in the thread that made the request, with no race against
  the request finishing. When ``f`` raises, psycopg2 closes the connection
  (``green_panic``: its comment explains that a connection interrupted mid-request
  cannot be put back in a usable state), the exception reaches the caller, and
  SQLAlchemy, seeing ``connection.closed``, invalidates it (its psycopg2 dialect's
  ``is_disconnect``): never returned to the pool. The error is a
  ``psycopg2.OperationalError``, so SQLAlchemy wraps it like any driver error.
* **A watchdog thread calling ``conn.cancel()``** (PQcancel) was rejected: the cancel
  request is a new connection to the same address, which a frozen server or a silent
  peer does not answer either, so the watchdog hangs too; and a cancel cannot take back a
  COMMIT the server already has.
* **A watchdog thread shutting the socket down** (``shutdown(2)`` on ``conn.fileno()``)
  was rejected: the request then fails as a lost connection, indistinguishable from
  one; it races with the request finishing (the pool may get a connection whose socket
  is about to be shut); and it cannot reach a connection still being opened, or the
  pool's pre-ping, which run before the application holds the connection.
* **psycopg2's async mode** (``async_=True``) cannot be used under SQLAlchemy, which
  needs a connection that executes synchronously.

The callback is **process-global**, and registering it changes every psycopg2 connection
opened meanwhile to non-blocking mode. So:

* only connections made with :func:`connect_args` (class :class:`BoundedConnection`)
  are bounded, and only inside :func:`within`; every other connection (the harness's
  administrator and observer, other libraries) waits as it would without the callback;
* it is registered by :func:`install` only while some application needs it, and removed
  by the matching :func:`uninstall`; a callback registered before (a green-thread
  library's) is called for the connections this module does not bound, and restored;
* libpq ignores ``connect_timeout`` in ``PQconnectPoll`` ("it is the application's
  responsibility to decide whether an excessive amount of time has elapsed", libpq docs,
  PQconnectStartParams), so the callback applies it while a connection is being opened,
  to every connection, and fails with libpq's own text, "timeout expired";
* ``COPY`` and large objects do not work while it is registered (psycopg2 docs, "Support
  for coroutine libraries"); the ledger uses neither. libpq documents that ``PQexec``
  blocks on a non-blocking connection anyway, so a connection opened meanwhile still
  works after :func:`uninstall`.

How, with psycopg 3 (3.3, pinned exactly): psycopg runs every request as a generator
that a wait function drives, waking at least every 0.1 s (``Connection.wait``; connecting:
``waiting.wait_conn`` on ``Connection._connect_gen``; psycopg/connection.py). The class
:class:`BoundedPsycopgConnection` wraps those generators so that, each time one is
resumed, it fails with :class:`PsycopgDeadlineExceeded` once the deadline has passed,
closing the connection (libpq ``PQfinish``): psycopg then calls it ``closed`` and
``broken``, and SQLAlchemy's psycopg dialect invalidates it (its ``is_disconnect``). The
deadline thus ends a wait at most 0.1 s late; psycopg applies ``connect_timeout`` itself
(``timeout_from_conninfo``). No process-global state: :func:`install` is for psycopg2.
SQLAlchemy's psycopg dialect has no ``connection_factory``, so :func:`bound` makes an
engine's connections of this class (its ``do_connect`` event).

What it does not bound: waiting for a free connection in SQLAlchemy's pool (no libpq
wait; ``pool_timeout`` bounds it), and the application's own work between requests.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import psycopg
import psycopg2
import psycopg2.extensions as ext
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from failspec.conditions import NamedFailure, note

#: When the request in progress in this thread (context) must be done (time.monotonic()).
_expiry: ContextVar[float | None] = ContextVar("failspec_request_deadline", default=None)
#: The seconds of the request in progress, for the error's message.
_seconds: ContextVar[float | None] = ContextVar("failspec_request_seconds", default=None)

_lock = threading.Lock()
_users = 0
_previous: Callable[[Any], None] | None = None


class DeadlineExceeded(psycopg2.OperationalError, NamedFailure):
    """The database did not answer within the request deadline; the connection it waited
    on is closed. ``outcome_unknown``: it was waiting for COMMIT's reply, so whether the
    transaction committed is not known (look the operation up by its reference)."""

    condition = "deadline_exceeded"
    outcome_unknown = False


class BoundedConnection(ext.connection):
    """A psycopg2 connection whose waits end at the request deadline (see :func:`within`);
    give it to psycopg2 as ``connection_factory`` (:func:`connect_args`)."""

    def commit(self) -> None:
        """COMMIT. Past the deadline the server may have the COMMIT and have committed, or
        not: the error says the outcome is unknown (``DeadlineExceeded.outcome_unknown``)."""
        _commit_or_say_unknown(super().commit, DeadlineExceeded)


def _commit_or_say_unknown(
    commit: Callable[[], None], exceeded: type[DeadlineExceeded | PsycopgDeadlineExceeded]
) -> None:
    """Run the driver's ``commit``; when it ends with ``exceeded`` (the deadline passed while
    it waited for the reply), mark that error's outcome unknown, add a note that says so,
    and raise it again."""
    try:
        commit()
    except exceeded as error:
        error.outcome_unknown = True
        note(
            error,
            "COMMIT got no reply within the deadline: whether it took effect is unknown; "
            "look the operation up by its reference before doing it again",
        )
        raise


def connect_args() -> dict[str, Any]:
    """psycopg2 connection arguments for an engine whose connections honour the deadline."""
    return {"connection_factory": BoundedConnection}


class PsycopgDeadlineExceeded(psycopg.OperationalError, NamedFailure):
    """:class:`DeadlineExceeded`, raised by a psycopg 3 connection."""

    condition = "deadline_exceeded"
    outcome_unknown = False


class BoundedPsycopgConnection(psycopg.Connection[Any]):
    """A psycopg 3 connection whose waits end at the request deadline (see :func:`within`
    and the module's docstring); an engine gets them through :func:`bound`."""

    @classmethod
    def _connect_gen(cls, conninfo: str = "") -> Any:
        return _until_deadline(super()._connect_gen(conninfo), None)

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        return super().wait(_until_deadline(gen, self), interval=interval, timeout=timeout)

    def commit(self) -> None:
        """COMMIT; past the deadline its outcome is unknown (as :class:`BoundedConnection`)."""
        _commit_or_say_unknown(super().commit, PsycopgDeadlineExceeded)


def _until_deadline(gen: Any, conn: psycopg.Connection[Any] | None) -> Any:
    """The psycopg generator ``gen``, failing with :class:`PsycopgDeadlineExceeded` when
    resumed past this thread's deadline (none: ``gen`` itself). ``conn``: the connection
    to close then (None while connecting: the generator holds the only reference)."""
    expiry = _expiry.get()
    if expiry is None:
        return gen
    seconds = _seconds.get()

    def bounded() -> Any:
        try:
            state = next(gen)
            while True:
                ready = yield state
                if time.monotonic() >= expiry:
                    gen.close()
                    if conn is not None:
                        conn.pgconn.finish()  # interrupted mid-request: never reusable
                    raise PsycopgDeadlineExceeded(
                        f"deadline exceeded: no reply from the server within the request "
                        f"deadline ({seconds:g} s)"
                    )
                state = gen.send(ready)
        except StopIteration as done:
            return done.value

    return bounded()


def bound(engine: Engine) -> Engine:
    """Make ``engine``'s new connections honour the request deadline, with either driver
    (psycopg2: :func:`connect_args`, with :func:`install`; psycopg: connections of class
    :class:`BoundedPsycopgConnection`). Register it after any other ``do_connect``
    listener that changes the connection's parameters."""

    @sa.event.listens_for(engine, "do_connect")
    def connect(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        if dialect.driver == "psycopg":
            return BoundedPsycopgConnection.connect(*cargs, **cparams)
        cparams.update(connect_args())
        return None

    return engine


@contextmanager
def within(seconds: float | None) -> Iterator[None]:
    """Bound every wait of this thread's bounded connections until the block ends by
    ``seconds`` from now (None: no bound). Nested, the earlier deadline holds."""
    if seconds is None:
        yield
        return
    if seconds <= 0:
        raise ValueError(f"a request deadline is a positive number of seconds, not {seconds}")
    expiry = time.monotonic() + seconds
    outer = _expiry.get()
    if outer is not None and outer <= expiry:
        yield
        return
    expiry_token, seconds_token = _expiry.set(expiry), _seconds.set(seconds)
    try:
        yield
    finally:
        _expiry.reset(expiry_token)
        _seconds.reset(seconds_token)


def remaining() -> float | None:
    """Seconds left to the request deadline in force here (None: no deadline)."""
    expiry = _expiry.get()
    return None if expiry is None else expiry - time.monotonic()


def install() -> None:
    """Register the wait callback (once for any number of users; see :func:`uninstall`).

    Call it before opening the connections to bound: a connection opened before it is in
    blocking mode, and libpq may block reading it whatever the callback does."""
    global _users, _previous
    with _lock:
        if _users == 0:
            current = ext.get_wait_callback()
            _previous = None if current is _wait else current
            ext.set_wait_callback(_wait)
        _users += 1


def uninstall() -> None:
    """Undo one :func:`install`; the last one restores the callback found before."""
    global _users, _previous
    with _lock:
        if _users == 0:
            return
        _users -= 1
        if _users == 0:
            ext.set_wait_callback(_previous)
            _previous = None


def installed() -> bool:
    """Whether the wait callback is registered now."""
    return ext.get_wait_callback() is _wait


def is_deadline_exceeded(error: BaseException | None) -> bool:
    """Whether ``error`` (raised by either driver or SQLAlchemy) is the deadline running out."""
    return isinstance(getattr(error, "orig", None) or error, _EXCEEDED)


#: Set (True) on an operation's final error when an earlier attempt's COMMIT got no reply
#: within the deadline and no later attempt found out what happened (Ledger._bounded).
OUTCOME_UNKNOWN = "failspec_outcome_unknown"


def outcome_unknown(error: BaseException | None) -> bool:
    """Whether ``error`` leaves the operation's outcome unknown: the deadline ran out while
    COMMIT's reply was awaited, in this attempt or, for the error an operation finally
    raises, in an earlier one (:data:`OUTCOME_UNKNOWN`)."""
    cause = getattr(error, "orig", None) or error
    if getattr(error, OUTCOME_UNKNOWN, False) or getattr(cause, OUTCOME_UNKNOWN, False):
        return True
    return isinstance(cause, _EXCEEDED) and cause.outcome_unknown


_EXCEEDED = (DeadlineExceeded, PsycopgDeadlineExceeded)


def _wait(conn: Any) -> None:
    """The wait callback: poll the connection until its request is done, waiting for its
    socket no later than the deadline (and, while connecting, the connect timeout)."""
    bounded = isinstance(conn, BoundedConnection)
    if not bounded and _previous is not None:
        _previous(conn)
        return
    expiry = _expiry.get() if bounded else None
    connect_by = None
    if conn.status == ext.STATUS_SETUP:
        timeout = _connect_timeout(conn)
        connect_by = None if timeout is None else time.monotonic() + timeout
    poller = select.poll()  # poll(2), not select(2): descriptors may be above 1024
    while True:
        state = conn.poll()
        if state == ext.POLL_OK:
            return
        if state == ext.POLL_READ:
            events = select.POLLIN
        elif state == ext.POLL_WRITE:
            events = select.POLLOUT
        else:
            raise conn.OperationalError(f"bad state from poll: {state}")
        ends = min((t for t in (expiry, connect_by) if t is not None), default=None)
        left = None if ends is None else ends - time.monotonic()
        if left is None or left > 0:
            poller.register(conn.fileno(), events)
            ready = poller.poll(None if left is None else max(1, round(left * 1000)))
            poller.unregister(conn.fileno())
            if ready:
                continue
        if expiry is not None and expiry == ends:
            raise DeadlineExceeded(
                f"deadline exceeded: no reply from the server within the request deadline "
                f"({_seconds.get():g} s)"
            )
        raise psycopg2.OperationalError("timeout expired")  # libpq's text (fe-connect.c)


def _connect_timeout(conn: Any) -> float | None:
    """The connection's ``connect_timeout`` in seconds (libpq: an integer, or the
    PGCONNECT_TIMEOUT environment variable; zero, negative or unset: none)."""
    value = ext.parse_dsn(conn.dsn).get("connect_timeout") or os.environ.get("PGCONNECT_TIMEOUT")
    try:
        seconds = int(value) if value is not None else 0
    except ValueError:
        return None
    return float(seconds) if seconds > 0 else None
