"""Reading committed ledger state through a connection that takes no part in a failure."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

import sqlalchemy as sa
from hamcrest import assert_that, equal_to
from sqlalchemy.engine import Connection

from failspec.harness.guards.books import ZERO, Books, Fingerprint, read_books
from failspec.harness.scenario.workspace import Workspace
from failspec.ledger import Ledger, Payment


class Auditor:
    """Seeds the ledger, remembers each account's opening balance, and reads committed
    state: the books (fingerprint and money conservation), balances and payments.

    It works through the run's own connections, never through the application's pool or
    sessions, and reads with its own SQL, never the ledger's: nothing a scenario does to
    the application, and no bug in the ledger, can colour what it sees. Seeding goes
    through the ledger's own primitives (``Ledger.record``), so the books also check them.
    """

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.baseline: Fingerprint | None = None
        self.baseline_balances: dict[str, Decimal] | None = None
        #: Each account's balance when the harness opened it (money from outside the ledger).
        self.opening: dict[str, Decimal] = {}

    def seed(self, accounts: Iterable[str], payments: Iterable[Payment]) -> None:
        """Open ``accounts`` at 0.00 and record ``payments`` through the ledger, committed."""
        accounts = list(accounts)
        with self.workspace.observe() as conn:
            Ledger.open_accounts(conn, accounts)
            Ledger.seed(conn, payments)
            conn.commit()
        self.opening.update(dict.fromkeys(accounts, ZERO))

    def open_accounts(self, balances: dict[str, Decimal]) -> None:
        """Open accounts holding the given balances (money from outside the ledger)."""
        with self.workspace.observe() as conn:
            for name, balance in balances.items():
                conn.execute(
                    sa.text("INSERT INTO accounts (name, balance) VALUES (:n, :b)"),
                    {"n": name, "b": balance},
                )
            conn.commit()
        self.opening.update(balances)

    def books(self, conn: Connection | None = None) -> Books:
        """The ledger's books, read in one statement (one round trip, autocommit).

        ``conn``: a connection of the run's admin engine to read on (default: one checked
        out for this read)."""
        if conn is not None:
            return read_books(conn, self.workspace.schema)
        with self.workspace.run.admin.connect() as own:
            return read_books(own, self.workspace.schema)

    def balances(self) -> dict[str, Decimal]:
        """Every account's committed balance, by name."""
        return {a.name: a.balance for a in self.books().accounts}

    def fingerprint(self) -> Fingerprint:
        return self.books().fingerprint

    def payments(self) -> list[Payment]:
        """Every committed payment, in the order recorded."""
        with self.workspace.observe() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT account, amount, client_ref, status FROM transactions "
                    "WHERE kind = 'payment' ORDER BY id"
                )
            )
            return [Payment(*row) for row in rows]

    def operations_with(self, reference: str) -> int:
        with self.workspace.observe() as conn:
            return conn.execute(
                sa.text("SELECT count(*) FROM transactions WHERE client_ref = :r"),
                {"r": reference},
            ).scalar_one()

    def missing(self, acknowledged: dict[str, str], conn: Connection) -> list[str]:
        """Of the operations the application was told were applied (``acknowledged``:
        reference -> what it was), the references no committed row carries; read on
        ``conn`` (autocommit), in the scenario's schema."""
        if not acknowledged:
            return []
        found = set(
            conn.execute(
                sa.text(
                    f"SELECT client_ref FROM {self.workspace.schema}.transactions "
                    "WHERE client_ref = ANY(:refs)"
                ),
                {"refs": list(acknowledged)},
            ).scalars()
        )
        return [ref for ref in acknowledged if ref not in found]

    def take_baseline(self) -> Fingerprint:
        books = self.books()
        self.baseline = books.fingerprint
        self.baseline_balances = {a.name: a.balance for a in books.accounts}
        return self.baseline

    def assert_unchanged(self, when: str = "", books: Books | None = None) -> None:
        """Fail unless the fingerprint is the baseline's (``books``: one already read)."""
        assert self.baseline is not None, "no fingerprint of the ledger was taken before"
        assert_that(
            (books or self.books()).fingerprint,
            equal_to(self.baseline),
            f"committed payments changed {when}".strip(),
        )
