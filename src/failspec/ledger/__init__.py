"""The system under specification: a ledger of payments and transfers in PostgreSQL.

Swap in your own data layer with ``-D data_layer=package.module:factory``: what it must
offer is the port, ``failspec.ledger.port`` (README: "Specify your own data layer").
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
