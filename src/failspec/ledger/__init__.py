"""The system under specification: a ledger of payments and transfers in PostgreSQL.

Swap in your own data layer by giving the steps an object with the same operations
(see README: "Pointing the specification at your own data layer").
"""

from failspec.ledger.errors import NotReplicated, ReferenceConflict, UnknownAccount
from failspec.ledger.ledger import (
    ImportReport,
    Ledger,
    Payment,
    Receipt,
    Rejection,
    Transfer,
)
from failspec.ledger.retry import RetryPolicy, is_transient
from failspec.ledger.sample import SAMPLE_ACCOUNTS, SAMPLE_PAYMENTS

__all__ = [
    "SAMPLE_ACCOUNTS",
    "SAMPLE_PAYMENTS",
    "ImportReport",
    "Ledger",
    "NotReplicated",
    "Payment",
    "Receipt",
    "ReferenceConflict",
    "Rejection",
    "RetryPolicy",
    "Transfer",
    "UnknownAccount",
    "is_transient",
]
