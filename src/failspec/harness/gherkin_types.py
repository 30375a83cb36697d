"""Typed step parameters: a step fails at once on a value the suite does not know.

A parameter that names one of a fixed set of phrases is a *choice*: its pattern matches
those phrases and nothing else, so a misspelt phrase leaves the step undefined and
``behave --dry-run`` (scripts/check_steps.py) reports it before any server starts. Every
choice is kept in :data:`CHOICES`, which scripts/steps_catalog.py lists in
docs/steps-catalog.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import parse
from behave import register_type

from failspec.conditions import CLIENT_CONDITIONS, CONDITION_NAMES, is_known_condition
from failspec.harness import driver_matrix
from failspec.harness.concurrency import generated, isolation
from failspec.harness.faults import hangs
from failspec.harness.faults.server import LOST_CONNECTION
from failspec.ledger.mistakes import MISTAKES

#: Each choice type's name -> the phrases it accepts, in the order the catalogue lists them.
CHOICES: dict[str, tuple[str, ...]] = {}


def _one_of(phrases: Iterable[str]) -> str:
    """A regular expression matching exactly one of ``phrases``: escaped, longest first so a
    phrase that begins another never shadows it."""
    return "|".join(re.escape(p) for p in sorted(phrases, key=len, reverse=True))


def choice(name: str, phrases: Mapping[str, Any] | Iterable[str], *, listed: bool = True) -> None:
    """Register the parse type ``name``: one of ``phrases`` (a mapping gives each phrase's
    value, an iterable the phrase itself). ``listed`` puts its phrases in the catalogue
    (a type of hundreds of names says what they are in a docstring instead)."""
    mapping = dict(phrases) if isinstance(phrases, Mapping) else {p: p for p in phrases}

    # parse_type's TypeBuilder.make_enum does the same, but neither escapes the phrases nor
    # puts the longer first (and is not a pinned dependency of ours, only of behave's).
    @parse.with_pattern(_one_of(mapping))
    def convert(text: str) -> Any:
        return mapping[text]

    if listed:
        CHOICES[name] = tuple(mapping)
    register_type(**{name: convert})


#: PostgreSQL's condition names (Appendix A, "PostgreSQL Error Codes") and the suite's client
#: ones (failspec.conditions.CLIENT_CONDITIONS).
CONDITIONS = (*sorted(set(CONDITION_NAMES.values())), *CLIENT_CONDITIONS)


@parse.with_pattern(r"-?\d+(?:\.\d{2})?")
def money(text: str) -> Decimal:
    """An amount in currency units: with cents (``40.00``) or a whole number (``40``), as a
    client may send the same amount either way."""
    return Decimal(text)


@parse.with_pattern(r"\d+(\.\d+)?")
def seconds(text: str) -> float:
    return float(text)


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


@parse.with_pattern(r"none|[a-z]+ -?\d+\.\d{2}(?:, [a-z]+ -?\d+\.\d{2})*")
def found(text: str) -> dict[str, Decimal]:
    """What a search found: ``none``, or accounts with their balances as for ``Balances``."""
    return {} if text == "none" else balances(text)


@parse.with_pattern(r"ref-\d+")
def reference(text: str) -> str:
    return text


@parse.with_pattern(r"ref-\d+(?:, ref-\d+)*")
def references(text: str) -> list[str]:
    """``ref-301, ref-303`` -> ["ref-301", "ref-303"]."""
    return text.split(", ")


@parse.with_pattern(r"T[1-9]")
def session(text: str) -> str:
    return text


@parse.with_pattern(r"T[1-9](?:, T[1-9])*(?: and T[1-9])?")
def sessions(text: str) -> list[str]:
    return re.findall(r"T[1-9]", text)


register_type(
    Money=money,
    Seconds=seconds,
    Account=account,
    Accounts=accounts,
    Balances=balances,
    Found=found,
    Reference=reference,
    References=references,
    Session=session,
    Sessions=sessions,
)

choice("Condition", CONDITIONS, listed=False)
#: What a batch of payments came in: a batch recorded in one transaction, or an import.
choice("Batch", ("batch", "import"))


@parse.with_pattern(driver_matrix.PATTERN)
def per_driver(text: str) -> driver_matrix.PerDriver:
    """An outcome per driver, where the drivers differ (failspec.harness.driver_matrix):
    "connection_lost on psycopg2, admin_shutdown on psycopg"; each a condition name or
    "succeeded"."""
    stated = driver_matrix.PerDriver.parse(text)
    for outcome in stated.outcomes.values():
        if outcome != "succeeded" and not is_known_condition(outcome):
            raise ValueError(f"{outcome!r} is no condition name (PostgreSQL's or the suite's)")
    return stated


register_type(PerDriver=per_driver)
choice("Mistake", MISTAKES)
choice("Level", isolation.LEVELS)
choice("Verdict", (isolation.ALLOWED, isolation.PREVENTED))
choice("Anomaly", tuple(isolation.ANOMALIES))
choice("How", (isolation.BY_ABORT, isolation.BY_WAIT, isolation.BY_SNAPSHOT, isolation.NOTHING))

# -- generated workloads (failspec.harness.concurrency.generated): one anomaly, or several
choice("Cycle", generated.PHRASES)
_CYCLE = _one_of(generated.PHRASES)


@parse.with_pattern(rf"(?:{_CYCLE})(?:, (?:{_CYCLE}))*(?: (?:and|or) (?:{_CYCLE}))?")
def cycles(text: str) -> list[str]:
    """``dirty write (G0), aborted read (G1a) or write skew (G2-item)`` -> their classes
    (the phrases of ``Cycle``, joined by commas and a last "and" or "or")."""
    return [generated.PHRASES[p] for p in re.findall(_CYCLE, text)]


register_type(Cycles=cycles)

# -- how a request waits when the database goes silent (failspec.harness.faults.hangs)
choice("Phase", hangs.PHASES)
choice("Silence", hangs.FAULTS)
choice("Bound", hangs.BOUNDS)
choice("Result", ("fails", "succeeds"))
#: How a request ended: "succeeded", or a condition name.
choice("Ended", ("succeeded", *CONDITIONS), listed=False)

# -- phrases for the ways an operation goes wrong
#: How the application connects wrongly: the connection parameters it gets wrong.
choice(
    "ConnectionProblem",
    {
        "a wrong password": {"password": "not-the-password"},
        "a user that does not exist": {"user": "nobody_at_all"},
        "a database that does not exist": {"database": "no_such_ledger"},
    },
)
#: An operation that breaks a rule of the ledger: (its phrase, "record" or "transfer", its
#: arguments as text).
_RULE_BREACHES = {
    "a payment reusing the reference of a committed one": ("record", ("dave", "40.00", "ref-001")),
    "a payment to an account that does not exist": ("record", ("nobody", "40.00", "ref-201")),
    "a payment of zero": ("record", ("dave", "0.00", "ref-202")),
    "a payment that names no account": ("record", (None, "40.00", "ref-203")),
    "a transfer of more than the source account holds": (
        "transfer",
        ("carol", "dave", "500.00", "ref-204"),
    ),
}
choice("RuleBreach", {phrase: (phrase, *how) for phrase, how in _RULE_BREACHES.items()})
#: What an insert into the ledger's operations fails with (failspec.harness.faults.server):
#: a lost connection, or a PostgreSQL condition raised inside the server.
choice(
    "InjectedFailure",
    {"a lost connection": LOST_CONNECTION, **{c: c for c in sorted(set(CONDITION_NAMES.values()))}},
    listed=False,
)
#: Which payment of a batch: its index, from the end when negative.
choice("Position", {"first": 0, "second": 1, "last": -1})
#: synchronous_commit's levels, weakest first (docs: "Write Ahead Log", synchronous_commit).
choice("SyncLevel", ("off", "local", "remote_write", "on", "remote_apply"))
#: How the application's connection string names a cluster's servers (libpq: "Specifying
#: Multiple Hosts", target_session_attrs): (target_session_attrs, both servers listed).
choice(
    "ConnectionString",
    {
        "to both servers, asking for one that accepts writes": ("read-write", True),
        "to both servers, taking the first that answers": (None, True),
        "to the old primary's address only": (None, False),
    },
)
#: Whether a server holds something.
choice("Holds", {"holds": True, "does not hold": False})
