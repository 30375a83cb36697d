"""Reading committed ledger state through a connection that takes no part in a failure."""

from __future__ import annotations

from hamcrest import assert_that, equal_to

from failspec.harness.workspace import Workspace
from failspec.ledger import Fingerprint, Ledger, Payment


class Auditor:
    """Fingerprints and lists committed payments, each time on a fresh connection."""

    def __init__(self, workspace: Workspace) -> None:
        # An engine and pool of its own, so nothing the scenario does to the application's
        # pool or sessions can colour what the auditor sees; pre-ping, because scenarios
        # may end server connections.
        self.engine = workspace.engine(pool_size=1, max_overflow=1, pool_pre_ping=True)
        self.baseline: Fingerprint | None = None

    def fingerprint(self) -> Fingerprint:
        with self.engine.connect() as conn:
            return Ledger.fingerprint(conn)

    def payments(self) -> list[Payment]:
        with self.engine.connect() as conn:
            return Ledger.payments(conn)

    def take_baseline(self) -> Fingerprint:
        self.baseline = self.fingerprint()
        return self.baseline

    def assert_unchanged(self, when: str = "") -> None:
        assert self.baseline is not None, "no fingerprint of the ledger was taken before"
        assert_that(
            self.fingerprint(),
            equal_to(self.baseline),
            f"committed payments changed {when}".strip(),
        )
