"""Adya's anomaly ids with their plain names: one table for the checker, the isolation
matrix and the report alike.

Ids and names are those of Adya's thesis (*Weak Consistency: A Generalized Theory and
Optimistic Implementations for Distributed Transactions*, MIT 1999, chapter 4) as
Hermitage names them for PostgreSQL (OTV, PMP, P4 from Berenson et al., "A Critique of
ANSI SQL Isolation Levels", SIGMOD 1995). The last two entries are the checks a history
checker adds (as Elle does: Kingsbury and Alvaro, VLDB 2020), not cycles of Adya's.
"""

from __future__ import annotations

#: Every anomaly the specification names, by id, in the order of Adya's hierarchy.
ANOMALIES: dict[str, str] = {
    "G0": "dirty write",
    "G1a": "aborted read",
    "G1b": "intermediate read",
    "G1c": "circular information flow",
    "OTV": "observed transaction vanishes",
    "PMP": "predicate-many-preceders",
    "P4": "lost update",
    "G-single": "read skew",
    "G2-item": "write skew",
    "G2": "anti-dependency cycles",
}

#: What a history checker finds besides Adya's cycles (failspec.harness.concurrency.cycles).
CHECKER_EXTRAS: dict[str, str] = {
    "internal": "a transaction not seeing its own writes",
    "incompatible-order": "reads that no one order of appends explains",
}

#: What the generated workloads' checker reports, in this order.
CHECKED_IN_HISTORIES = (
    "G0",
    "G1a",
    "G1b",
    "G1c",
    "G-single",
    "G2-item",
    "internal",
    "incompatible-order",
)


def named(*ids: str) -> dict[str, str]:
    """``{id: plain name}`` for ``ids``, in the order given, from :data:`ANOMALIES` and
    :data:`CHECKER_EXTRAS`. Raises KeyError for an id neither table has."""
    table = ANOMALIES | CHECKER_EXTRAS
    return {anomaly: table[anomaly] for anomaly in ids}
