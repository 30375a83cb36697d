"""README's guide "Specify your own data layer" follows the code it describes: every field
of the shapes a layer takes and returns, and of the retry policy it is given, is listed
there with its type as the dataclass declares it; the capabilities' short names too."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import pytest

from failspec.ledger import ImportReport, Payment, Receipt, Rejection, RetryPolicy, Transfer, port

README = Path(__file__).resolve().parent.parent / "README.md"


def _guide() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Specify your own data layer")
    end = text.index("\n## ", start + 1)
    # Markdown wraps lines anywhere: compare with every run of white space as one space.
    return re.sub(r"\s+", " ", text[start:end])


@pytest.mark.parametrize(
    "shape", [Payment, Transfer, Receipt, ImportReport, Rejection, RetryPolicy]
)
def test_every_field_of_a_shape_is_in_the_guide_with_its_type(shape: type) -> None:
    guide = _guide()
    missing = [
        f"`{shape.__name__}.{f.name}` (`{f.type}`"
        for f in dataclasses.fields(shape)
        if f"`{shape.__name__}.{f.name}` (`{f.type}`" not in guide
    ]
    assert not missing, f"README's guide lacks (or has another type for) {missing}"


def test_the_guide_says_what_the_retry_policy_passes_to_the_operation() -> None:
    operation = inspect.signature(RetryPolicy.run).parameters["operation"]
    assert operation.annotation == "Callable[[int], T]"  # one argument: the attempt's number
    assert "`RetryPolicy.run(operation)`" in _guide()
    assert "calls `operation(attempt)` with the attempt's number (`int`, from 1)" in _guide()


def test_the_guide_names_every_capability_by_the_name_missing_capabilities_takes() -> None:
    guide = _guide()
    for name in port.NAMES.values():
        assert f"`{name}`" in guide, name
    assert "connection_invalidated" in guide
    assert port.CONNECTION_INVALIDATED.split(" — ")[0] in guide


def test_the_guide_says_how_to_raise_the_ledgers_errors_and_their_conditions() -> None:
    from failspec.ledger import NotReplicated, ReferenceConflict, UnknownAccount

    guide = _guide()
    for error in (ReferenceConflict, UnknownAccount, NotReplicated):
        assert f"raise {error.__name__}(" in guide, error
        assert f"`{error.condition}`" in guide, error
        assert error("one message").args == ("one message",)  # built from one message


def test_the_guide_says_what_shape_offers_each_capability() -> None:
    guide = _guide()
    for attribute in ("between_legs", "before_commit", "deadline", "lock_in_order"):
        assert f"`{attribute}`" in guide
    assert "set to `None` in `__init__`, which the harness fills in" in guide
    assert "`unit_of_work()`, a method returning a context manager" in guide


@pytest.mark.parametrize("operation", ["record_all", "import_payments"])
def test_a_batch_operation_says_it_credits_the_balances(operation: str) -> None:
    assert "credit" in (getattr(port.DataLayer, operation).__doc__ or "")
