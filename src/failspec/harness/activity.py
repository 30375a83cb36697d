"""What the server shows of its processes' work (PostgreSQL's statistics views, "The
Cumulative Statistics System": ``pg_stat_activity``), read the same way wherever the
harness asks: one server process by its pid (:func:`work_of`), or the server processes of
the connections that carry one name (:func:`backends_named`: a scenario's
``application_name``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

#: What pg_stat_activity shows a server process waiting on inside ``pg_sleep`` (the
#: stand-in for a heavy report or a slow write): wait event type Timeout, event PgSleep.
SLEEPING = "PgSleep"

_WORK = sa.text(
    "SELECT a.state, a.wait_event_type, a.wait_event, a.query_start, clock_timestamp(), "
    "  (SELECT count(*) FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted) "
    "FROM pg_stat_activity a WHERE a.pid = :pid"
)


@dataclass(frozen=True)
class Work:
    """What the server shows one of its processes doing, at one moment."""

    pid: int
    #: pg_stat_activity.state: 'active', 'idle', 'idle in transaction', 'idle in
    #: transaction (aborted)'…
    state: str | None
    wait_event_type: str | None
    wait_event: str | None
    #: When the process's current (or last) statement began, by the server's clock.
    query_start: dt.datetime | None
    #: Lock requests of the process that the server has not granted (it waits for them).
    locks_awaited: int

    @property
    def running(self) -> bool:
        """Whether it is running a statement now."""
        return self.state == "active"

    @property
    def sleeping(self) -> bool:
        """Whether it is inside ``pg_sleep`` (a report or a slowed write, under way)."""
        return self.running and self.wait_event == SLEEPING

    def describe(self) -> str:
        wait = f", waiting on {self.wait_event_type}/{self.wait_event}" if self.wait_event else ""
        locks = f", {self.locks_awaited} lock request(s) not granted" if self.locks_awaited else ""
        return f"server process {self.pid}: {self.state}{wait}{locks}"


def work_of(admin: Engine, pid: int) -> tuple[Work | None, dt.datetime]:
    """What server process ``pid`` is doing now (None once it has ended), and the server's
    clock at that moment. Each call reads in a transaction of its own: pg_stat_activity
    keeps one snapshot per transaction."""
    with admin.connect() as conn:
        row = conn.execute(_WORK, {"pid": pid}).first()
        if row is None:
            now = conn.execute(sa.text("SELECT clock_timestamp()")).scalar_one()
            return None, now
    state, wait_type, wait, started, now, awaited = row
    return Work(pid, state, wait_type, wait, started, awaited), now


#: The server processes whose connections carry a name, but the asking connection's.
#: ``pg_stat_get_activity(NULL)``, one row per server process (PostgreSQL's statistics
#: functions): the pg_stat_activity view is that function LEFT JOINed to pg_database and
#: pg_authid, so the rows are the same, and the round trip is about a third of the view's
#: (0.10 vs 0.34 ms, PostgreSQL 18.6).
_NAMED = sa.text(
    "SELECT pid, state, wait_event_type, wait_event, now() - xact_start, left(query, 80) "
    "FROM pg_stat_get_activity(NULL) "
    "WHERE application_name = :name AND pid <> pg_backend_pid() ORDER BY pid"
)


@dataclass(frozen=True)
class Backend:
    """One server process of a named connection, as the server shows it."""

    pid: int
    #: pg_stat_activity.state (see :class:`Work`).
    state: str | None
    wait_event_type: str | None
    wait_event: str | None
    #: How long its transaction has been open (None outside a transaction).
    transaction_age: dt.timedelta | None
    #: The first 80 characters of its current (or last) statement.
    query: str | None

    def waits_on(self, event_type: str, event: str | None = None) -> bool:
        """Whether it is running a statement that waits on ``event_type`` (and ``event``,
        if given), e.g. ``Lock``, or ``Client``/``ClientRead``."""
        return (
            self.state == "active"
            and self.wait_event_type == event_type
            and (event is None or self.wait_event == event)
        )


def backends_named(conn: Connection, application_name: str) -> list[Backend]:
    """The server processes whose connections carry ``application_name``, by pid, asked
    on ``conn`` (which is left out), in its transaction: pg_stat_activity keeps one
    snapshot per transaction."""
    return [Backend(*row) for row in conn.execute(_NAMED, {"name": application_name})]
