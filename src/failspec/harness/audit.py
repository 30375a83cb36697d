"""Reading committed ledger state through a connection that takes no part in a failure."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

import sqlalchemy as sa
from hamcrest import assert_that, equal_to

from failspec.harness.workspace import Workspace
from failspec.ledger import Fingerprint, Ledger, Payment


class Auditor:
    """Seeds the ledger, and fingerprints and lists its committed payments.

    It works through the run's observer connection, never through the application's
    pool or sessions, so nothing a scenario does to those can colour what it sees.
    """

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.baseline: Fingerprint | None = None
        self.baseline_balances: dict[str, Decimal] | None = None

    def seed(self, accounts: Iterable[str], payments: Iterable[Payment]) -> None:
        with self.workspace.observe() as conn:
            Ledger.open_accounts(conn, accounts)
            Ledger.seed(conn, payments)
            conn.commit()

    def open_accounts(self, balances: dict[str, Decimal]) -> None:
        """Open accounts holding the given balances (money from outside the ledger)."""
        with self.workspace.observe() as conn:
            for name, balance in balances.items():
                conn.execute(
                    sa.text("INSERT INTO accounts (name, balance) VALUES (:n, :b)"),
                    {"n": name, "b": balance},
                )
            conn.commit()

    def balances(self) -> dict[str, Decimal]:
        with self.workspace.observe() as conn:
            return Ledger.balances(conn)

    def fingerprint(self) -> Fingerprint:
        with self.workspace.observe() as conn:
            return Ledger.fingerprint(conn)

    def payments(self) -> list[Payment]:
        with self.workspace.observe() as conn:
            return Ledger.payments(conn)

    def operations_with(self, reference: str) -> int:
        with self.workspace.observe() as conn:
            return conn.execute(
                sa.text("SELECT count(*) FROM transactions WHERE client_ref = :r"),
                {"r": reference},
            ).scalar_one()

    def take_baseline(self) -> Fingerprint:
        self.baseline = self.fingerprint()
        self.baseline_balances = self.balances()
        return self.baseline

    def assert_unchanged(self, when: str = "") -> None:
        assert self.baseline is not None, "no fingerprint of the ledger was taken before"
        assert_that(
            self.fingerprint(),
            equal_to(self.baseline),
            f"committed payments changed {when}".strip(),
        )
