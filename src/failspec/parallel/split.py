"""Which scenarios each parallel worker (or each CI shard) runs: a deterministic,
balanced split of the selected scenarios.

A scenario is named by its location, ``features/<file>.feature:<line>`` (behave's; an
outline's row by the line of its example row). The split is a pure function of the
scenarios (in the run's order), their expected durations and the number of parts, so
every machine that is given the same inputs computes the same parts.

Balance: longest unit first onto the part with the least expected work (LPT: Graham,
"Bounds on multiprocessing timing anomalies", 1969: at most 4/3 of the optimum), ties
broken by the part's index and the unit's first location, so no order of iteration or
hash seed changes it. A unit is one scenario, except for scenarios that share a costly
per-process resource (``group``, e.g. the run's replicated cluster, which each process
starts once for its first ``@replication`` scenario): those stay together, split into
as few consecutive pieces as keep each piece within one part's fair share.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

#: The tag whose scenarios share the per-process replicated cluster (kept together).
REPLICATION_TAG = "replication"
#: The expected duration of a scenario no earlier run measured, when none did (s).
DEFAULT_DURATION = 0.5


@dataclass(frozen=True)
class Item:
    """One selected scenario: its ``location`` (file:line) and the ``group`` of
    scenarios that share a per-process resource with it (None: none)."""

    location: str
    group: str | None = None


@dataclass
class Part:
    """One worker's (or shard's) share: its scenarios in the run's order and their
    expected duration (s)."""

    locations: list[str]
    expected_s: float


def durations(path: Path) -> dict[str, float]:
    """Each scenario's duration plus the harness's overhead around it (s), by location,
    from a run's ``metrics.json`` (failspec.harness.guards.metrics); empty when there is
    no such file or it cannot be read (the split then counts scenarios)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {
            entry["location"]: float(entry["duration_s"]) + float(entry["overhead_ms"]) / 1000
            for entry in data["scenarios"]
            if entry.get("status") != "skipped"
        }
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def expected(items: Sequence[Item], measured: Mapping[str, float]) -> list[float]:
    """The expected duration of each item (s): measured, else the median of those
    measured, else :data:`DEFAULT_DURATION`."""
    known = [measured[i.location] for i in items if i.location in measured]
    fallback = statistics.median(known) if known else DEFAULT_DURATION
    return [measured.get(i.location, fallback) for i in items]


def split(items: Sequence[Item], measured: Mapping[str, float], parts: int) -> list[Part]:
    """``items`` (in the run's order) as ``parts`` balanced parts, each in the run's
    order; every item is in exactly one part. Raises ValueError for ``parts`` < 1."""
    if parts < 1:
        raise ValueError(f"cannot split into {parts} parts")
    weights = expected(items, measured)
    order = {item.location: index for index, item in enumerate(items)}
    units = _units(items, weights, sum(weights) / parts)
    units.sort(key=lambda unit: (-unit[1], order[unit[0][0]]))
    loads = [0.0] * parts
    chosen: list[list[str]] = [[] for _ in range(parts)]
    for locations, weight in units:
        target = min(range(parts), key=lambda index: (loads[index], index))
        loads[target] += weight
        chosen[target].extend(locations)
    return [
        Part(sorted(locations, key=order.__getitem__), round(load, 3))
        for locations, load in zip(chosen, loads, strict=True)
    ]


def shard(items: Sequence[Item], measured: Mapping[str, float], index: int, of: int) -> Part:
    """Shard ``index`` of ``of`` (1-based, as CI matrices count): the same part on every
    machine given the same items and durations. Raises ValueError for a shard outside
    1..of."""
    if not 1 <= index <= of:
        raise ValueError(f"shard {index}/{of}: K must be between 1 and N")
    return split(items, measured, of)[index - 1]


def _units(
    items: Sequence[Item], weights: Sequence[float], share: float
) -> list[tuple[list[str], float]]:
    """Each ungrouped item alone; each group's items in consecutive pieces of about
    ``share`` seconds or less (as few as its total needs)."""
    units: list[tuple[list[str], float]] = []
    groups: dict[str, list[tuple[str, float]]] = {}
    for item, weight in zip(items, weights, strict=True):
        if item.group is None:
            units.append(([item.location], weight))
        else:
            groups.setdefault(item.group, []).append((item.location, weight))
    for members in groups.values():
        total = sum(weight for _, weight in members)
        pieces = max(1, math.ceil(total / share - 1e-9)) if share > 0 else 1
        target = total / pieces
        piece: list[str] = []
        load = 0.0
        for location, weight in members:
            if piece and load + weight / 2 > target:
                units.append((piece, load))
                piece, load = [], 0.0
            piece.append(location)
            load += weight
        units.append((piece, load))
    return units
