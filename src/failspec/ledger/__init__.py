"""The system under specification: a ledger of payments in PostgreSQL.

Swap in your own data layer by giving the steps an object with the same operations
(see README: "Pointing the specification at your own data layer").
"""

from failspec.ledger.ledger import Fingerprint, Ledger, Payment
from failspec.ledger.sample import SAMPLE_PAYMENTS

__all__ = ["SAMPLE_PAYMENTS", "Fingerprint", "Ledger", "Payment"]
