"""One run on one server, and a clean schema for each scenario in it.

Every scenario gets a schema of its own, named for the run and the scenario's number
(``fs_<run id>_<n>``), and every connection the scenario opens carries that schema as
its ``search_path`` and an ``application_name`` naming the scenario. Closing the
workspace disposes of its engines, ends any connection of the scenario still open, and
drops the schema, whatever state the scenario left it in. The run drops only schemas
whose names carry its own id, so it never touches another run's or anybody else's.

Creating a schema with the ledger's tables and dropping it afterwards is server work
of ~10 ms per scenario. A worker thread does it off the scenario's critical path: it
prepares the next scenario's schema while the current one runs, and drops finished
schemas behind it (``bench/harness_overhead.py`` measures both paths). Errors in that
work surface in the main thread, at the next ``workspace()``, ``retire()`` or ``close()``.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import secrets
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from failspec import drivers
from failspec.harness.activity import backends_named
from failspec.harness.servers import Server

T = TypeVar("T")

SCHEMA_PREFIX = "fs_"
#: The longest the run's administrative connection waits for a lock (ms).
ADMIN_LOCK_TIMEOUT_MS = 5000

#: Work done in a fresh schema before a scenario gets it (e.g. creating the ledger's
#: tables). It runs in a transaction whose search_path is that schema.
Preparation = Callable[[Connection], None]


class Run:
    """The run's identity, its server, its own connections, and its scenario schemas."""

    def __init__(
        self,
        server: Server,
        run_id: str | None = None,
        *,
        prepare: Preparation | None = None,
        ahead: int = 1,
        settings: str = "",
    ) -> None:
        """``settings``: more ``-c name=value`` options for the run's own connections
        (on a cluster: ``-c synchronous_commit=local``, so that dropping a schema never
        waits for a standby a scenario cut off)."""
        self.id = run_id or secrets.token_hex(4)
        self.server = server
        self.admin = server.engine(
            isolation_level="AUTOCOMMIT",
            pool_size=2,
            pool_pre_ping=True,
            # The harness's own reads never wait without bound on a scenario's locks.
            connect_args={
                "application_name": f"failspec:{self.id}:admin",
                "options": f"-c lock_timeout={ADMIN_LOCK_TIMEOUT_MS} {settings}".strip(),
            },
        )
        #: Reads committed state for the harness (never the application's connection).
        self.observer = server.engine(
            pool_size=2,
            pool_pre_ping=True,
            connect_args={
                "application_name": f"failspec:{self.id}:observer",
                **({"options": settings} if settings else {}),
            },
        )
        self.schema_prefix = f"{SCHEMA_PREFIX}{self.id}_"
        self._numbers = itertools.count(1)
        #: How many scenarios this run has started.
        self.scenarios = 0
        self._prepare = prepare
        self._ahead = ahead
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="failspec-schemas")
        self._ready: deque[Future[Workspace]] = deque()
        self._retiring: list[Future[None]] = []
        #: Schemas whose drop failed because the server was down; swept at close.
        self._unfinished: list[str] = []

    def workspace(self, scenario: str) -> Workspace:
        """The next scenario's workspace: a prepared schema, named for the scenario."""
        self._raise_retire_errors()
        if not self._ready:
            self._ready.append(self._worker.submit(self._make))
        try:
            workspace = self._ready.popleft().result()
        except sa.exc.OperationalError:
            # The server crashed or restarted under the preparation (a scenario with
            # server control did that); its transaction left nothing. Prepare it now.
            workspace = self._make()
        workspace.adopt(scenario)
        self.scenarios += 1
        while len(self._ready) < self._ahead:
            self._ready.append(self._worker.submit(self._make))
        return workspace

    def _make(self) -> Workspace:
        workspace = Workspace(self, next(self._numbers))
        with self.observer.begin() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA {workspace.schema}"))
            if self._prepare is not None:
                conn.execute(sa.text(f"SET LOCAL search_path TO {workspace.schema}"))
                self._prepare(conn)
        return workspace

    def retire(self, workspace: Workspace) -> None:
        """Close a finished scenario's workspace behind the run's back.

        The scenario's own engines are disposed now; ending stragglers and dropping the
        schema happen on the worker thread.
        """
        self._raise_retire_errors()
        workspace.dispose_engines()
        self._retiring.append(self._worker.submit(self._close, workspace))

    def _close(self, workspace: Workspace) -> None:
        try:
            workspace.close()
        except sa.exc.OperationalError:
            # The server was down (a scenario crashed it): the run's close sweeps it.
            self._unfinished.append(workspace.schema)

    def _raise_retire_errors(self) -> None:
        done = [f for f in self._retiring if f.done()]
        self._retiring = [f for f in self._retiring if not f.done()]
        for future in done:
            future.result()

    def schemas(self) -> list[str]:
        """This run's scenario schemas that exist on the server now."""
        with self.admin.connect() as conn:
            return list(
                conn.execute(
                    sa.text(
                        "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, :prefix) "
                        "ORDER BY nspname"
                    ),
                    {"prefix": self.schema_prefix},
                ).scalars()
            )

    def close(self) -> list[str]:
        """Finish background work, then drop any scenario schema of this run still
        present (one no scenario ever got, or one whose scenario never closed it).
        Returns the names of the schemas that were left behind by scenarios."""
        spare = []
        for future in self._ready:
            if not future.cancel():
                # A preparation that failed left at most a schema, swept below.
                with contextlib.suppress(Exception):
                    spare.append(future.result().schema)
        self._ready.clear()
        self._worker.shutdown(wait=True)
        errors = []
        for retiring in self._retiring:
            try:
                retiring.result()
            except Exception as error:
                errors.append(error)
        self._retiring.clear()
        left = self.schemas()
        for name in left:
            _drop_schema(self.admin, name)
        self.admin.dispose()
        self.observer.dispose()
        if errors:
            raise errors[0]
        return [name for name in left if name not in spare and name not in self._unfinished]


class SharedConnection:
    """One checkout of an engine, shared by reads made one after another (the guards
    after a scenario), where each would otherwise check out its own.

    A pool with pre-ping (the run's admin engine) pings every connection it hands out:
    one round trip to a server process that has been idle, ~0.05 ms on an idle machine
    and ~0.8 ms on a loaded one (measured here). One checkout pings once. A connection a
    failure invalidated (the server went away) is let go at the next use and another is
    checked out, and pinged, as the next checkout would have been.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn: Connection | None = None

    def __call__(self) -> Connection:
        """The shared connection: checked out at the first use, or again after it broke.
        Raises SQLAlchemy's ``OperationalError`` when the server cannot be reached."""
        if self._conn is not None and self._conn.invalidated:
            self.close()
        if self._conn is None:
            self._conn = self.engine.connect()
        return self._conn

    def close(self) -> None:
        """Give the connection back to the pool (a broken one is discarded there)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class Workspace:
    """A scenario's schema, connection identity and engines."""

    def __init__(self, run: Run, number: int) -> None:
        self.run = run
        self.number = number
        self.schema = f"{SCHEMA_PREFIX}{run.id}_{number}"
        self.application_name = application_name(run.id, number, "(not started)")
        self._engines: list[tuple[str, Engine]] = []
        #: Server connections the scenario's engines hold open now, and at most so far.
        self.connections = 0
        self.peak_connections = 0
        #: Rows the scenario's statements inserted, updated or deleted (their row counts).
        self.rows_changed = 0
        #: How the scenario's transactions ended, as the server answered (see _count):
        #: committed; rolled back (a ROLLBACK, or a COMMIT the server refused or answered
        #: with ROLLBACK); COMMITs whose reply never came (the outcome is not known).
        self.commits = 0
        self.rollbacks = 0
        self.commits_unknown = 0
        #: The operations the application was told were applied (a receipt), by client
        #: reference -> what it was: the durability guard finds each in the ledger after.
        self.acknowledged: dict[str, str] = {}
        self._counting = threading.Lock()  # sessions' threads count too

    def acknowledge(self, action: str, result: object) -> None:
        """Note what the application was told: an operation whose ``result`` is a ledger
        receipt (applied now or before) is in the ledger, the durability guard checks."""
        reference = getattr(result, "reference", None)
        if isinstance(reference, str) and hasattr(result, "already_applied"):
            self.acknowledged[reference] = action

    def acknowledging(self, action: str, operation: Callable[[], T]) -> Callable[[], T]:
        """``operation`` (run by a concurrent session, on its own thread), noting what it
        returned as told to the application (:meth:`acknowledge`) once it succeeds."""

        def run() -> T:
            result = operation()
            self.acknowledge(action, result)
            return result

        return run

    def references(self) -> list[str]:
        """The references of the operations the application was told were applied."""
        return list(self.acknowledged)

    def adopt(self, scenario: str) -> None:
        """Name the workspace for the scenario that uses it (before any connection)."""
        self.application_name = application_name(self.run.id, self.number, scenario)

    def connect_args(self) -> dict[str, Any]:
        """The driver's connection arguments that put a connection in this scenario."""
        return {
            "application_name": self.application_name,
            "options": f"-c search_path={self.schema}",
            "connect_timeout": max(2, round(self.run.server.connect_timeout)),
        }

    def url(self, **overrides: Any) -> URL:
        return self.run.server.endpoint.url(**overrides)

    def engine(
        self, url: URL | None = None, *, label: str = "", follow: bool = True, **kwargs: Any
    ) -> Engine:
        """An engine whose every connection belongs to this scenario; disposed at close.

        ``label`` names it in the leak guard's findings. An engine for the server follows
        it to its address of the moment, unless ``follow`` is False (an application whose
        connection string names fixed addresses, as in front of a replicated cluster)."""
        connect_args = self.connect_args()
        connect_args.update(kwargs.pop("connect_args", {}))
        endpoint = self.run.server.endpoint
        # The user's connection parameters (sslmode, options…) hold here too.
        connect_args = endpoint.connect_args(connect_args)
        engine = sa.create_engine(url or self.url(), connect_args=connect_args, **kwargs)
        if follow and (url is None or (url.host, url.port) == (endpoint.host, endpoint.port)):
            self.run.server.follow(engine)  # an engine for the server follows it on restart
        self._count(engine)
        self._engines.append((label or f"engine #{len(self._engines) + 1}", engine))
        return engine

    def _count(self, engine: Engine) -> None:
        """Keep the scenario's connection, row and transaction figures (for its metrics).

        Transactions are counted by what the server did, read from libpq's transaction
        status (``PQtransactionStatus``, both drivers' ``connection.info.transaction_status``):

        * a COMMIT of a transaction in which a statement failed is answered with ROLLBACK,
          and no error (PostgreSQL's COMMIT: an aborted transaction is rolled back);
        * a COMMIT the server answers with an error (``serialization_failure``, a deferred
          constraint) rolled the transaction back: the connection is still good after it;
        * a COMMIT whose reply never came (the connection was lost: libpq's status is
          UNKNOWN, "the connection is bad") may or may not have committed: it is counted
          in ``commits_unknown``, neither a commit nor a rollback;
        * a COMMIT or ROLLBACK with no transaction open sends nothing: not counted.

        SQLAlchemy 2.0's ``commit`` event fires *before* the DBAPI commit, whatever its
        outcome (``Connection._commit_impl``), and nothing fires after a successful one (a
        failure goes to ``handle_error``), so commits are counted around the dialect's
        ``do_commit``, which that method calls. ROLLBACK cannot fail to end the
        transaction, so the ``rollback`` event is enough for rollbacks; SQLAlchemy's own
        ROLLBACK after its first connect (``create_engine``) is not the scenario's.
        """

        def opened(*_: Any) -> None:
            with self._counting:
                self.connections += 1
                self.peak_connections = max(self.peak_connections, self.connections)

        def closed(*_: Any) -> None:
            with self._counting:
                self.connections -= 1

        def executed(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            verb = statement.lstrip()[:6].upper()
            if verb in ("INSERT", "UPDATE", "DELETE") and cursor.rowcount > 0:
                with self._counting:
                    self.rows_changed += cursor.rowcount

        do_commit = engine.dialect.do_commit

        def commit(dbapi_connection: Any) -> None:
            before = _transaction_status(dbapi_connection)
            try:
                do_commit(dbapi_connection)
            except BaseException:
                lost = _transaction_status(dbapi_connection) == drivers.TRANSACTION_UNKNOWN
                self._ended(before, refused=True, lost=lost)
                raise
            self._ended(before, refused=False, lost=False)

        def rolled_back(conn: Connection) -> None:
            if conn.closed or conn.invalidated:
                return  # SQLAlchemy sends nothing; the transaction went with its connection
            if _transaction_status(conn.connection) in (
                drivers.TRANSACTION_INTRANS, drivers.TRANSACTION_INERROR,
            ):  # fmt: skip
                with self._counting:
                    self.rollbacks += 1

        sa.event.listen(engine, "connect", opened)
        sa.event.listen(engine, "close", closed)
        sa.event.listen(engine, "close_detached", closed)

        sa.event.listen(engine, "after_cursor_execute", executed)
        engine.dialect.do_commit = commit  # type: ignore[method-assign]  # this engine's own
        sa.event.listen(engine, "rollback", rolled_back)

    def _ended(self, before: int | None, *, refused: bool, lost: bool) -> None:
        """Count one COMMIT by how the server ended the transaction (see _count)."""
        with self._counting:
            if before == drivers.TRANSACTION_INERROR:
                self.rollbacks += 1  # an aborted transaction never commits, reply or not
            elif before != drivers.TRANSACTION_INTRANS:
                pass  # no transaction open: nothing was sent
            elif lost:
                self.commits_unknown += 1
            elif refused:
                self.rollbacks += 1
            else:
                self.commits += 1

    def checked_out(self) -> dict[str, int]:
        """Connections each of the scenario's pools has handed out and not had back."""
        return {
            label: engine.pool.checkedout()
            for label, engine in self._engines
            if hasattr(engine.pool, "checkedout")
        }

    def observe(self) -> Connection:
        """A connection of the run's observer, in a transaction whose search_path is this
        schema. Use it in a ``with`` block; it is returned to the observer's pool after."""
        conn = self.run.observer.connect()
        conn.begin()
        conn.execute(sa.text(f"SET LOCAL search_path TO {self.schema}"))
        return conn

    def open_backends(self, conn: Connection | None = None) -> list[int]:
        """Server process ids of connections that still carry this scenario's name
        (``failspec.harness.activity.backends_named``).

        ``conn``: a connection of the run's admin engine to ask on (default: one checked
        out for this call).
        """
        with contextlib.nullcontext(conn) if conn is not None else self.run.admin.connect() as c:
            return [backend.pid for backend in backends_named(c, self.application_name)]

    def terminate(self, pid: int) -> bool:
        """End one server connection, as an administrator would (pg_terminate_backend),
        and wait until its server process has gone."""
        with self.run.admin.connect() as conn:
            return bool(
                conn.execute(
                    sa.text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid}
                ).scalar_one()
            )

    def dispose_engines(self) -> None:
        """Close every idle connection of the scenario's pools, and let go of the engines.

        Checked-out connections stay open, as with ``Engine.dispose``. Only the pools are
        disposed: ``Engine.dispose`` would also build each engine a new pool (~0.14 ms
        each) that nothing uses, since the engines are let go of here."""
        errors: list[BaseException] = []
        for _, engine in self._engines:
            try:
                engine.pool.dispose()
            except Exception as error:  # keep cleaning; report the first problem at the end
                errors.append(error)
        self._engines.clear()
        if errors:
            raise errors[0]

    def end_stragglers(self) -> None:
        """End every server connection that still carries this scenario's name (what a
        leak or a broken step left open), rolling back whatever they had not committed."""
        for pid in self.open_backends():
            self.terminate(pid)

    def close(self) -> None:
        """Dispose engines, end stragglers, drop the schema: runs even after failures."""
        try:
            self.dispose_engines()
        finally:
            self.end_stragglers()
            _drop_schema(self.run.admin, self.schema)


def _transaction_status(connection: Any) -> int | None:
    """libpq's transaction status of a DBAPI connection (or of the pool's proxy for one),
    None once SQLAlchemy has let go of it."""
    dbapi_connection = getattr(connection, "dbapi_connection", connection)
    if dbapi_connection is None:
        return None
    return drivers.transaction_status(dbapi_connection)


def application_name(run_id: str, number: int, scenario: str) -> str:
    """``fs:<run>:<n> <scenario>``, printable ASCII, within PostgreSQL's 63 bytes."""
    text = re.sub(r"[^\x20-\x7e]", "?", f"fs:{run_id}:{number} {scenario}")
    return text[:63]


def _drop_schema(admin: Engine, schema: str) -> None:
    with admin.connect() as conn:
        # A leaked lock must not hang cleanup: fail visibly instead.
        conn.execute(sa.text("SET lock_timeout = '5s'"))
        conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))


def schemas_of_dead_runs(server: Server) -> list[str]:
    """Scenario schemas on ``server`` that runs of this suite no longer connected left there.

    A schema counts when its name has the form a run gives its schemas (``fs_<run id>_<n>``,
    the id 8 hex digits), the role the suite connects as owns it, and no session on the
    server carries that run's id (a run names its connections ``failspec:<id>:…`` and
    ``fs:<id>:…``, and holds its pools' connections open while it runs; a role sees its
    own sessions in ``pg_stat_activity``). Such a schema was most likely left by a run
    that was killed, but a name and an owner prove nothing: it is only ever named, never
    dropped. Raises SQLAlchemy's ``DBAPIError`` when the server cannot be read.
    """
    engine = server.engine(poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return list(
                conn.execute(
                    sa.text(
                        "SELECT n.nspname FROM pg_namespace n "
                        "WHERE n.nspname ~ :form AND pg_get_userbyid(n.nspowner) = current_user "
                        "AND NOT EXISTS (SELECT FROM pg_stat_activity a "
                        "  WHERE split_part(a.application_name, ':', 1) IN ('failspec', 'fs') "
                        "  AND split_part(a.application_name, ':', 2) "
                        "      = split_part(n.nspname, '_', 2)) "
                        "ORDER BY split_part(n.nspname, '_', 2), "
                        "  split_part(n.nspname, '_', 3)::int"
                    ),
                    {"form": f"^{SCHEMA_PREFIX}[0-9a-f]{{8}}_[0-9]+$"},
                ).scalars()
            )
    finally:
        engine.dispose()


def dead_runs_notice(server: Server) -> str:
    """A line for the run's banner naming :func:`schemas_of_dead_runs` and the statement
    that drops them; empty when there are none, or when the server cannot be read (the
    run's own setup then says why). A server the run started itself (embedded, docker:
    ``controllable``) holds no other run's schemas, and is not asked."""
    if server.controllable:
        return ""
    try:
        left = schemas_of_dead_runs(server)
    except sa.exc.DBAPIError:
        return ""
    if not left:
        return ""
    names = ", ".join(left)
    return (
        f"\nfailspec: {len(left)} schema(s) left by runs of this suite that are no longer "
        f"connected stay on this server: {names}. The suite drops only its own run's; "
        f"if no run is using them, drop them with: DROP SCHEMA {names} CASCADE;"
    )
