"""The data-layer port: what the specification needs from a team's data layer.

Point the specification at your own data layer with ``-D data_layer=package.module:factory``
(or ``FAILSPEC_DATA_LAYER``). ``factory`` is called with :class:`Resources` and returns an
object with the operations of :class:`DataLayer`. Without the setting the specification
runs on this project's own ledger (:func:`reference`, ``failspec.ledger.Ledger``).

**What the port covers.** The operations an application calls (pay, transfer, record a
batch, import) are the layer's. Everything else is the harness's, and is the same whatever
layer runs:

* *The schema.* The layer keeps its committed state in the tables of
  ``failspec.ledger.schema`` (``accounts``, ``transactions``, with their named
  constraints), which the harness creates in a schema of its own for each scenario
  (every connection's ``search_path``) and seeds. The guards (fingerprint, money
  conservation, durability) read those tables with their own SQL, never through the layer.
* *Statements in a transaction the harness holds* (the scenarios of rollback, savepoints,
  rules of the ledger broken one statement at a time, locks and claims) run the reference
  ledger's statements (``Ledger.record``, ``Ledger.move`` …): they specify what PostgreSQL
  does with the schema's rules, not what a layer does.
* *Faults* come from the server (a trigger on ``transactions`` raising
  ``serialization_failure`` …, or ending the connection:
  ``failspec.harness.faults.server``), the network (a proxy in front of the server) or the
  harness's control of the server. A fault timed to a point inside an operation needs
  that point from the layer: the optional capabilities below.

**Receipts and errors (what every operation tells its caller).**

* An operation that applied its work, or found it already applied by its client reference,
  returns a :class:`~failspec.ledger.ledger.Receipt`: ``reference`` (the client's),
  ``transaction_id`` (the ``transactions.id`` of the operation's row), ``already_applied``
  (True: found, not applied again), ``attempts`` (how many attempts the layer made, 1 or
  more).
* **At most once.** A client reference names one operation. A repeat of the same
  operation (same kind, account(s) and amount) returns the first one's receipt with
  ``already_applied=True`` and changes nothing; it is recognised before any of its work is
  tried (a repeated transfer that emptied its source is not refused for lack of money; a
  repeat does not wait for an account another session holds). A reference that names a
  different operation fails with :class:`~failspec.ledger.errors.ReferenceConflict`
  (``reference_conflict``), nothing applied. Of two requests with the same reference at
  the same time the second waits for the first (the ``transactions_client_ref_key``
  unique constraint makes it wait) and is then told it was already applied, or refused.
* **Failed** (nothing applied): the error is raised as the driver or SQLAlchemy raised it,
  or as a ``failspec.conditions.NamedFailure``; the specification names it by its
  PostgreSQL condition (``check_violation``, ``foreign_key_violation``, ``deadlock_detected``
  …: ``failspec.conditions.condition_of``). :class:`~failspec.ledger.errors.UnknownAccount`
  (``unknown_account``): a transfer names an account that does not exist.
* **In doubt** (applied or not, unknown): a lost COMMIT reply (``connection_lost``) that a
  retry did not resolve, and :class:`~failspec.ledger.errors.NotReplicated`
  (``transaction_resolution_unknown``: COMMIT returned, but PostgreSQL warned that it
  "committed locally, but might not have been replicated"; never reported as applied, never
  retried). A layer that keeps its references resolves a lost reply by retrying: the retry
  finds the operation by its reference (``already_applied=True``) or applies it.
* **A connection thrown away.** An error after which the layer threw its connection away
  (lost, found broken, closed at the deadline) says so: ``connection_invalidated`` is True
  on it (SQLAlchemy's ``DBAPIError`` attribute; a layer on the driver alone sets it on the
  driver's error). The specification reads it ("it fails because the connection was
  lost"), and the default retry judgement (``is_transient``) retries such a failure —
  but never an outcome in doubt: ``NotReplicated`` (``transaction_resolution_unknown``)
  is not retried even when it carries the flag (set it there too when the connection was
  thrown away, e.g. an administrator ended the session while COMMIT waited for the
  standby).
* An operation that failed after retries raises the last failure, with the number of
  attempts in its attribute ``failspec_attempts``, and, when every failure was transient,
  the note ``gave up after N attempts (all transient failures)``
  (``failspec.conditions.note``; ``RetryPolicy.run`` does both).

**Retries.** ``Resources.retry`` is the application's retry policy: a layer makes at most
``retry.attempts`` attempts, asks ``retry.transient(error)`` whether a failure is worth
another one (the harness records each judgement), and waits ``retry.delay(n)`` seconds
after the n-th failure by calling ``retry.sleep`` (never ``time.sleep``: the harness
records the waits, and times faults such as a server restart to them).
``retry.run(attempt)`` does exactly this. Every attempt is a transaction of its own.

**Optional capabilities.** A scenario that needs one the layer lacks is skipped, and the
skip gives the reason (``failspec: skipped … : the data layer … offers no …``); it never
passes silently: it is NOT CHECKED, counted per capability in the closing line, the
report and run.json, its Rule is "not checked", and the run exits 1 unless
``-D missing_capabilities`` names the capability (:data:`NAMES`) as absent. See
:data:`CAPABILITIES`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session

    from failspec.ledger.ledger import ImportReport, Payment, Receipt, Transfer
    from failspec.ledger.retry import RetryPolicy

#: The reference ledger's factory: ``-D data_layer`` unset means this one.
REFERENCE = "failspec.ledger.port:reference"


@dataclass(frozen=True)
class Resources:
    """What a data layer is built from: one instance of the application (the application
    itself, or a concurrent session T1, T2 … each with a pool of its own).

    A layer does no I/O when it is built: the harness also builds one on resources it never
    uses (:func:`capabilities_of`), to learn which capabilities it offers."""

    #: The instance's SQLAlchemy engine: its pool, connect arguments (server, proxy,
    #: ``search_path``, ``application_name``, timeouts, keepalives, server settings) and the
    #: request deadline where one is set. For layers built on SQLAlchemy.
    engine: Engine
    #: A connection of the run's driver (``psycopg.Connection`` with ``-D driver=psycopg``,
    #: a psycopg2 connection with ``-D driver=psycopg2``), set up exactly as the engine's,
    #: for layers built on the driver alone: ``with resources.connection() as conn:``.
    #: It is taken from the engine's pool (so the harness sees its server process, its
    #: commits and any leak) and given back when the block ends, rolled back if a
    #: transaction was left open; a connection that is broken (closed) is thrown away.
    connection: Callable[[], AbstractContextManager[Any]]
    #: The run's driver: ``psycopg2`` or ``psycopg``.
    driver: str
    #: The application's retry policy (see the module's docstring, "Retries").
    retry: RetryPolicy
    #: How a transfer locks its two accounts, where a scenario says so: True, both in one
    #: global order (by name) before the first leg; False, each as its leg reaches it, the
    #: source first (two transfers in opposite directions can then deadlock). None, where
    #: no scenario says (most of them): **both in name order before the first leg**, the
    #: default every layer must keep (``concurrency.deadlocks.feature``: "A ledger that
    #: locks both accounts of a transfer in one order never deadlocks" runs with None), as
    #: :meth:`DataLayer.transfer` says. A layer that cannot lock its source first when
    #: told (False) lacks :data:`LOCK_ORDER`.
    lock_in_order: bool | None = None


@runtime_checkable
class DataLayer(Protocol):
    """The operations the specification calls. Money is ``decimal.Decimal`` with two places
    (``numeric(12, 2)``); accounts are named by ``accounts.name``; every operation runs in
    transactions of its own, on connections from :class:`Resources`."""

    def pay(self, payment: Payment) -> Receipt:
        """Credit ``payment.amount`` to ``payment.account`` and record it (a ``payment`` row
        of ``transactions`` with ``payment.status``), atomically, at most once per
        ``payment.reference``, retried on transient failures. Returns its receipt; raises
        as the module's docstring says (failed / in doubt / ``reference_conflict``).

        **Connection thrown away** (:data:`CONNECTION_INVALIDATED`): an error after which
        the layer threw its connection away (lost, found broken: the driver's connection
        is closed when the ``with resources.connection()`` block ends) carries
        ``connection_invalidated = True`` — SQLAlchemy sets it on its ``DBAPIError``; a
        layer on the driver alone sets it on the driver's error before the block ends.
        The retry judgement (``retry.transient``) retries such a failure (never an
        outcome in doubt, ``NotReplicated``, flagged or not); the harness
        checks the flag there and fails the scenario with a :class:`PortViolation` naming
        this rule when it is missing. The same holds for every operation below."""
        ...

    def transfer(self, transfer: Transfer) -> Receipt:
        """Debit ``transfer.source``, credit ``transfer.target`` and record it (a ``transfer``
        row: ``account`` the source, ``counterparty`` the target), both legs or neither,
        at most once per reference, retried. A balance may never go negative
        (``check_violation``, ``accounts_balance_not_negative``).

        **Lock order.** Unless :attr:`Resources.lock_in_order` is False, lock both
        accounts' rows in name order before the first leg, so two transfers in opposite
        directions queue instead of deadlocking: ``SELECT … FROM accounts WHERE name IN
        (…) ORDER BY name FOR NO KEY UPDATE``. ``FOR NO KEY UPDATE``, not ``FOR UPDATE``:
        the foreign keys of ``transactions`` check the account with a ``FOR KEY SHARE``
        lock, which ``FOR UPDATE`` blocks and ``FOR NO KEY UPDATE`` does not (PostgreSQL
        documentation, 13.3.2 "Row-Level Locks"), and an ``UPDATE`` of the balance takes
        ``FOR NO KEY UPDATE`` itself; with ``FOR UPDATE`` a payment recording a row for a
        held account would wait for the transfer."""
        ...

    def record_all(self, payments: Iterable[Payment]) -> list[int]:
        """Record a batch of payments and credit each to its account (as :meth:`pay`
        does: a row of ``transactions`` and the balance changed), in one transaction: all
        or none (the first failure is raised as it came, nothing of the batch kept, no
        balance changed). Returns their ``transactions.id`` in order. Not retried, no
        reference check."""
        ...

    def import_payments(self, payments: Iterable[Payment], *, per_row: bool) -> ImportReport:
        """Import payments in one transaction, each recorded and credited to its account
        (as :meth:`pay` does: its row and its balance). ``per_row=False``: all or nothing; the first
        failing row's error is raised with the note ``row N (reference) of the import``
        (``failspec.conditions.note``), N counted from 1. ``per_row=True``: each row under a
        savepoint of its own; the valid rows are committed, and each refused one is listed
        as a :class:`~failspec.ledger.ledger.Rejection`: its reference, its condition
        (``check_violation``…) and the constraint it broke (for NOT NULL, the column)."""
        ...


# -- optional capabilities -------------------------------------------------------------


@runtime_checkable
class PausesBetweenLegs(Protocol):
    """The layer calls ``between_legs(conn)``, when it is not None, between a transfer's
    debit and its credit, on the transfer's connection (a SQLAlchemy ``Connection`` or the
    driver's connection) inside its transaction. The harness pauses a transfer there, or
    has the server end its connection, to show half a transfer is never kept."""

    between_legs: Callable[[Any], None] | None


@runtime_checkable
class PausesBeforeCommit(Protocol):
    """The layer calls ``before_commit(conn)``, when it is not None, just before it sends
    the COMMIT of an operation's transaction (the work done). A layer whose transactions
    commit through ``Resources.engine`` need not: SQLAlchemy's ``commit`` event is the
    same point (:class:`CommitsThroughEngine`)."""

    before_commit: Callable[[Any], None] | None


@runtime_checkable
class CommitsThroughEngine(Protocol):
    """The layer's transactions commit through the SQLAlchemy ``engine`` it holds (the one
    of its :class:`Resources`): the harness reaches the point before COMMIT through the
    engine's ``commit`` event."""

    engine: Engine


@runtime_checkable
class HonoursDeadline(Protocol):
    """``deadline`` (s, or None: unbounded) bounds each attempt of ``pay`` and ``transfer``,
    from taking a connection to COMMIT's reply, also where no client setting would (a
    frozen server, a peer that never answers): past it the attempt fails with
    ``deadline_exceeded`` and its connection is closed; an attempt cut short waiting for
    COMMIT's reply says its outcome is unknown (``failspec.ledger.deadline``, whose
    ``bound(engine)`` the harness applies to ``Resources.engine`` when a deadline is set)."""

    deadline: float | None


@runtime_checkable
class ChoosesLockOrder(Protocol):
    """``lock_in_order`` (see :attr:`Resources.lock_in_order`) is honoured as given."""

    lock_in_order: bool


@runtime_checkable
class OrmUnitOfWork(Protocol):
    """An ORM unit of work: a SQLAlchemy ``Session`` that commits when the block ends well
    and rolls back when it raises, re-raising the original error (a failed rollback noted
    on it, never in its place)."""

    def unit_of_work(self) -> AbstractContextManager[Session]: ...


BETWEEN_LEGS = "point between a transfer's legs (between_legs)"
BEFORE_COMMIT = (
    "point just before an operation's COMMIT (before_commit; or engine, for a layer that "
    "commits through Resources.engine)"
)
DEADLINE = "request deadline (deadline)"
LOCK_ORDER = "choice of how a transfer locks its accounts (lock_in_order)"
UNIT_OF_WORK = "ORM unit of work (unit_of_work)"
#: Each capability a scenario may need, and how a layer shows it offers it.
CAPABILITIES: dict[str, Callable[[object], bool]] = {
    BETWEEN_LEGS: lambda layer: isinstance(layer, PausesBetweenLegs),
    BEFORE_COMMIT: lambda layer: isinstance(layer, (PausesBeforeCommit, CommitsThroughEngine)),
    DEADLINE: lambda layer: isinstance(layer, HonoursDeadline),
    LOCK_ORDER: lambda layer: isinstance(layer, ChoosesLockOrder),
    UNIT_OF_WORK: lambda layer: isinstance(layer, OrmUnitOfWork),
}


#: Each capability's short name, the one ``-D missing_capabilities`` takes and run.json
#: records (the name of the attribute or method that offers it).
NAMES: dict[str, str] = {
    BETWEEN_LEGS: "between_legs",
    BEFORE_COMMIT: "before_commit",
    DEADLINE: "deadline",
    LOCK_ORDER: "lock_in_order",
    UNIT_OF_WORK: "unit_of_work",
}
#: What a run cannot check on a layer that lacks the capability: the guarantees whose
#: scenarios need it (the run's record names the Rules themselves).
LEAVES_UNCHECKED: dict[str, str] = {
    BETWEEN_LEGS: "that half a transfer is never kept when it fails between its legs",
    BEFORE_COMMIT: (
        "what a failure just before COMMIT, or a lost COMMIT reply, does to an operation"
    ),
    DEADLINE: "that a request waiting where no client setting ends the wait is ended",
    LOCK_ORDER: (
        "how two opposite transfers that each lock their source first deadlock, which one "
        "PostgreSQL ends, and that the layer retries it and applies each transfer once"
    ),
    UNIT_OF_WORK: "that an ORM unit of work keeps all of its work or none",
}


def capability_named(name: str) -> str:
    """The capability (a key of :data:`CAPABILITIES`) whose short name is ``name``.
    Raises KeyError naming the short names there are."""
    for capability, short in NAMES.items():
        if short == name:
            return capability
    raise KeyError(f"no capability {name!r}: there are {', '.join(NAMES.values())}")


# -- rules of the port the harness checks where they matter ----------------------------

#: The rule on an error after which a layer threw its connection away (module docstring,
#: "A connection thrown away"), as the harness names it when a layer breaks it.
CONNECTION_INVALIDATED = (
    "an error after which the layer threw its connection away says so: "
    "connection_invalidated is True on it — see DataLayer.pay"
)


def connection_invalidated_rule(operation: str | None) -> str:
    """:data:`CONNECTION_INVALIDATED`, naming the operation that broke it when it is not
    ``pay`` (where the port states the rule for every operation)."""
    if operation is None or operation == "pay":
        return CONNECTION_INVALIDATED
    return (
        f"{CONNECTION_INVALIDATED}, which states it for every operation; "
        f"broken in DataLayer.{operation}"
    )


class PortViolation(AssertionError):
    """A data layer broke a rule of the port at the point the harness checks it; the
    message begins ``data layer port:`` and names the rule and where the port states it."""

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(f"data layer port: {rule} ({detail})")
        self.rule = rule


def capabilities_of(layer: object) -> frozenset[str]:
    """The optional capabilities ``layer`` offers (keys of :data:`CAPABILITIES`)."""
    return frozenset(name for name, offers in CAPABILITIES.items() if offers(layer))


def probe(factory: Factory, driver: str) -> frozenset[str]:
    """The capabilities of the layer ``factory`` builds for a run with ``driver``, learnt
    from one built on resources it never uses (an engine that never connects). Raises what
    the factory raises (a layer that refuses the driver, say)."""
    import sqlalchemy as sa

    from failspec import drivers

    unused = sa.create_engine(sa.engine.URL.create(drivers.DRIVERS[driver].dialect))

    def no_connection() -> Any:
        raise AssertionError("a data layer used its resources while being built")

    try:
        layer: object = factory(Resources(unused, no_connection, driver, _retry_policy()))
    finally:
        unused.dispose()
    if not isinstance(layer, DataLayer):
        missing = [m for m in ("pay", "transfer", "record_all", "import_payments")
                   if not callable(getattr(layer, m, None))]  # fmt: skip
        raise TypeError(f"the data layer has no {', '.join(missing)}: see failspec.ledger.port")
    return capabilities_of(layer)


def _retry_policy() -> RetryPolicy:
    from failspec.ledger.retry import RetryPolicy

    return RetryPolicy()


#: The operations of a data layer the harness calls (the optional ``unit_of_work`` too).
OPERATIONS = ("pay", "transfer", "record_all", "import_payments", "unit_of_work")

#: A factory: builds a data layer from :class:`Resources`.
Factory = Callable[[Resources], DataLayer]


class NotAFactory(ValueError):
    """``-D data_layer`` does not name an importable factory; the message says why."""


def load_factory(spec: str) -> Factory:
    """The factory ``spec`` names, in the form ``package.module:attribute`` (the module
    importable from ``sys.path``; ``./run-spec`` puts the repository's root on it). Raises
    :class:`NotAFactory` with one line naming the fix."""
    module_name, _, attribute = spec.partition(":")
    if (
        not module_name
        or not attribute
        or not all(part.isidentifier() for part in [*module_name.split("."), *attribute.split(".")])
    ):
        raise NotAFactory(
            f"data_layer={spec!r} is not of the form package.module:factory "
            "(e.g. examples.psycopg_ledger:factory)"
        )
    try:
        found: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise NotAFactory(
            f"data_layer={spec!r}: cannot import {module_name} ({error}); is its directory on "
            "PYTHONPATH? (./run-spec adds the repository's root)"
        ) from None
    for name in attribute.split("."):
        if not hasattr(found, name):
            raise NotAFactory(f"data_layer={spec!r}: {module_name} has no {attribute}")
        found = getattr(found, name)
    if not callable(found):
        raise NotAFactory(f"data_layer={spec!r}: {attribute} is not callable")
    factory: Factory = found
    return factory


def reference(resources: Resources) -> DataLayer:
    """This project's ledger (``failspec.ledger.Ledger``) on the instance's engine; it
    offers every capability."""
    from failspec.ledger.ledger import Ledger

    options = {} if resources.lock_in_order is None else {"lock_in_order": resources.lock_in_order}
    ledger: DataLayer = Ledger(resources.engine, retry=resources.retry, **options)
    return ledger


def pooled_connection(
    engine: Engine, thrown_away: Callable[[BaseException], None] | None = None
) -> Callable[[], AbstractContextManager[Any]]:
    """:attr:`Resources.connection` for ``engine``: its pool's driver connection, given
    back at the end of the block (a broken one thrown away). ``thrown_away`` is called
    with the error that left a block whose connection was broken (the harness checks
    :data:`CONNECTION_INVALIDATED` with it)."""
    from contextlib import contextmanager

    from failspec import drivers

    @contextmanager
    def connection() -> Iterator[Any]:
        fairy = engine.raw_connection()
        try:
            yield fairy.dbapi_connection
        except BaseException as error:
            dbapi = fairy.dbapi_connection
            if dbapi is not None and not drivers.is_open(dbapi):
                fairy.invalidate(error if isinstance(error, Exception) else None)
                if thrown_away is not None:
                    thrown_away(error)
            raise
        finally:
            fairy.close()

    return connection
