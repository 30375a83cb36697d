"""PyHamcrest matchers on captured outcomes; each mismatch says expected vs actual."""

from __future__ import annotations

from typing import Any

from hamcrest.core.base_matcher import BaseMatcher
from hamcrest.core.description import Description

from failspec.conditions import first_line
from failspec.harness.outcomes import Outcome


class _OutcomeMatcher(BaseMatcher[Outcome]):
    def describe_mismatch(self, item: Any, mismatch_description: Description) -> None:
        if not isinstance(item, Outcome):
            mismatch_description.append_text("was not an outcome: ").append_description_of(item)
            return
        mismatch_description.append_text(item.describe())


class FailsWith(_OutcomeMatcher):
    def __init__(self, condition: str) -> None:
        self.condition = condition

    def _matches(self, item: Any) -> bool:
        return isinstance(item, Outcome) and item.condition == self.condition

    def describe_to(self, description: Description) -> None:
        description.append_text(f"an action that fails with {self.condition}")


class Succeeds(_OutcomeMatcher):
    def _matches(self, item: Any) -> bool:
        return isinstance(item, Outcome) and item.succeeded

    def describe_to(self, description: Description) -> None:
        description.append_text("an action that succeeds")


class Invalidated(_OutcomeMatcher):
    def _matches(self, item: Any) -> bool:
        return isinstance(item, Outcome) and item.connection_invalidated

    def describe_to(self, description: Description) -> None:
        description.append_text("an action whose connection the data layer reports invalidated")


class MessageMentions(_OutcomeMatcher):
    def __init__(self, text: str) -> None:
        self.text = text

    def _matches(self, item: Any) -> bool:
        return isinstance(item, Outcome) and item.error is not None and self.text in item.message

    def describe_to(self, description: Description) -> None:
        description.append_text(f"an error whose message mentions {self.text!r}")

    def describe_mismatch(self, item: Any, mismatch_description: Description) -> None:
        if isinstance(item, Outcome) and item.error is not None:
            mismatch_description.append_text(f"the message was {first_line(item.error)!r}")
        else:
            super().describe_mismatch(item, mismatch_description)


class NamesViolated(_OutcomeMatcher):
    def __init__(self, rule: str) -> None:
        self.rule = rule

    def _matches(self, item: Any) -> bool:
        return isinstance(item, Outcome) and self.rule in (
            item.violated_constraint,
            item.violated_column,
        )

    def describe_to(self, description: Description) -> None:
        description.append_text(f"an error the server reports as breaking {self.rule!r}")

    def describe_mismatch(self, item: Any, mismatch_description: Description) -> None:
        if isinstance(item, Outcome) and item.error is not None:
            mismatch_description.append_text(
                f"the server named constraint {item.violated_constraint!r}, "
                f"column {item.violated_column!r}"
            )
        else:
            super().describe_mismatch(item, mismatch_description)


def fails_with(condition: str) -> FailsWith:
    """Matches an outcome that failed with the named PostgreSQL (or client) condition."""
    return FailsWith(condition)


def succeeds() -> Succeeds:
    """Matches an outcome that returned without an error."""
    return Succeeds()


def reports_connection_invalidated() -> Invalidated:
    """Matches an outcome whose error SQLAlchemy flagged ``connection_invalidated``."""
    return Invalidated()


def message_mentions(text: str) -> MessageMentions:
    """Matches an outcome whose error message contains ``text``."""
    return MessageMentions(text)


def names_violated(rule: str) -> NamesViolated:
    """Matches an error whose server diagnostics name the constraint (or column) broken."""
    return NamesViolated(rule)
