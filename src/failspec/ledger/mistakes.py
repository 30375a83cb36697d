"""Queries an application gets wrong, each one an attempt to change every payment.

Each would change rows if the server ran it; the specification shows it changes none.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mistake:
    description: str
    sql: str


MISTAKES = {
    m.description: m
    for m in (
        Mistake("a misspelt keyword", "UPDAT transactions SET status = 'posted'"),
        Mistake("a table that does not exist", "UPDATE payments SET status = 'posted'"),
        Mistake("a column that does not exist", "UPDATE transactions SET colour = 'red'"),
        Mistake("a division by zero", "UPDATE transactions SET amount = amount / 0"),
        Mistake("text where a number belongs", "UPDATE transactions SET amount = 'ten'"),
    )
}
