"""The sample payments every scenario starts from, unless it says otherwise."""

from decimal import Decimal

from failspec.ledger.ledger import Payment

SAMPLE_PAYMENTS = (
    Payment("alice", Decimal("100.00"), "ref-001", "posted"),
    Payment("bob", Decimal("250.50"), "ref-002", "posted"),
    Payment("carol", Decimal("75.25"), "ref-003", "pending"),
)
