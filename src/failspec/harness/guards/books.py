"""The ledger's books as the harness reads them: the fingerprint and money conservation.

Two guards run after every scenario on what one statement reads (one round trip, on the
run's administrative connection, outside any transaction of the scenario):

* **the fingerprint** of committed state: the number of operations, the sum of all
  balances, and a checksum over every column of every operation and every balance. A
  scenario that is not tagged ``@changes-ledger`` must leave it as it was.
* **money conservation**, double-entry bookkeeping's invariant: each account's balance
  equals its opening balance plus the payments to it plus the transfers into it minus
  the transfers out of it, as the ledger's own operations (``transactions``) record
  them. A lost update, a transfer with one leg, a credit to the wrong account or a
  balance changed without a record each break it, in whichever scenario they happen.
  A payment counts whatever its status: the ledger credits a payment when it records
  it, and a status is a label (the ledger has no reversal operation).

The opening balances are what the harness itself put into the accounts before the
scenario acted (the auditor records them). The harness reads the books with its own SQL,
never through the ledger under specification, so a bug in the ledger cannot hide itself.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.engine import Connection

ZERO = Decimal("0.00")


@dataclass(frozen=True)
class Fingerprint:
    """Committed state in one value: the number of operations, the sum of all balances,
    and a checksum over every column of every operation and every balance."""

    count: int
    total: Decimal
    checksum: str

    def __str__(self) -> str:
        return (
            f"{self.count} operation(s), balances total {self.total}, checksum {self.checksum[:12]}"
        )


@dataclass(frozen=True)
class Account:
    """One account as the books show it: its balance, and the money its operations moved
    (in currency units, two decimals)."""

    name: str
    balance: Decimal
    paid: Decimal  # payments into the account
    received: Decimal  # transfers into the account
    sent: Decimal  # transfers out of the account

    def expected(self, opening: Decimal) -> Decimal:
        """The balance the ledger's records give: opening + paid + received - sent."""
        return opening + self.paid + self.received - self.sent


@dataclass(frozen=True)
class Books:
    """What one read of the books returns."""

    fingerprint: Fingerprint
    accounts: tuple[Account, ...]

    def imbalances(
        self, opening: Mapping[str, Decimal], written_directly: Collection[str] = ()
    ) -> list[str]:
        """Where the books do not balance, one sentence per account (empty: they balance).

        ``opening``: each account's balance before the scenario acted (an account missing
        here opened at 0.00). ``written_directly``: accounts the scenario's own sessions
        wrote outside the ledger and committed (the isolation scenarios set balances
        directly, as Hermitage does): a difference there is the scenario's, not the
        ledger's. An account that has gone is reported unless it was written directly.
        """
        found = []
        present = set()
        for account in self.accounts:
            present.add(account.name)
            start = opening.get(account.name, ZERO)
            expected = account.expected(start)
            if account.balance != expected and account.name not in written_directly:
                found.append(
                    f"{account.name} holds {account.balance}, but its records give {expected} "
                    f"(opening {start} + payments {account.paid} + transfers in "
                    f"{account.received} - transfers out {account.sent})"
                )
        for name in sorted(set(opening) - present - set(written_directly)):
            found.append(f"the account {name} (opening {opening[name]}) has gone")
        return found


def _books_sql(schema: str) -> str:
    # One statement: one snapshot, one round trip. Every table is named with its schema,
    # so it runs on any connection, in autocommit.
    return f"""
    WITH ops AS (SELECT * FROM {schema}.transactions),
    acc AS (SELECT name, balance FROM {schema}.accounts),
    fp AS (
      SELECT (SELECT count(*) FROM ops) AS n,
             (SELECT coalesce(sum(balance), 0) FROM acc) AS total,
             md5((SELECT coalesce(string_agg(concat_ws('|', id, kind, account, counterparty,
                    amount, client_ref, status, created_at), E'\\n' ORDER BY id), '') FROM ops)
                 || '#' || (SELECT coalesce(string_agg(name || '=' || balance, ',' ORDER BY name),
                    '') FROM acc)) AS checksum
    )
    SELECT fp.n, fp.total, fp.checksum, a.name, a.balance,
      coalesce(sum(o.amount) FILTER (WHERE o.kind = 'payment' AND o.account = a.name),
               0.00),
      coalesce(sum(o.amount) FILTER (WHERE o.kind = 'transfer' AND o.counterparty = a.name),
               0.00),
      coalesce(sum(o.amount) FILTER (WHERE o.kind = 'transfer' AND o.account = a.name),
               0.00)
    FROM fp
    LEFT JOIN acc a ON true
    LEFT JOIN ops o ON a.name IN (o.account, o.counterparty)
    GROUP BY fp.n, fp.total, fp.checksum, a.name, a.balance
    ORDER BY a.name
    """


def read_books(conn: Connection, schema: str) -> Books:
    """Read the fingerprint and every account's flows of the ledger in ``schema``, in one
    statement. Raises SQLAlchemy's ``DBAPIError`` when the server cannot answer."""
    rows = conn.exec_driver_sql(_books_sql(schema)).all()
    count, total, checksum = rows[0][:3]
    accounts = tuple(
        Account(row[3], row[4], row[5], row[6], row[7]) for row in rows if row[3] is not None
    )
    return Books(Fingerprint(count, Decimal(total), checksum), accounts)


def fingerprint(conn: Connection, schema: str) -> Fingerprint:
    """The fingerprint of the ledger in ``schema`` (see :class:`Fingerprint`)."""
    return read_books(conn, schema).fingerprint
