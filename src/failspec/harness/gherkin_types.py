"""Typed step parameters: a step fails at once on a value the suite does not know."""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal

import parse
from behave import register_type

from failspec.conditions import is_known_condition
from failspec.harness.concurrency import isolation
from failspec.ledger.mistakes import MISTAKES, Mistake


@parse.with_pattern(r"[a-z][a-z_]*")
def condition(text: str) -> str:
    if not is_known_condition(text):
        raise ValueError(f"{text!r} is not a PostgreSQL condition name nor a client one")
    return text


@parse.with_pattern(r"-?\d+(?:\.\d{2})?")
def money(text: str) -> Decimal:
    """An amount in currency units: with cents (``40.00``) or a whole number (``40``), as a
    client may send the same amount either way."""
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


@parse.with_pattern(r"[a-z]+(?:, [a-z]+)*(?: and [a-z]+)?")
def accounts(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.replace(" and ", ", "))


@parse.with_pattern(r"[a-z]+ -?\d+\.\d{2}(?:, [a-z]+ -?\d+\.\d{2})*")
def balances(text: str) -> dict[str, Decimal]:
    """``alice 70.00, dave 20.00`` -> {"alice": Decimal("70.00"), "dave": Decimal("20.00")}."""
    return {name: Decimal(amount) for name, amount in re.findall(r"([a-z]+) (-?[\d.]+)", text)}


@parse.with_pattern(r"ref-\d+")
def reference(text: str) -> str:
    return text


@parse.with_pattern(r"T[1-9]")
def session(text: str) -> str:
    return text


@parse.with_pattern(r"T[1-9](?:, T[1-9])*(?: and T[1-9])?")
def sessions(text: str) -> list[str]:
    return re.findall(r"T[1-9]", text)


def _one_of(values: Iterable[str]) -> str:
    return "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))


@parse.with_pattern(_one_of(isolation.LEVELS))
def level(text: str) -> str:
    return text


@parse.with_pattern(_one_of((isolation.ALLOWED, isolation.PREVENTED)))
def verdict(text: str) -> str:
    return text


@parse.with_pattern(_one_of(isolation.ANOMALIES))
def anomaly(text: str) -> str:
    return text


@parse.with_pattern(
    _one_of((isolation.BY_ABORT, isolation.BY_WAIT, isolation.BY_SNAPSHOT, isolation.NOTHING))
)
def how(text: str) -> str:
    return text


register_type(
    Condition=condition,
    Money=money,
    Seconds=seconds,
    Mistake=mistake,
    Account=account,
    Accounts=accounts,
    Balances=balances,
    Reference=reference,
    Session=session,
    Sessions=sessions,
    Level=level,
    Verdict=verdict,
    Anomaly=anomaly,
    How=how,
)
