"""Typed step parameters: a step fails at once on a value the suite does not know."""

from __future__ import annotations

from decimal import Decimal

import parse
from behave import register_type

from failspec.conditions import is_known_condition
from failspec.ledger.mistakes import MISTAKES, Mistake


@parse.with_pattern(r"[a-z][a-z_]*")
def condition(text: str) -> str:
    if not is_known_condition(text):
        raise ValueError(f"{text!r} is not a PostgreSQL condition name nor a client one")
    return text


@parse.with_pattern(r"-?\d+\.\d{2}")
def money(text: str) -> Decimal:
    return Decimal(text)


@parse.with_pattern(r"\d+(\.\d+)?")
def seconds(text: str) -> float:
    return float(text)


@parse.with_pattern("|".join(MISTAKES))
def mistake(text: str) -> Mistake:
    return MISTAKES[text]


@parse.with_pattern(r"[a-z]+")
def account(text: str) -> str:
    return text


@parse.with_pattern(r"ref-\d+")
def reference(text: str) -> str:
    return text


register_type(
    Condition=condition,
    Money=money,
    Seconds=seconds,
    Mistake=mistake,
    Account=account,
    Reference=reference,
)
