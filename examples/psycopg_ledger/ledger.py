"""A ledger as a team without an ORM writes it: psycopg 3 and SQL, nothing else.

It keeps the same books as failspec's own ledger, in the same tables
(``failspec.ledger.schema``), and shows that the port (``failspec.ledger.port``) is all the
specification needs. What it does, and how:

* every operation is a transaction of its own on a connection it takes for it and gives
  back (``Resources.connection``: where a team would take one from its pool);
* **at most once**: before any work, the operation's client reference is looked up; a
  repeat of the same operation returns the first one's receipt (``already_applied``), a
  reference naming another operation is refused (``ReferenceConflict``); a concurrent
  request with the same reference waits on the ``transactions_client_ref_key`` unique
  index, fails with ``unique_violation`` once the first commits, and is then looked up
  again;
* **its own retry loop**: at most ``retry.attempts`` attempts, each failure judged by
  ``retry.transient`` (the application's judgement: ``serialization_failure``,
  ``deadlock_detected``, a lost connection, a server restarting …), waits of
  ``retry.delay(n)`` through ``retry.sleep``; a lost COMMIT reply is resolved by the
  reference lookup of the next attempt;
* a transfer locks both accounts in name order first (``FOR NO KEY UPDATE``) unless told
  to lock each as its leg reaches it, so two opposite transfers queue instead of
  deadlocking;
* a COMMIT that PostgreSQL warns "committed locally, but might not have been replicated"
  is reported in doubt (``NotReplicated``), read from the connection's notices.

It offers no request deadline and no ORM unit of work: the scenarios that need them are
skipped, with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg
from psycopg import errors

from failspec.conditions import condition_of, first_line, note
from failspec.ledger import (
    ImportReport,
    NotReplicated,
    Payment,
    Receipt,
    ReferenceConflict,
    Rejection,
    RetryPolicy,
    Transfer,
    UnknownAccount,
)
from failspec.ledger.port import Resources

#: The unique constraint that makes a client reference name one operation.
REFERENCE_CONSTRAINT = "transactions_client_ref_key"
#: PostgreSQL's DETAIL when a COMMIT's wait for its synchronous standby was cut short.
NOT_REPLICATED = "committed locally, but might not have been replicated"

Connect = Callable[[], AbstractContextManager[psycopg.Connection[Any]]]
Work = Callable[[psycopg.Connection[Any]], int]


class PsycopgLedger:
    """Payments and transfers on psycopg 3 connections."""

    def __init__(self, connection: Connect, retry: RetryPolicy, *, lock_in_order: bool) -> None:
        self.connection = connection
        self.retry = retry
        #: Lock a transfer's two accounts in name order before its legs (else each as its
        #: leg reaches it).
        self.lock_in_order = lock_in_order
        #: Called between a transfer's debit and credit, on its connection (a test seam the
        #: port defines; None in production).
        self.between_legs: Callable[[Any], None] | None = None
        #: Called just before each COMMIT, on its connection (likewise).
        self.before_commit: Callable[[Any], None] | None = None

    # -- operations: atomic, at most once, retried -------------------------------------

    def pay(self, payment: Payment) -> Receipt:
        same = ("payment", payment.account, None, payment.amount)
        return self._apply(payment.reference, same, lambda conn: _record(conn, payment))

    def transfer(self, transfer: Transfer) -> Receipt:
        same = ("transfer", transfer.source, transfer.target, transfer.amount)
        return self._apply(transfer.reference, same, lambda conn: self._move(conn, transfer))

    def _apply(self, reference: str, same: tuple[object, ...], work: Work) -> Receipt:
        attempt = 1
        while True:
            try:
                return self._attempt(reference, same, work, attempt)
            except Exception as error:
                transient = self.retry.transient(error)
                if attempt >= self.retry.attempts or not transient:
                    if transient:
                        note(error, f"gave up after {attempt} attempts (all transient failures)")
                    error.failspec_attempts = attempt  # type: ignore[attr-defined]
                    raise
            self.retry.sleep(self.retry.delay(attempt))
            attempt += 1

    def _attempt(
        self, reference: str, same: tuple[object, ...], work: Work, attempt: int
    ) -> Receipt:
        with self.connection() as conn:
            notices: list[str] = []

            def keep(diagnostic: errors.Diagnostic) -> None:
                notices.append(f"{diagnostic.message_primary} {diagnostic.message_detail}")

            conn.add_notice_handler(keep)
            try:
                earlier = _find(conn, reference, same, attempt)
                if earlier is not None:
                    conn.rollback()
                    return earlier
                row_id = work(conn)
                self._commit(conn)
            except errors.UniqueViolation as error:
                conn.rollback()
                if error.diag.constraint_name != REFERENCE_CONSTRAINT:
                    raise
                # A concurrent request with the same reference committed meanwhile.
                earlier = _find(conn, reference, same, attempt)
                conn.rollback()
                if earlier is None:
                    raise
                return earlier
            except psycopg.Error as error:
                _flag_if_thrown_away(conn, error)
                _raise_if_not_replicated(notices, reference)  # ended while COMMIT waited
                raise
            finally:
                conn.remove_notice_handler(keep)
            _raise_if_not_replicated(notices, reference)
            return Receipt(reference, row_id, already_applied=False, attempts=attempt)

    def _commit(self, conn: psycopg.Connection[Any]) -> None:
        if self.before_commit is not None:
            self.before_commit(conn)
        conn.commit()

    def _move(self, conn: psycopg.Connection[Any], transfer: Transfer) -> int:
        if self.lock_in_order:
            conn.execute(
                "SELECT name FROM accounts WHERE name IN (%s, %s) ORDER BY name FOR NO KEY UPDATE",
                (transfer.source, transfer.target),
            ).fetchall()
        debit = "UPDATE accounts SET balance = balance - %s WHERE name = %s"
        if conn.execute(debit, (transfer.amount, transfer.source)).rowcount != 1:
            raise UnknownAccount(f"no account {transfer.source!r} to debit")
        if self.between_legs is not None:
            self.between_legs(conn)
        credit = "UPDATE accounts SET balance = balance + %s WHERE name = %s"
        if conn.execute(credit, (transfer.amount, transfer.target)).rowcount != 1:
            raise UnknownAccount(f"no account {transfer.target!r} to credit")
        row = conn.execute(
            "INSERT INTO transactions (kind, account, counterparty, amount, client_ref) "
            "VALUES ('transfer', %s, %s, %s, %s) RETURNING id",
            (transfer.source, transfer.target, transfer.amount, transfer.reference),
        ).fetchone()
        assert row is not None
        return int(row[0])

    # -- batches -----------------------------------------------------------------------

    def record_all(self, payments: Iterable[Payment]) -> list[int]:
        """A batch in one transaction: all of it, or none."""
        with self._transaction() as conn:
            ids = [_record(conn, payment) for payment in payments]
            self._commit(conn)
            return ids

    def import_payments(self, payments: Iterable[Payment], *, per_row: bool) -> ImportReport:
        """Import in one transaction: all or nothing, or row by row under savepoints."""
        report = ImportReport()
        with self._transaction() as conn:
            for number, payment in enumerate(payments, start=1):
                if not per_row:
                    try:
                        _record(conn, payment)
                    except psycopg.Error as error:
                        note(error, f"row {number} ({payment.reference}) of the import")
                        raise
                    report.imported.append(payment.reference)
                    continue
                conn.execute("SAVEPOINT import_row")
                try:
                    _record(conn, payment)
                except psycopg.Error as error:
                    conn.execute("ROLLBACK TO SAVEPOINT import_row")
                    report.rejected.append(_rejection(payment, error))
                else:
                    conn.execute("RELEASE SAVEPOINT import_row")
                    report.imported.append(payment.reference)
            self._commit(conn)
        return report

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection for one transaction that the block commits: on any failure in the
        block it is rolled back (unless the connection is gone), and a connection thrown
        away says so on the error (the port's ``connection_invalidated``)."""
        with self.connection() as conn:
            try:
                yield conn
            except BaseException as error:
                _flag_if_thrown_away(conn, error)
                if not conn.closed:
                    conn.rollback()
                raise


def _record(conn: psycopg.Connection[Any], payment: Payment) -> int:
    """Record a payment and credit its account, in the caller's transaction."""
    row = conn.execute(
        "INSERT INTO transactions (kind, account, amount, client_ref, status) "
        "VALUES ('payment', %s, %s, %s, %s) RETURNING id",
        (payment.account, payment.amount, payment.reference, payment.status),
    ).fetchone()
    assert row is not None
    conn.execute(
        "UPDATE accounts SET balance = balance + %s WHERE name = %s",
        (payment.amount, payment.account),
    )
    return int(row[0])


def _find(
    conn: psycopg.Connection[Any], reference: str, same: tuple[object, ...], attempt: int
) -> Receipt | None:
    """The receipt of the operation ``reference`` names, if it is ``same``; None if none."""
    row = conn.execute(
        "SELECT id, kind, account, counterparty, amount FROM transactions WHERE client_ref = %s",
        (reference,),
    ).fetchone()
    if row is None:
        return None
    if tuple(row[1:]) != same:
        raise ReferenceConflict(
            f"reference {reference!r} already names another operation: {tuple(row[1:])}"
        )
    return Receipt(reference, int(row[0]), already_applied=True, attempts=attempt)


def _rejection(payment: Payment, error: psycopg.Error) -> Rejection:
    diag = error.diag
    reason = diag.constraint_name or diag.column_name or first_line(error)
    return Rejection(payment.reference, condition_of(error) or "error", reason)


def _flag_if_thrown_away(conn: psycopg.Connection[Any], error: BaseException) -> None:
    """Tell the caller the connection is gone (the port's ``connection_invalidated``): it
    was lost or found broken, and goes back to no pool."""
    if conn.closed:
        error.connection_invalidated = True  # type: ignore[attr-defined]


def _raise_if_not_replicated(notices: list[str], reference: str) -> None:
    for notice in notices:
        if NOT_REPLICATED in notice:
            raise NotReplicated(
                f"{reference!r} was committed on the primary, but its wait for the "
                f"synchronous standby was cut short ({notice.strip()}): look it up by its "
                "reference once a primary confirms it, before doing it again"
            )


def factory(resources: Resources) -> PsycopgLedger:
    """The port's factory: the ledger on the connections ``resources`` gives, which must be
    psycopg 3's (``-D driver=psycopg``)."""
    if resources.driver != "psycopg":
        raise RuntimeError(
            f"examples.psycopg_ledger is written on psycopg 3, and this run's driver is "
            f"{resources.driver}: add -D driver=psycopg"
        )
    lock_in_order = True if resources.lock_in_order is None else resources.lock_in_order
    return PsycopgLedger(resources.connection, resources.retry, lock_in_order=lock_in_order)
