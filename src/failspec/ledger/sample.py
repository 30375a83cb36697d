"""The accounts and payments every scenario starts from, unless it says otherwise."""

from decimal import Decimal

from failspec.ledger.ledger import Payment

#: Every account the specification uses; each starts with a balance of 0.
SAMPLE_ACCOUNTS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "mallory")

#: Committed payments, crediting alice 100.00, bob 250.50 and carol 75.25.
SAMPLE_PAYMENTS = (
    Payment("alice", Decimal("100.00"), "ref-001", "posted"),
    Payment("bob", Decimal("250.50"), "ref-002", "posted"),
    Payment("carol", Decimal("75.25"), "ref-003", "pending"),
)
