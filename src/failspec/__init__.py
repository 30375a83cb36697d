"""failspec: an executable specification of a PostgreSQL ledger under failure."""

__version__ = "0.1.0"
