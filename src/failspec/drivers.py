"""The database driver a run uses: psycopg2 (the default) or psycopg 3, both through
SQLAlchemy (its ``postgresql+psycopg2`` and ``postgresql+psycopg`` dialects).

One run uses one driver (``-D driver=…``, ``FAILSPEC_DRIVER``): :func:`use` chooses it
before the first connection, :func:`current` answers everything that builds a URL, an
engine or a raw connection. What differs between the two and is not SQLAlchemy's to hide
is answered here, for a DBAPI connection of either:

* its server process (psycopg2 ``get_backend_pid()``, psycopg ``info.backend_pid``),
  whether it is open (psycopg2 ``closed == 0``; psycopg ``closed`` is a bool) and libpq's
  transaction status (both give ``PQtransactionStatus``'s values);
* the cancel request (psycopg2 ``cancel()``; psycopg ``cancel_safe()``, which, unlike its
  deprecated ``cancel()``, does not block other threads while it waits: psycopg docs,
  "Connection.cancel_safe");
* the server's notices (psycopg2 keeps a list, ``connection.notices``; psycopg calls
  handlers, ``add_notice_handler``, with a ``Diagnostic``);
* a server error's SQLSTATE (psycopg2 ``pgcode``; psycopg ``sqlstate``);
* parsing a libpq connection string (both ask libpq: ``psycopg2.extensions.parse_dsn``,
  ``psycopg.conninfo.conninfo_to_dict``).
"""

from __future__ import annotations

import importlib
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

#: libpq's ``PQtransactionStatus`` values (libpq-fe.h, ``PGTransactionStatusType``); both
#: drivers report these numbers (psycopg2 ``TRANSACTION_STATUS_*``, psycopg
#: ``pq.TransactionStatus``).
TRANSACTION_IDLE, TRANSACTION_ACTIVE, TRANSACTION_INTRANS, TRANSACTION_INERROR = 0, 1, 2, 3
TRANSACTION_UNKNOWN = 4


@dataclass(frozen=True)
class Driver:
    """One driver: its name as the setting says it, SQLAlchemy's dialect for it, and the
    module a raw connection is made with."""

    name: str
    #: SQLAlchemy's driver name (the URL's scheme).
    dialect: str
    #: The DBAPI module (``connect``).
    module: str

    @property
    def dbapi(self) -> ModuleType:
        """The driver's DBAPI module, imported."""
        return importlib.import_module(self.module)

    def __str__(self) -> str:
        return self.name


PSYCOPG2 = Driver("psycopg2", "postgresql+psycopg2", "psycopg2")
PSYCOPG = Driver("psycopg", "postgresql+psycopg", "psycopg")
DRIVERS = {driver.name: driver for driver in (PSYCOPG2, PSYCOPG)}
NAMES: Sequence[str] = tuple(DRIVERS)

_current = PSYCOPG2


def use(name: str) -> Driver:
    """Make ``name`` the run's driver (before any connection is opened) and return it.
    Raises ValueError for a name not in :data:`NAMES`."""
    global _current
    if name not in DRIVERS:
        raise ValueError(f"unknown driver {name!r}: use one of {', '.join(NAMES)}")
    _current = DRIVERS[name]
    return _current


def current() -> Driver:
    """The run's driver (psycopg2 until :func:`use` says otherwise)."""
    return _current


def connect(**params: Any) -> Any:
    """A raw connection of the run's driver with libpq ``params``. Its cursors merge a
    statement's parameters into its text, on psycopg too (its ``ClientCursor``), as
    psycopg2 does: psycopg's default cursor sends them apart (``$1``), which only some
    statements take (not ``ALTER ROLE … PASSWORD``; psycopg docs, "Server-side binding")."""
    if _current is PSYCOPG:
        import psycopg

        return psycopg.connect(cursor_factory=psycopg.ClientCursor, **params)
    import psycopg2

    return psycopg2.connect(**params)


def driver_errors() -> tuple[type[BaseException], ...]:
    """The base error classes of the drivers that are imported (a driver nobody imported
    raised nothing)."""
    import sys

    found: list[type[BaseException]] = []
    for module in ("psycopg2", "psycopg"):
        loaded = sys.modules.get(module)
        if loaded is not None:
            found.append(loaded.Error)
    return tuple(found)


def is_psycopg3(connection: Any) -> bool:
    """Whether a DBAPI connection is psycopg 3's (it has ``pgconn``; psycopg2's has not)."""
    return hasattr(connection, "pgconn")


def backend_pid(connection: Any) -> int:
    """The server process id of a DBAPI connection (libpq ``PQbackendPID``)."""
    if is_psycopg3(connection):
        return int(connection.info.backend_pid)
    return int(connection.get_backend_pid())


def is_open(connection: Any) -> bool:
    """Whether the driver still takes a DBAPI connection for open (neither closed nor
    found broken)."""
    if is_psycopg3(connection):
        return not connection.closed
    return connection.closed == 0  # psycopg2: 0 open, 1 closed, 2 broken


def transaction_status(connection: Any) -> int:
    """libpq's transaction status of a DBAPI connection (``TRANSACTION_*`` above)."""
    return int(connection.info.transaction_status)


def cancel(connection: Any) -> None:
    """Send the server a cancel request for the statement a DBAPI connection runs now, from
    any thread; returns once libpq has sent it (libpq ``PQcancel``/``PQcancelBlocking``).
    Raises the driver's error if it could not be sent."""
    if is_psycopg3(connection):
        connection.cancel_safe()
    else:
        connection.cancel()


def sqlstate(error: BaseException | None) -> str | None:
    """The SQLSTATE a driver error carries (None: the server sent none, or the error is
    not a driver's)."""
    return getattr(error, "pgcode", None) or getattr(error, "sqlstate", None)


def parse_dsn(text: str, driver: Driver | None = None) -> dict[str, str]:
    """A libpq connection string as the libpq of ``driver`` (default: the run's) parses
    it; raises the driver's error for a parameter that libpq does not know."""
    if (driver or _current) is PSYCOPG:
        from psycopg.conninfo import conninfo_to_dict

        return {k: str(v) for k, v in conninfo_to_dict(text).items()}
    from psycopg2.extensions import parse_dsn as parse

    return dict(parse(text))


_notices: weakref.WeakKeyDictionary[Any, list[str]] = weakref.WeakKeyDictionary()
_notices_lock = threading.Lock()


def notices(connection: Any) -> list[str]:
    """The server's notices on a DBAPI connection, in order, as text in libpq's layout
    (``WARNING:  message`` then ``DETAIL:  detail``): psycopg2's ``connection.notices``
    (it keeps the last 50); for psycopg, a list a notice handler fills from the first call
    on (psycopg docs, "Server messages"). The caller may empty it. SQLAlchemy's psycopg2
    dialect logs and empties the list after each statement it runs itself
    (``_log_notices``): a COMMIT's notices stay."""
    if not is_psycopg3(connection):
        found = getattr(connection, "notices", None)
        return found if isinstance(found, list) else []
    with _notices_lock:
        kept = _notices.get(connection)
        if kept is None:
            kept = _notices[connection] = []
            connection.add_notice_handler(_keeper(kept))
    return kept


def _keeper(kept: list[str]) -> Any:
    def keep(diagnostic: Any) -> None:
        text = f"{diagnostic.severity}:  {diagnostic.message_primary}\n"
        if diagnostic.message_detail:
            text += f"DETAIL:  {diagnostic.message_detail}\n"
        kept.append(text)

    return keep
