"""Two or more runs' records as one, for the driver matrix: one run uses one driver
(failspec.drivers), so the report shows both drivers' columns from two runs' records.

The first record is the base (its features, outcomes, metrics and other matrices are the
merged record's); its ``driver_matrix`` becomes every record's observations side by side,
and ``merged_from`` says which runs it holds (their record's path, driver, backend,
PostgreSQL version and scenario outcomes).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from failspec.report import record
from failspec.report.model import ReportError


def read(path: Path) -> dict[str, Any]:
    """The run record at ``path`` (a run.json, or the directory holding one). Raises
    ReportError when it is not one, or records a run that could not start."""
    if not path.is_dir() and path.name != record.RUN_RECORD:
        raise ReportError(f"{path} is not a run record ({record.RUN_RECORD})")
    data = record.read(path if path.is_dir() else path.parent)
    if data.get("setup_error") is not None:
        raise ReportError(f"{path} records a run that could not start: {data['setup_error']}")
    return data


def merge(records: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """One record from ``records`` (each: where it came from, the record), as the
    module's docstring says. Raises ReportError for fewer than two, or for two runs with
    the same driver (the later would hide the earlier's observations)."""
    if len(records) < 2:
        raise ReportError("--merge needs two or more run records")
    drivers = [(data.get("server") or {}).get("driver") or "psycopg2" for _, data in records]
    if len(set(drivers)) != len(drivers):
        raise ReportError(f"--merge needs runs with different drivers, not {', '.join(drivers)}")
    merged = copy.deepcopy(records[0][1])
    matrix: dict[str, Any] = {}
    for _, data in records:
        for failure, cell in (data.get("driver_matrix") or {}).items():
            into = matrix.setdefault(
                failure, {"scenario": cell.get("scenario", ""), "expected": {}, "observed": {}}
            )
            into["expected"].update(cell.get("expected", {}))
            into["observed"].update(cell.get("observed", {}))
    merged["driver_matrix"] = matrix or None
    merged["merged_from"] = [
        {
            "record": source,
            "driver": driver,
            "backend": (data.get("server") or {}).get("backend"),
            "version": (data.get("server") or {}).get("version"),
            "outcomes": data.get("outcomes"),
        }
        for (source, data), driver in zip(records, drivers, strict=True)
    ]
    return merged
