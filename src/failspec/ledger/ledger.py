"""Ledger operations: what the application does with payments.

Operations that take part in a caller's transaction take a ``Connection``; the rest
manage their own. Reads of *committed* state take a connection the caller chooses, so
the specification can read through a connection that plays no part in the failure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from failspec.ledger.schema import TRANSACTIONS_DDL


@dataclass(frozen=True)
class Payment:
    """One payment: money for an account, identified by the client's own reference."""

    account: str | None
    amount: Decimal
    reference: str
    status: str = "pending"


@dataclass(frozen=True)
class Fingerprint:
    """How many payments are committed, and a checksum over every column of every one."""

    count: int
    checksum: str

    def __str__(self) -> str:
        return f"{self.count} payment(s), checksum {self.checksum[:12]}"


_INSERT = sa.text(
    "INSERT INTO transactions (account, amount, client_ref, status) "
    "VALUES (:account, :amount, :reference, :status) RETURNING id"
)

# Every column, in a fixed order, of every committed row, ordered by id.
_FINGERPRINT = sa.text(
    "SELECT count(*), md5(coalesce(string_agg(concat_ws('|', id, account, amount, client_ref, "
    "status, created_at), E'\\n' ORDER BY id), '')) FROM transactions"
)


class Ledger:
    """The ledger, bound to the engine the application uses."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @staticmethod
    def create_tables(conn: Connection) -> None:
        """Create the ledger's table in the connection's schema (its search_path)."""
        conn.execute(sa.text(TRANSACTIONS_DDL))

    @staticmethod
    def seed(conn: Connection, payments: Iterable[Payment]) -> None:
        for payment in payments:
            Ledger.record(conn, payment)

    @staticmethod
    def record(conn: Connection, payment: Payment) -> int:
        """Record one payment in the connection's current transaction; return its id."""
        return conn.execute(_INSERT, _params(payment)).scalar_one()

    def record_all(self, payments: Iterable[Payment]) -> list[int]:
        """Record a batch in one transaction: every payment of it, or none."""
        with self.engine.begin() as conn:
            return [self.record(conn, payment) for payment in payments]

    @staticmethod
    def set_status_of_all(conn: Connection, status: str) -> int:
        return conn.execute(sa.text("UPDATE transactions SET status = :s"), {"s": status}).rowcount

    @staticmethod
    def remove(conn: Connection, reference: str) -> int:
        return conn.execute(
            sa.text("DELETE FROM transactions WHERE client_ref = :r"), {"r": reference}
        ).rowcount

    @staticmethod
    def payments(conn: Connection) -> list[Payment]:
        rows = conn.execute(
            sa.text("SELECT account, amount, client_ref, status FROM transactions ORDER BY id")
        )
        return [Payment(*row) for row in rows]

    @staticmethod
    def fingerprint(conn: Connection) -> Fingerprint:
        count, checksum = conn.execute(_FINGERPRINT).one()
        return Fingerprint(count, checksum)


def _params(payment: Payment) -> dict[str, object]:
    return {
        "account": payment.account,
        "amount": payment.amount,
        "reference": payment.reference,
        "status": payment.status,
    }
