"""A ledger written directly on psycopg 3, without SQLAlchemy: run the specification on it
with ``./run-spec -D driver=psycopg -D data_layer=examples.psycopg_ledger:factory``."""

from examples.psycopg_ledger.ledger import PsycopgLedger, factory

__all__ = ["PsycopgLedger", "factory"]
