"""Ledger operations: what the application does with money.

Two layers:

* **Primitives** take a ``Connection`` and work in the caller's transaction:
  ``record`` (a payment), ``move`` (a transfer's two legs and its record),
  ``set_status_of_all``, ``remove``. They guarantee nothing beyond that transaction.
* **Operations** run in transactions of their own and are what an application should
  call: ``pay`` and ``transfer`` are atomic, idempotent by client reference (a repeat
  is reported as already applied, never applied twice), retried on transient failures,
  and each attempt is bounded by the request deadline when one is set (``deadline``);
  ``record_all`` and ``import_payments`` load batches; ``unit_of_work`` gives an ORM
  session that commits or rolls back, always reporting the original error.

Reads of *committed* state are static and take a connection the caller chooses, so the
specification reads through a connection that plays no part in the failure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from failspec import drivers
from failspec.conditions import condition_of, first_line, note
from failspec.ledger.errors import NotReplicated, ReferenceConflict, UnknownAccount
from failspec.ledger.retry import RetryPolicy
from failspec.ledger.schema import DDL

REFERENCE_CONSTRAINT = "transactions_client_ref_key"


@dataclass(frozen=True)
class Payment:
    """Money paid into an account, identified by the client's own reference."""

    account: str | None
    amount: Decimal
    reference: str
    status: str = "pending"

    def __str__(self) -> str:
        return f"{self.amount} to {self.account} ({self.reference})"


@dataclass(frozen=True)
class Transfer:
    """Money moved from one account to another, identified by the client's reference."""

    source: str
    target: str
    amount: Decimal
    reference: str

    def __str__(self) -> str:
        return f"{self.amount} from {self.source} to {self.target} ({self.reference})"


@dataclass(frozen=True)
class Receipt:
    """What an operation did: applied now, or found already applied (and not again)."""

    reference: str
    transaction_id: int
    already_applied: bool
    attempts: int


@dataclass(frozen=True)
class Rejection:
    """A row an import did not take, and why."""

    reference: str
    condition: str
    reason: str


@dataclass
class ImportReport:
    imported: list[str] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


_INSERT_PAYMENT = sa.text(
    "INSERT INTO transactions (kind, account, amount, client_ref, status) "
    "VALUES ('payment', :account, :amount, :reference, :status) RETURNING id"
)
_INSERT_TRANSFER = sa.text(
    "INSERT INTO transactions (kind, account, counterparty, amount, client_ref) "
    "VALUES ('transfer', :source, :target, :amount, :reference) RETURNING id"
)
_CREDIT = sa.text("UPDATE accounts SET balance = balance + :amount WHERE name = :name")
_DEBIT = sa.text("UPDATE accounts SET balance = balance - :amount WHERE name = :name")
_LOCK_BOTH = sa.text(
    "SELECT name FROM accounts WHERE name IN (:a, :b) ORDER BY name FOR NO KEY UPDATE"
)
_BY_REFERENCE = sa.text(
    "SELECT id, kind, account, counterparty, amount FROM transactions WHERE client_ref = :r"
)
#: What runs between a transfer's two legs (see Ledger.between_legs): given the
#: transfer's connection, inside its transaction.
BetweenLegs = Callable[[Connection], None]


class Ledger:
    """The ledger, bound to the engine the application uses."""

    def __init__(
        self, engine: Engine, *, retry: RetryPolicy | None = None, lock_in_order: bool = True
    ) -> None:
        self.engine = engine
        self.retry = retry or RetryPolicy()
        #: Lock a transfer's two accounts in one global order (by name) before its legs.
        #: Two transfers in opposite directions then queue instead of deadlocking;
        #: without it each locks its source first, and they can deadlock.
        self.lock_in_order = lock_in_order
        #: The one point inside an operation the ledger offers a caller: run between a
        #: transfer's debit and its credit, on the transfer's connection and in its
        #: transaction (None: nothing). A scenario pauses a transfer there, or has the
        #: server end its connection, to show that half a transfer is never kept. Every
        #: other fault comes from outside the data layer: the engine's events (before
        #: COMMIT is sent), the network (a reply lost), the server itself.
        self.between_legs: BetweenLegs | None = None
        #: The request deadline (s) of each attempt of ``pay`` and ``transfer``, from taking
        #: a connection to COMMIT's reply; None: unbounded. It holds on an engine whose
        #: connections honour it (``deadline.bound(engine)``).
        self.deadline: float | None = None

    # -- schema and setup --------------------------------------------------------------

    @staticmethod
    def create_tables(conn: Connection) -> None:
        """Create the ledger's tables in the connection's schema (its search_path)."""
        for ddl in DDL:
            conn.execute(sa.text(ddl))

    @staticmethod
    def open_accounts(conn: Connection, names: Iterable[str]) -> None:
        for name in names:
            conn.execute(sa.text("INSERT INTO accounts (name) VALUES (:n)"), {"n": name})

    @staticmethod
    def seed(conn: Connection, payments: Iterable[Payment]) -> None:
        for payment in payments:
            Ledger.record(conn, payment)

    # -- primitives: in the caller's transaction ---------------------------------------

    @staticmethod
    def record(conn: Connection, payment: Payment) -> int:
        """Record a payment and credit its account; return the operation's id."""
        row_id = conn.execute(
            _INSERT_PAYMENT,
            {
                "account": payment.account,
                "amount": payment.amount,
                "reference": payment.reference,
                "status": payment.status,
            },
        ).scalar_one()
        conn.execute(_CREDIT, {"amount": payment.amount, "name": payment.account})
        return row_id

    def move(self, conn: Connection, transfer: Transfer) -> int:
        """Debit the source, credit the target, record the transfer; return its id."""
        amounts = {"amount": transfer.amount}
        if self.lock_in_order:
            conn.execute(_LOCK_BOTH, {"a": transfer.source, "b": transfer.target}).all()
        if conn.execute(_DEBIT, {**amounts, "name": transfer.source}).rowcount != 1:
            raise UnknownAccount(f"no account {transfer.source!r} to debit")
        if self.between_legs is not None:
            self.between_legs(conn)
        if conn.execute(_CREDIT, {**amounts, "name": transfer.target}).rowcount != 1:
            raise UnknownAccount(f"no account {transfer.target!r} to credit")
        return conn.execute(
            _INSERT_TRANSFER,
            {**amounts, "source": transfer.source, "target": transfer.target,
             "reference": transfer.reference},
        ).scalar_one()  # fmt: skip

    @staticmethod
    def record_under_savepoint(conn: Connection, payment: Payment) -> int:
        """Record a payment under a savepoint of its own: if it fails, only its own work is
        undone (ROLLBACK TO SAVEPOINT), the error is raised, and the caller's transaction
        can go on."""
        with conn.begin_nested():
            return Ledger.record(conn, payment)

    @staticmethod
    def record_or_reject(conn: Connection, payment: Payment) -> Rejection | None:
        """:meth:`record_under_savepoint`, returning why the payment was refused, or None."""
        try:
            Ledger.record_under_savepoint(conn, payment)
        except sa.exc.DBAPIError as error:
            return Rejection(
                payment.reference, condition_of(error) or "error",
                _violated(error) or first_line(error),
            )  # fmt: skip
        return None

    @staticmethod
    def lock_account(conn: Connection, name: str, *, nowait: bool = False) -> str | None:
        """Lock an account's row for an update in this transaction (``FOR NO KEY UPDATE``).
        ``nowait``: fail with ``lock_not_available`` at once instead of waiting."""
        return conn.execute(
            sa.text(
                "SELECT name FROM accounts WHERE name = :n FOR NO KEY UPDATE"
                + (" NOWAIT" if nowait else "")
            ),
            {"n": name},
        ).scalar()

    @staticmethod
    def claim_next_pending(conn: Connection, *, skip_locked: bool) -> str | None:
        """A worker's claim on the oldest pending payment, held until its transaction ends:
        its reference, or None when there is none. ``skip_locked``: pass over payments
        other workers hold instead of waiting for them (a work queue)."""
        return conn.execute(
            sa.text(
                "SELECT client_ref FROM transactions WHERE status = 'pending' ORDER BY id "
                "LIMIT 1 FOR UPDATE" + (" SKIP LOCKED" if skip_locked else "")
            )
        ).scalar()

    @staticmethod
    def set_status_of_all(conn: Connection, status: str) -> int:
        return conn.execute(sa.text("UPDATE transactions SET status = :s"), {"s": status}).rowcount

    @staticmethod
    def remove(conn: Connection, reference: str) -> int:
        return conn.execute(
            sa.text("DELETE FROM transactions WHERE client_ref = :r"), {"r": reference}
        ).rowcount

    # -- operations: atomic, idempotent, retried ---------------------------------------

    def pay(self, payment: Payment) -> Receipt:
        same = ("payment", payment.account, None, payment.amount)
        return self._apply(payment.reference, same, lambda conn: self.record(conn, payment))

    def transfer(self, transfer: Transfer) -> Receipt:
        same = ("transfer", transfer.source, transfer.target, transfer.amount)
        return self._apply(transfer.reference, same, lambda conn: self.move(conn, transfer))

    def _apply(
        self, reference: str, same: tuple[object, ...], work: Callable[[Connection], int]
    ) -> Receipt:
        def attempt(number: int) -> Receipt:
            notices: list[str] = []
            try:
                with self.engine.begin() as conn:
                    notices = _fresh_notices(conn)
                    earlier = self._already_applied(conn, reference, same, number)
                    if earlier is not None:
                        return earlier
                    row_id = work(conn)
                _raise_if_not_replicated(notices, reference)
            except sa.exc.IntegrityError as error:
                if _constraint(error) != REFERENCE_CONSTRAINT:
                    raise
                # The same reference was committed by a concurrent request meanwhile.
                with self.engine.connect() as conn:
                    earlier = self._already_applied(conn, reference, same, number)
                if earlier is None:
                    raise
                return earlier
            except sa.exc.DBAPIError:
                # The session was ended while COMMIT waited for the standby: the server
                # warned as it went that the transaction had committed locally. A retry
                # would find it on this primary and call it applied: it is in doubt.
                _raise_if_not_replicated(notices, reference)
                raise
            return Receipt(reference, row_id, already_applied=False, attempts=number)

        return self.retry.run(self._bounded(attempt))

    def _bounded(self, attempt: Callable[[int], Receipt]) -> Callable[[int], Receipt]:
        """``attempt``, each call of it within its own request deadline: a retry after the
        deadline ran out gets a deadline of its own to find out what happened. Once an
        attempt's COMMIT got no reply, the outcome stays unknown until an attempt finds the
        operation by its reference: the error of a later attempt that fails says so too,
        so the caller never takes "failed" for "not applied"."""
        from failspec.ledger.deadline import OUTCOME_UNKNOWN, outcome_unknown, within

        unknown: list[int] = []  # the attempts whose COMMIT got no reply

        def bounded(number: int) -> Receipt:
            try:
                with within(self.deadline):
                    return attempt(number)
            except Exception as error:
                if outcome_unknown(error):
                    unknown.append(number)
                elif unknown:
                    setattr(error, OUTCOME_UNKNOWN, True)
                    note(
                        error,
                        f"attempt {unknown[0]}'s COMMIT got no reply within the deadline: "
                        "whether the operation was applied is unknown; look it up by its "
                        "reference before doing it again",
                    )
                raise

        return bounded

    @staticmethod
    def _already_applied(
        conn: Connection, reference: str, same: tuple[object, ...], attempt: int
    ) -> Receipt | None:
        row = conn.execute(_BY_REFERENCE, {"r": reference}).first()
        if row is None:
            return None
        if tuple(row[1:]) != same:
            raise ReferenceConflict(
                f"reference {reference!r} already names another operation: {tuple(row[1:])}"
            )
        return Receipt(reference, row[0], already_applied=True, attempts=attempt)

    # -- batches -----------------------------------------------------------------------

    def record_all(self, payments: Iterable[Payment]) -> list[int]:
        """Record a batch in one transaction: every payment of it, or none."""
        with self.engine.begin() as conn:
            return [self.record(conn, payment) for payment in payments]

    def import_payments(self, payments: Iterable[Payment], *, per_row: bool) -> ImportReport:
        """Import a file of payments in one transaction.

        ``per_row=False``: all or nothing; the first invalid row fails the import, and
        the error says which row. ``per_row=True``: each row under a savepoint of its own;
        valid rows are committed, invalid ones are rolled back to their savepoint and
        listed with the reason.
        """
        report = ImportReport()
        with self.engine.begin() as conn:
            for number, payment in enumerate(payments, start=1):
                if not per_row:
                    try:
                        self.record(conn, payment)
                    except sa.exc.DBAPIError as error:
                        note(error, f"row {number} ({payment.reference}) of the import")
                        raise
                    report.imported.append(payment.reference)
                    continue
                rejection = self.record_or_reject(conn, payment)
                if rejection is None:
                    report.imported.append(payment.reference)
                else:
                    report.rejected.append(rejection)
        return report

    # -- the ORM -----------------------------------------------------------------------

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """An ORM session that commits at the end or rolls back on error.

        If the rollback fails too (the connection is gone), the caller still gets the
        original error, with the rollback's failure noted on it: it is never hidden.
        """
        session = Session(self.engine)
        try:
            yield session
            session.commit()
        except BaseException as original:
            try:
                session.rollback()
            except Exception as failed:
                note(original, f"the rollback failed too: {first_line(failed)}")
            raise
        finally:
            session.close()

    # -- reads of committed state ------------------------------------------------------

    @staticmethod
    def payments(conn: Connection) -> list[Payment]:
        rows = conn.execute(
            sa.text(
                "SELECT account, amount, client_ref, status FROM transactions "
                "WHERE kind = 'payment' ORDER BY id"
            )
        )
        return [Payment(*row) for row in rows]

    @staticmethod
    def balances(conn: Connection) -> dict[str, Decimal]:
        rows = conn.execute(sa.text("SELECT name, balance FROM accounts ORDER BY name"))
        return {name: balance for name, balance in rows}


def _constraint(error: sa.exc.DBAPIError) -> str | None:
    diag = getattr(error.orig, "diag", None)
    return getattr(diag, "constraint_name", None)


def _violated(error: sa.exc.DBAPIError) -> str | None:
    """The constraint (or, for NOT NULL before PostgreSQL 18, the column) a row broke."""
    diag = getattr(error.orig, "diag", None)
    return getattr(diag, "constraint_name", None) or getattr(diag, "column_name", None)


#: What PostgreSQL says when a COMMIT's wait for its synchronous standbys is cancelled or
#: its session is terminated (src/backend/replication/syncrep.c, SyncRepWaitForLSN): a
#: WARNING whose DETAIL is this, and a COMMIT that reports success (docs: "Synchronous
#: Replication": the transaction is committed locally but not confirmed by a standby).
NOT_REPLICATED = "committed locally, but might not have been replicated"


def _fresh_notices(conn: Connection) -> list[str]:
    """The server's notices on this connection, as the driver collects them (psycopg2's
    ``connection.notices``; for psycopg, a notice handler: ``failspec.drivers.notices``),
    emptied of what earlier uses of the pooled connection left."""
    dbapi_connection = conn.connection.dbapi_connection
    if dbapi_connection is None:
        return []
    notices = drivers.notices(dbapi_connection)
    del notices[:]
    return notices


def _raise_if_not_replicated(notices: list[str], reference: str) -> None:
    """Raise :class:`NotReplicated` if the server warned, before COMMIT returned, that
    the transaction committed locally without its synchronous standby's confirmation."""
    for notice in notices:
        if NOT_REPLICATED in notice:
            raise NotReplicated(
                f"{reference!r} was committed on the primary, but its wait for the "
                f"synchronous standby was cut short: {first_line_of(notice)} It may be lost "
                "if the standby is promoted; look it up by its reference once a primary "
                "confirms it, before doing it again"
            )


def first_line_of(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""
