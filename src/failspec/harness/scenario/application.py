"""The application's side of the database: its pool, its ledger and its sessions.

The pool is built on first use, so a scenario's Given-steps can first say what kind
of pool the application uses. Setup work (installing and seeding the ledger) goes
through the auditor's connection, so the application's pool starts each scenario empty.

The settings the engine is built from (:data:`FROZEN_AFTER_USE`: where it connects, the
connect timeout, the libpq connection arguments, the server settings, the pool's options,
the request deadline) are gathered until then and frozen from then on: a change after
the first use would be silently ignored by the engine, so it raises
:class:`SettingsFrozen` instead, naming the setting.
"""

from __future__ import annotations

import contextlib
import functools
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.orm import Session

from failspec import drivers
from failspec.conditions import NamedFailure, condition_of, first_line
from failspec.harness.outcomes import Outcome, capture
from failspec.harness.scenario.sessions import DbSession, Sessions
from failspec.harness.scenario.workspace import Workspace
from failspec.harness.waiting import until
from failspec.ledger import Ledger, RetryPolicy, deadline, is_transient, port

#: Pool options that size one pool; other instances of the application size their own.
POOL_SIZING = ("pool_size", "max_overflow", "pool_timeout")
#: The application's attributes its engine is built from, frozen once it is: their names
#: in a message.
FROZEN_AFTER_USE = {
    "url": "address (url)",
    "connect_timeout": "connect timeout",
    "connect_args": "connection arguments",
    "server_settings": "server settings",
    "pool_options": "pool options",
}


class SettingsFrozen(RuntimeError):
    """A setting of the application changed after its engine was built from it (the
    engine would never see the change)."""

    def __init__(self, setting: str) -> None:
        super().__init__(
            f"the application's {setting} is chosen before its first use: its engine was "
            f"already built, and would ignore the change (state it before the first step "
            f"that uses the application)"
        )
        self.setting = setting


class FrozenAfterUse(dict[str, Any]):
    """A dict of settings that refuses every change (:class:`SettingsFrozen`)."""

    def __init__(self, setting: str, items: dict[str, Any]) -> None:
        super().__init__(items)
        self.setting = setting

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        first = args[0] if args else {}
        keys = [first] if isinstance(first, str) else [*dict(first or {}), *kwargs]
        raise SettingsFrozen(f"{self.setting} ({', '.join(keys)})" if keys else self.setting)

    __setitem__ = __delitem__ = __ior__ = _refuse
    update = pop = popitem = clear = setdefault = _refuse


class ApplicationError(NamedFailure):
    """The application's own code gave up in the middle of its work (not the database)."""

    condition = "application_error"


@dataclass(frozen=True)
class SettingsInUse:
    """What the application's engine was built with, as it was built (read-only): the
    settings that bound its waits."""

    #: The libpq connection arguments it adds (``tcp_user_timeout``, ``keepalives*``…).
    connect_args: Mapping[str, Any]
    #: Its connect timeout (s); None keeps the harness's default.
    connect_timeout: int | None
    #: The server settings its connections carry (``statement_timeout``…), as given.
    server_settings: Mapping[str, str]
    #: How long a checkout waits for a pooled connection (s): a queue pool's
    #: ``pool_timeout``; None for a pool that makes nobody wait.
    pool_timeout: float | None
    #: Its request deadline (s), or None.
    request_deadline: float | None


class Application:
    #: The name of the application's own session, the one steps mean by "the application".
    NAME = "the application"

    def __init__(
        self,
        workspace: Workspace,
        data_layer: port.Factory = port.reference,
        data_layer_name: str = port.REFERENCE,
    ) -> None:
        self.workspace = workspace
        #: What builds the application's data layer, and its name as ``-D data_layer`` gives
        #: it (failspec.ledger.port).
        self.data_layer = data_layer
        self.data_layer_name = data_layer_name
        self._layer: port.DataLayer | None = None
        #: Each call into the data layer's operations during the scenario, in order, by
        #: name (``pay``, ``transfer``, ``record_all``, ``import_payments``,
        #: ``unit_of_work``), from every instance the application builds (its sessions'
        #: too): whether the scenario went through the data layer at all
        #: (run.json ``uses_data_layer``).
        self.layer_calls: list[str] = []
        #: The operation of the data layer running in this thread (for the port's messages).
        self._running = threading.local()
        self._capabilities: frozenset[str] | None = None
        # SQLAlchemy's defaults, except a pool that never grows past its size.
        self.pool_options: dict[str, Any] = {
            "pool_size": 5,
            "max_overflow": 0,
            "pool_pre_ping": False,
        }
        self._engine: Engine | None = None
        #: Where the application connects: the server, or a fault proxy in front of it.
        self.url: URL | None = None
        #: Whether its connections follow the server to a new address (after a restart);
        #: not in front of a cluster, where the connection string says where to go.
        self.follows_server = True
        #: More psycopg2 connection arguments (e.g. ``tcp_user_timeout``).
        self.connect_args: dict[str, Any] = {}
        #: Server parameters for the application's connections (e.g. statement_timeout).
        self.server_settings: dict[str, str] = {}
        self.sessions = Sessions(lambda: self.engine)
        #: The server process of the connection the application used last.
        self.last_backend_pid: int | None = None
        #: The server process of the connection the server ended last.
        self.ended_pid: int | None = None
        #: The server process of the connection left idle in the pool, and since when
        #: (time.monotonic()).
        self.idle_pid: int | None = None
        self.idle_since = 0.0
        #: The connect timeout (s) the application sets; None keeps the harness's default.
        self.connect_timeout: int | None = None
        #: The ledger's retry policy. Its waits are recorded, not slept: the failures a
        #: scenario injects are deterministic, and the figures are what is specified.
        self.waits: list[float] = []
        self.retry = RetryPolicy(sleep=self._wait, rng=random.Random(20261125))
        #: What happens (once) while the ledger waits to retry, e.g. the server restarts.
        self.during_next_wait: Callable[[], None] | None = None
        #: What happens at the next COMMIT the application sends, just before it goes out
        #: (SQLAlchemy's "commit" engine event), each once, in order; and at the next
        #: transfer's point between its legs (the ledger's one hook, Ledger.between_legs).
        self.at_next_commit: list[Callable[[Connection], None]] = []
        self.between_next_legs: list[Callable[[Connection], None]] = []
        #: Each failure the ledger's retry judged, in order: what the attempts met.
        self.judged: list[BaseException] = []
        #: Each error that left a block of ``Resources.connection()`` whose connection was
        #: broken, so thrown away (a data layer on the driver alone).
        self.thrown_away: list[BaseException] = []
        self.retry.transient = self._judge
        self._orm: Session | None = None
        self._held: list[Connection] = []
        #: Connections the application forgot (see leak_a_transaction); never closed here.
        self._forgotten: list[Connection] = []
        self._unit_session: Session | None = None
        self._units = contextlib.ExitStack()
        self._request_deadline: float | None = None
        self._deadline_installed = False
        #: What the pool did with its DBAPI connections, in order: ("handed out", conn,
        #: None) at each checkout, ("given back", conn, None) when it took one back to
        #: reuse (its reset on return), ("discarded", conn, error) when it invalidated one.
        self.pool_log: list[tuple[str, Any, BaseException | None]] = []

    @property
    def request_deadline(self) -> float | None:
        """How long (s) the application waits for the database in one request (None, the
        default: unbounded): each attempt of a ledger operation, from taking a connection
        (the pool's test of it included) to COMMIT's reply, and each read through the pool.
        Past it the request fails with ``deadline_exceeded`` and its connection is closed
        (``failspec.ledger.deadline``). Set before the application's first use."""
        return self._request_deadline

    @request_deadline.setter
    def request_deadline(self, seconds: float | None) -> None:
        if self._engine is not None:
            raise SettingsFrozen("request deadline")
        if seconds is not None and seconds <= 0:
            raise ValueError(f"a request deadline is a positive number of seconds, not {seconds}")
        self._request_deadline = seconds

    def __setattr__(self, name: str, value: Any) -> None:
        if name in FROZEN_AFTER_USE and getattr(self, "_engine", None) is not None:
            raise SettingsFrozen(FROZEN_AFTER_USE[name])
        super().__setattr__(name, value)

    def _judge(self, error: BaseException) -> bool:
        """The retry's judgement (``is_transient``), recording the failure it judged."""
        if not self.judged or self.judged[-1] is not error:  # judged twice when it gives up
            self.judged.append(error)
        self._check_invalidated(error)
        return is_transient(error)

    def _check_invalidated(self, error: BaseException) -> None:
        """The port's rule on a connection thrown away (``port.CONNECTION_INVALIDATED``),
        checked where it matters, at the retry's judgement: a driver's error that left a
        ``Resources.connection()`` block whose connection was broken must say so. (The
        layer's own errors, e.g. ``NotReplicated``, name their outcome themselves; a layer
        on SQLAlchemy's engine has SQLAlchemy set the flag.) Raises ``port.PortViolation``
        naming the rule otherwise."""
        if getattr(error, "connection_invalidated", False):
            return
        if not isinstance(error, drivers.driver_errors()):
            return
        if any(error is thrown for thrown in list(self.thrown_away)):
            name = condition_of(error) or type(error).__name__
            raise port.PortViolation(
                port.connection_invalidated_rule(self.running_operation),
                f"{name}: {first_line(error)!r} came with its connection thrown away, "
                "and connection_invalidated is not set on it",
            )

    def _wait(self, delay: float) -> None:
        self.waits.append(delay)
        if self.during_next_wait is not None:
            happening, self.during_next_wait = self.during_next_wait, None
            happening()

    def use_pool(self, **options: Any) -> None:
        if self._engine is not None:
            raise SettingsFrozen(f"pool ({', '.join(options)})")
        self.pool_options.update(options)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            connect_args = dict(self.connect_args)
            if self.connect_timeout is not None:
                connect_args["connect_timeout"] = self.connect_timeout
            if self.server_settings:
                settings = " ".join(f"-c {k}={v}" for k, v in self.server_settings.items())
                connect_args["options"] = f"{self.workspace.connect_args()['options']} {settings}"
            self._engine = self.workspace.engine(
                self.url, label="the application", follow=self.follows_server,
                connect_args=connect_args, **self.pool_options,
            )  # fmt: skip
            if self._request_deadline is not None:
                self._bound_by_deadline(self._engine)
            for name in ("connect_args", "server_settings", "pool_options"):
                frozen = FrozenAfterUse(FROZEN_AFTER_USE[name], getattr(self, name))
                object.__setattr__(self, name, frozen)
            sa.event.listen(self._engine, "commit", self._before_commit)
            log = self.pool_log.append
            sa.event.listen(self._engine, "checkout", lambda c, *_: log(("handed out", c, None)))
            sa.event.listen(self._engine, "reset", lambda c, *_: log(("given back", c, None)))
            sa.event.listen(self._engine, "invalidate", lambda c, _, e: log(("discarded", c, e)))
        return self._engine

    @property
    def settings_in_use(self) -> SettingsInUse:
        """The settings the application's engine is built with (building it, if it is
        not yet: they are frozen from then on)."""
        pool = self.engine.pool
        return SettingsInUse(
            connect_args=MappingProxyType(dict(self.connect_args)),
            connect_timeout=self.connect_timeout,
            server_settings=MappingProxyType(dict(self.server_settings)),
            pool_timeout=pool.timeout() if isinstance(pool, sa.pool.QueuePool) else None,
            request_deadline=self._request_deadline,
        )

    def _bound_by_deadline(self, engine: Engine) -> None:
        """Make the application's connections honour its request deadline, with either
        driver (``deadline.bound``); registers psycopg2's wait callback until :meth:`close`."""
        if engine.dialect.driver == "psycopg2" and not self._deadline_installed:
            deadline.install()  # before the pool opens any connection
            self._deadline_installed = True
        deadline.bound(engine)

    @property
    def session(self) -> DbSession:
        return self.sessions[self.NAME]

    def end_connection(self) -> int:
        """Have the server end the connection the application holds or used last, and wait
        until its server process is gone (as after an administrator's pg_terminate_backend).
        """
        pid = self._current_backend_pid()
        assert pid is not None, "the application has not used a connection yet"
        assert self.workspace.terminate(pid), f"server process {pid} was not there to end"
        self.ended_pid = pid
        return pid

    def _current_backend_pid(self) -> int | None:
        """The server process of the connection the application is working on now."""
        for orm in (self._unit_session, self._orm):
            if orm is not None and orm.in_transaction():
                return orm.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar()
        return self.session.backend_pid if self.session.is_open() else self.last_backend_pid

    @property
    def ledger(self) -> port.DataLayer:
        """The data layer on the application's own pool, with its retry policy, its request
        deadline and the faults armed for its next operation (built once)."""
        if self._layer is None:
            layer = self.ledger_for(
                self.engine, self.retry,
                between_legs=self._between_legs, before_commit=self._before_commit,
            )  # fmt: skip
            if isinstance(layer, port.HonoursDeadline):
                layer.deadline = self._request_deadline
            self._layer = layer
        return self._layer

    def ledger_for(
        self,
        engine: Engine,
        retry: RetryPolicy,
        *,
        lock_in_order: bool | None = None,
        between_legs: Callable[[Any], None] | None = None,
        before_commit: Callable[[Any], None] | None = None,
    ) -> port.DataLayer:
        """The data layer as this application configures it, on ``engine``: its own pool,
        or that of another instance of the application (a concurrent session T1, T2 …).
        ``lock_in_order``: only where a scenario says how transfers lock (None: both
        accounts in name order, the port's default); ``between_legs``, ``before_commit``:
        the points where a scenario holds the operation or inflicts a fault (for a layer
        committing through ``engine``, its ``commit`` event is the point before COMMIT,
        hooked where the engine is made). Each call of its operations is counted
        (:attr:`layer_calls`)."""
        resources = port.Resources(
            engine=engine, connection=port.pooled_connection(engine, self.thrown_away.append),
            driver=drivers.current().name, retry=retry, lock_in_order=lock_in_order,
        )  # fmt: skip
        layer = self.data_layer(resources)
        self._count_calls(layer)
        if isinstance(layer, port.PausesBetweenLegs):
            layer.between_legs = between_legs
        if isinstance(layer, port.PausesBeforeCommit) and not isinstance(
            layer, port.CommitsThroughEngine
        ):
            layer.before_commit = before_commit
        return layer

    def _count_calls(self, layer: object) -> None:
        """Record each call of ``layer``'s operations (``port.OPERATIONS``) in
        :attr:`layer_calls`, and which one runs in the calling thread: each operation is
        wrapped on the instance (a layer whose instance takes no new attribute, with
        ``__slots__``, is not counted: its scenarios read as not calling it)."""
        for name in port.OPERATIONS:
            method = getattr(layer, name, None)
            if not callable(method):
                continue

            def counted(*args: Any, _name: str = name, _method: Any = method, **kwargs: Any) -> Any:
                self.layer_calls.append(_name)
                outer = getattr(self._running, "operation", None)
                self._running.operation = _name
                try:
                    return _method(*args, **kwargs)
                finally:
                    self._running.operation = outer

            try:
                setattr(layer, name, functools.wraps(method)(counted))
            except (AttributeError, TypeError):
                return

    @property
    def running_operation(self) -> str | None:
        """The data layer's operation running in the calling thread (None: none)."""
        return getattr(self._running, "operation", None)

    def lacks(self, capability: str) -> str | None:
        """Why the data layer cannot take part in a scenario that needs ``capability`` (a
        key of ``port.CAPABILITIES``), or None when it offers it. Learnt from a layer built
        on resources it never uses (an engine that never connects)."""
        if self._capabilities is None:
            self._capabilities = port.probe(self.data_layer, drivers.current().name)
        if capability in self._capabilities:
            return None
        return f"the data layer {self.data_layer_name} offers no {capability}"

    @property
    def statements(self) -> Ledger:
        """The reference ledger's statements (``record``, ``move`` …), for a transaction
        the harness holds (``session.run``): they state PostgreSQL's rules on the ledger's
        schema, whatever data layer runs (failspec.ledger.port, "What the port covers")."""
        return Ledger(self.engine)

    def instance_options(self) -> dict[str, Any]:
        """The engine options every instance of the application uses, its pool's sizing
        aside (each concurrent session has a pool of its own, of one connection): the
        isolation level, pre-ping, recycle age, reset on return, if set."""
        return {k: v for k, v in self.pool_options.items() if k not in POOL_SIZING}

    # -- faults inside the ledger's operations ------------------------------------------

    def before_next_commit(self, fault: Callable[[], None]) -> None:
        """Inflict ``fault`` once, when the application's next COMMIT is about to be sent
        (the work is done; SQLAlchemy's "commit" engine event)."""
        self.at_next_commit.append(lambda conn: fault())

    def _before_commit(self, conn: Connection) -> None:
        if self.at_next_commit:
            self.at_next_commit.pop(0)(conn)

    def _between_legs(self, conn: Connection) -> None:
        if self.between_next_legs:
            self.between_next_legs.pop(0)(conn)

    def lose_connection_between_transfer_legs(self) -> None:
        """The next transfer's connection is ended by the server after its debit leg."""

        def end_it(conn: Any) -> None:
            pid = backend_pid_of(conn)
            assert self.workspace.terminate(pid)
            self.ended_pid = pid

        self.between_next_legs.append(end_it)

    # -- the ORM ---------------------------------------------------------------------

    @property
    def orm(self) -> Session:
        """The application's ORM session (one per scenario)."""
        if self._orm is None:
            self._orm = Session(self.engine)
        return self._orm

    def start_unit_of_work(self) -> Session:
        """Open the ledger's unit of work; it ends at :meth:`finish_unit_of_work`."""
        layer = self.ledger
        assert isinstance(layer, port.OrmUnitOfWork), self.lacks(port.UNIT_OF_WORK)
        self._unit_session = self._units.enter_context(layer.unit_of_work())
        return self._unit_session

    @property
    def unit(self) -> Session:
        """The open unit of work's ORM session (see :meth:`start_unit_of_work`)."""
        assert self._unit_session is not None, "no unit of work was started"
        return self._unit_session

    def finish_unit_of_work(self) -> Outcome:
        return capture("commit the unit of work", self._units.close)

    def end_unit_of_work(self, action: str, work: Callable[[Session], None]) -> Outcome:
        """Run the rest of the application's ``work`` inside the open unit of work and end
        it, as the code inside its ``with`` block would: whatever ``work`` raises goes
        through the unit of work (which rolls back and re-raises it), else it commits."""

        def run() -> None:
            try:
                work(self.unit)
            except BaseException as error:
                if not self._units.__exit__(type(error), error, error.__traceback__):
                    raise
                return
            self._units.close()

        return capture(action, run)

    def abandon_unit_of_work(self) -> Outcome:
        """The application's own code raises :class:`ApplicationError` inside the open unit
        of work, after the work it has written (as a failed business check would)."""

        def fail(unit: Session) -> None:
            raise ApplicationError("the application gave up: a check of its own failed")

        return self.end_unit_of_work("the application's code fails in the unit of work", fail)

    def show(self, setting: str) -> str:
        """The value of the server setting ``setting`` on a connection of the
        application's pool, as the server shows it (``current_setting``: "200ms")."""
        with self.engine.connect() as conn:
            value = conn.execute(sa.text("SELECT current_setting(:s)"), {"s": setting}).scalar()
            conn.rollback()
        return str(value)

    def read_through_pool(self) -> Outcome:
        """Check a connection out of the pool, read the ledger, and check it back in."""

        def read() -> list[Any]:
            with deadline.within(self._request_deadline), self.engine.connect() as conn:
                self.last_backend_pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
                return Ledger.payments(conn)

        outcome = capture("read the ledger through the pool", read)
        outcome.notes["backend_pid"] = self.last_backend_pid
        return outcome

    # -- the pool's limits ------------------------------------------------------------

    def hold_connections(self, count: int) -> None:
        """Check ``count`` connections out of the pool and keep them (until closed)."""
        for _ in range(count):
            self._held.append(self.engine.connect())

    def return_one(self) -> None:
        self._held.pop().close()

    def check_out_one(self) -> Outcome:
        """Check one more connection out of the pool, and give it straight back."""

        def check_out() -> None:
            self.engine.connect().close()

        return capture("check out one more connection", check_out)

    def leak_a_transaction(self) -> None:
        """A data layer's bug, on purpose: a connection checked out, a transaction begun on
        it, and then forgotten (the harness does not close it; the leak guard must say so).
        """
        conn = self.engine.connect()
        conn.execute(sa.text("SELECT count(*) FROM accounts"))
        self._forgotten.append(conn)

    def run_report(self, server_seconds: float) -> Outcome:
        """A report that keeps the server busy for ``server_seconds`` (pg_sleep stands in
        for a heavy query), read through the pool."""

        def report() -> list[Any]:
            with self.engine.connect() as conn:
                return list(
                    conn.execute(
                        sa.text("SELECT count(*) FROM transactions, pg_sleep(:s)"),
                        {"s": server_seconds},
                    )
                )

        return capture(f"run a report the server needs {server_seconds} s for", report)

    def leave_transaction_until_ended(self, timeout: float) -> None:
        """Do nothing in the open transaction until the server has ended its session."""
        pid = self.session.backend_pid
        assert pid is not None, "the application holds no connection"
        until(
            lambda: pid not in self.workspace.open_backends(),
            timeout=timeout, what=f"the server ending session {pid}",
        )  # fmt: skip

    def idle_connection_in_pool(self) -> int:
        """Use one pooled connection and return it: the pool now holds it idle."""
        outcome = self.read_through_pool()
        if outcome.error is not None:
            raise outcome.error
        assert self.last_backend_pid is not None
        self.idle_pid = self.last_backend_pid
        self.idle_since = time.monotonic()
        return self.last_backend_pid

    def connect_once(self, **url_overrides: Any) -> Outcome:
        """Open and close one new connection, e.g. with a wrong password or to another port."""
        connect_args = {}
        if self.connect_timeout is not None:
            connect_args["connect_timeout"] = self.connect_timeout
        engine = self.workspace.engine(
            self.workspace.url(**url_overrides), poolclass=sa.pool.NullPool,
            connect_args=connect_args,
        )  # fmt: skip

        def connect() -> None:
            with engine.connect():
                pass

        return capture("connect", connect)

    def clean_up_forgotten(self) -> None:
        """After the leak guard: drop forgotten connections without using them again."""
        for conn in self._forgotten:
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                conn.invalidate()
        self._forgotten.clear()

    def close(self) -> None:
        for conn in self._held:
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                conn.close()
        self._held.clear()
        with contextlib.suppress(Exception):
            self._units.close()
        if self._orm is not None:
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                self._orm.close()
        self.sessions.close()
        if self._deadline_installed:
            deadline.uninstall()
            self._deadline_installed = False
        self.pool_log.clear()


def backend_pid_of(conn: Any) -> int:
    """The server process of the connection a data layer hands to a point inside its
    operation (``between_legs``, ``before_commit``): a SQLAlchemy ``Connection`` or the
    driver's own connection."""
    if isinstance(conn, Connection):
        return int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
    return drivers.backend_pid(conn)


def skip_without(context: Any, capability: str) -> bool:
    """Skip the scenario, giving the reason, when the application's data layer lacks
    ``capability`` (``port.CAPABILITIES``); return whether it did. A step that needs a
    capability returns at once when this returns True."""
    reason = context.app.lacks(capability)
    if reason is not None:
        context.scenario.skip(reason)
        # What the run's record reads: the scenario is NOT CHECKED for lack of it.
        context.scenario.failspec_missing_capability = port.NAMES[capability]
    return reason is not None


class OtherClients:
    """Connections of other clients, opened until the server refuses one more: they hold
    every connection slot the server has left. Released on :meth:`release` (or cleanup)."""

    #: More than any server the suite starts allows (max_connections=100).
    LIMIT = 500

    def __init__(self, workspace: Workspace) -> None:
        self.engine = workspace.engine(label="other clients", poolclass=sa.pool.NullPool)
        self.held: list[Connection] = []
        self.refusal: Outcome | None = None

    def take_every_slot(self) -> int:
        for _ in range(self.LIMIT):
            outcome = capture("another client connects", self.engine.connect)
            if outcome.error is not None:
                self.refusal = outcome
                return len(self.held)
            self.held.append(outcome.value)
        raise AssertionError(f"the server accepted {self.LIMIT} more connections")

    def release(self) -> None:
        for conn in self.held:
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                conn.close()
        self.held.clear()
