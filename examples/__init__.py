"""Data layers other than failspec's own, each proving the port (failspec.ledger.port)."""
