"""Where the drivers differ: outcomes the specification states per driver, and the driver
matrix, what each driver reported for each such failure.

A scenario states a per-driver outcome as ``X on psycopg2, Y on psycopg`` (a
:class:`PerDriver`), never one weaker sentence that fits both. One run uses one driver
(``failspec.drivers``), so its matrix holds that driver's observations next to what the
specification expects of both; ``python -m failspec.report --merge`` puts two runs'
matrices side by side (failspec.report.merge).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from failspec import drivers
from failspec.conditions import first_line, sqlstate_of
from failspec.harness.outcomes import Outcome

#: The form of a per-driver outcome in a step: ``<outcome> on psycopg2, <outcome> on psycopg``.
PATTERN = r"[a-z_]+ on psycopg2, [a-z_]+ on psycopg"
_FORM = re.compile(r"([a-z_]+) on (psycopg2), ([a-z_]+) on (psycopg)")


@dataclass(frozen=True)
class PerDriver:
    """An outcome (a condition name, or ``succeeded``) for each driver."""

    outcomes: Mapping[str, str]

    @classmethod
    def parse(cls, text: str) -> PerDriver:
        """``"connection_lost on psycopg2, admin_shutdown on psycopg"``; raises ValueError
        for another form."""
        found = _FORM.fullmatch(text)
        if found is None:
            raise ValueError(f"not a per-driver outcome ({PATTERN}): {text!r}")
        first, first_driver, second, second_driver = found.groups()
        return cls({first_driver: first, second_driver: second})

    @property
    def expected(self) -> str:
        """The outcome the run's driver must give."""
        return self.outcomes[drivers.current().name]

    def __str__(self) -> str:
        return ", ".join(f"{outcome} on {driver}" for driver, outcome in self.outcomes.items())


def observed(outcome: Outcome, condition: str | None = None) -> dict[str, Any]:
    """What the run's driver reported for a captured ``outcome``: its condition name (or
    ``condition``, when the caller names it its own way), SQLSTATE, first message line, and
    whether SQLAlchemy took the connection for lost (``connection_invalidated``)."""
    error = outcome.error
    return {
        "condition": condition or ("succeeded" if error is None else outcome.condition),
        "sqlstate": None if error is None else sqlstate_of(error),
        "message": None if error is None else first_line(error),
        "connection_invalidated": bool(getattr(error, "connection_invalidated", False)),
    }


class DriverMatrix:
    """The run's failures where the drivers differ, by the failure's words (the
    scenario's name): what each driver must report, and what this run's driver did."""

    def __init__(self) -> None:
        self.cells: dict[str, dict[str, Any]] = {}

    def record(
        self, failure: str, expected: PerDriver, seen: dict[str, Any], scenario: str
    ) -> None:
        """Note what the run's driver reported (``seen``: :func:`observed`) for ``failure``,
        stated per driver as ``expected``, by the scenario at ``scenario`` (file:line)."""
        driver = drivers.current().name
        cell = self.cells.setdefault(
            failure, {"scenario": scenario, "expected": dict(expected.outcomes), "observed": {}}
        )
        cell["observed"][driver] = {**seen, "as_expected": seen["condition"] == expected.expected}

    def as_json(self) -> dict[str, dict[str, Any]]:
        return self.cells

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_json(), indent=2, sort_keys=True) + "\n")
