"""What each scenario cost: time, the harness's share of it, connections, transactions, rows.

Per scenario:

* ``duration_s``: behave's duration of the scenario (its steps);
* ``overhead_ms``: the harness's own time around it (its hooks: schema hand-over,
  connections closed, the integrity and leak guards);
* ``peak_connections``: the most server connections the scenario's engines held at once;
* ``commits`` / ``rollbacks``: the COMMITs and ROLLBACKs the scenario's connections
  sent (counted by SQLAlchemy's events; exact);
* ``xact_commit`` / ``xact_rollback``: deltas of ``pg_stat_database`` for the suite's
  database over the scenario. They are server-wide: they include the harness's own
  transactions (its polling of pg_stat_activity and pg_blocking_pids while it waits is
  one transaction per poll), and on a shared server other clients'. Servers publish
  these counts from each connection when it ends, or at most about once a second, so the
  harness reads the end figure after the scenario's connections have gone, and a
  connection's share may land in a later scenario. The windows are contiguous (each
  starts where the last ended), so over a run they add up to the server's own count;
* ``rows_changed``: rows the scenario's statements inserted, updated or deleted.

The run writes them all to ``reports/metrics.json`` and prints a summary at the end.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

#: How many of the slowest scenarios the summary names.
SLOWEST = 5


@dataclass
class ScenarioMetrics:
    location: str
    feature: str
    name: str
    status: str = "untested"
    duration_s: float = 0.0
    overhead_ms: float = 0.0
    peak_connections: int = 0
    commits: int = 0
    rollbacks: int = 0
    xact_commit: int = 0
    xact_rollback: int = 0
    rows_changed: int = 0
    skip_reason: str | None = None


def database_counters(admin: Engine) -> tuple[int, int]:
    """Transactions committed and rolled back in the suite's database so far."""
    with admin.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT xact_commit, xact_rollback FROM pg_stat_database "
                "WHERE datname = current_database()"
            )
        ).one()
    return int(row[0]), int(row[1])


@dataclass
class Metrics:
    """The run's figures, scenario by scenario."""

    backend: str
    server_version: str
    scenarios: list[ScenarioMetrics] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    #: pg_stat_database's (xact_commit, xact_rollback) when the last scenario ended.
    last_counters: tuple[int, int] | None = None

    def add(self, entry: ScenarioMetrics) -> None:
        self.scenarios.append(entry)

    def totals(self) -> dict[str, Any]:
        ran = [s for s in self.scenarios if s.status != "skipped"]
        return {
            "duration_s": round(sum(s.duration_s for s in ran), 3),
            "overhead_ms": round(sum(s.overhead_ms for s in ran), 1),
            "overhead_ms_median": round(statistics.median(s.overhead_ms for s in ran), 2)
            if ran
            else 0.0,
            "commits": sum(s.commits for s in ran),
            "rollbacks": sum(s.rollbacks for s in ran),
            "xact_commit": sum(s.xact_commit for s in ran),
            "xact_rollback": sum(s.xact_rollback for s in ran),
            "rows_changed": sum(s.rows_changed for s in ran),
            "peak_connections": max((s.peak_connections for s in ran), default=0),
        }

    def slowest(self) -> list[ScenarioMetrics]:
        return sorted(self.scenarios, key=lambda s: s.duration_s, reverse=True)[:SLOWEST]

    def as_json(self) -> dict[str, Any]:
        return {
            "run": {
                "backend": self.backend,
                "server_version": self.server_version,
                "scenarios": len(self.scenarios),
                "duration_s": round(time.monotonic() - self.started, 3),
                "totals": self.totals(),
                "slowest": [
                    {"location": s.location, "name": s.name, "duration_s": s.duration_s}
                    for s in self.slowest()
                ],
            },
            "scenarios": [asdict(s) for s in self.scenarios],
        }

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_json(), indent=2) + "\n")

    def summary(self) -> list[str]:
        """The lines printed at the end of a run."""
        if not self.scenarios:
            return []
        t = self.totals()
        lines = [
            f"metrics: {len(self.scenarios)} scenarios, {t['duration_s']:.1f} s in scenarios, "
            f"harness {t['overhead_ms'] / 1000:.1f} s (median {t['overhead_ms_median']:.1f} ms), "
            f"{t['commits']} commits and {t['rollbacks']} rollbacks by the scenarios "
            f"({t['xact_commit']} and {t['xact_rollback']} on the server), "
            f"{t['rows_changed']} rows changed, at most {t['peak_connections']} connections",
            "metrics: slowest: "
            + "; ".join(f"{s.duration_s:.2f} s {s.name} ({s.location})" for s in self.slowest()),
        ]
        return lines
