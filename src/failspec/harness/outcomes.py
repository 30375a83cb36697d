"""Capturing what an action did (rows, a value, or an error), never raising it.

A When-step never raises: it captures an :class:`Outcome`, and Then-steps assert on it.
Errors are named by :mod:`failspec.conditions`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy.exc

from failspec import drivers
from failspec.conditions import NamedFailure, condition_of, first_line, sqlstate_of

log = logging.getLogger("failspec.outcome")


@dataclass
class Outcome:
    """What one action did: the rows it returned, or the error it raised."""

    action: str
    rows: list[Any] | None = None
    error: BaseException | None = None
    elapsed: float = 0.0
    value: Any = None
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.error is None

    @property
    def condition(self) -> str | None:
        return condition_of(self.error) if self.error is not None else None

    @property
    def sqlstate(self) -> str | None:
        return sqlstate_of(self.error) if self.error is not None else None

    @property
    def message(self) -> str:
        if self.error is None:
            return ""
        dbapi = getattr(self.error, "orig", None) or self.error
        return str(dbapi).strip()

    @property
    def violated_constraint(self) -> str | None:
        """The constraint the server reports broken (its diagnostics, not the message)."""
        return getattr(self._diag, "constraint_name", None)

    @property
    def violated_column(self) -> str | None:
        return getattr(self._diag, "column_name", None)

    @property
    def _diag(self) -> Any:
        return getattr(getattr(self.error, "orig", self.error), "diag", None)

    @property
    def connection_invalidated(self) -> bool:
        return bool(getattr(self.error, "connection_invalidated", False))

    def describe(self) -> str:
        if self.error is None:
            result = f"{len(self.rows)} row(s)" if self.rows is not None else repr(self.value)
            return f"{self.action} succeeded ({result}) in {self.elapsed:.3f} s"
        name = self.condition or type(self.error).__name__
        extra = " (connection invalidated)" if self.connection_invalidated else ""
        return f"{self.action} failed with {name}{extra}: {first_line(self.error)}"


def capture(action: str, fn: Callable[[], Any]) -> Outcome:
    """Run ``fn`` and capture its result or its error; never raise a database error.

    ``fn`` returns a list of rows, or any other value (kept as ``Outcome.value``).
    """
    started = time.monotonic()
    captured: tuple[type[BaseException], ...] = (
        sqlalchemy.exc.SQLAlchemyError, NamedFailure, *drivers.driver_errors(),
    )  # fmt: skip
    try:
        result = fn()
    except captured as error:
        outcome = Outcome(action, error=error, elapsed=time.monotonic() - started)
    else:
        elapsed = time.monotonic() - started
        if isinstance(result, list):
            outcome = Outcome(action, rows=result, elapsed=elapsed)
        else:
            outcome = Outcome(action, value=result, elapsed=elapsed)
    log.info("%s", outcome.describe())
    return outcome
