"""What each scenario cost: time, the harness's share of it, connections, transactions, rows.

Per scenario:

* ``duration_s``: behave's duration of the scenario (its steps);
* ``overhead_ms``: the harness's own time around it (its hooks: schema hand-over,
  connections closed, the integrity and leak guards);
* ``peak_connections``: the most server connections the scenario's engines held at once;
* ``commits`` / ``rollbacks`` / ``commits_unknown``: how the server ended the scenario's
  own transactions (``failspec.harness.scenario.workspace.Workspace._count``): committed; rolled
  back (a ROLLBACK, a COMMIT of a failed transaction, which the server answers with
  ROLLBACK, or a COMMIT it refused, e.g. with ``serialization_failure``); or a COMMIT
  whose reply never came (the connection was lost), whose outcome is not known;
* ``xact_commit`` / ``xact_rollback``: deltas of ``pg_stat_database`` for the suite's
  database over the scenario. They are server-wide: they include the harness's own
  transactions (its polling of pg_stat_activity and pg_blocking_pids while it waits is
  one transaction per poll), and on a shared server other clients'. Servers publish
  these counts from each connection when it ends, or at most about once a second, so the
  harness reads the end figure after the scenario's connections have gone, and a
  connection's share may land in a later scenario. The windows are contiguous (each
  starts where the last ended), so over a run they add up to the server's own count,
  except across a statistics reset: crash recovery discards the statistics (PostgreSQL's
  "The Cumulative Statistics System"), and so does ``pg_stat_reset()``. A window that
  crosses a reset or a server restart has no known delta: both are None for that
  scenario, and the totals leave it out and say how many they left out;
* ``ledger_commits``: the scenario's transactions that committed a change to the ledger's
  tables (``accounts``, ``transactions``), counted by the server, so the same whatever data
  layer ran and however it commits (a layer on the driver alone commits where SQLAlchemy's
  events, and so ``commits``, never see it): a trigger of the harness on both tables
  (:data:`LEDGER_CHANGES_DDL`, created with each scenario's schema) notes the transaction
  id (``pg_current_xact_id()``) and ``application_name`` of every row changed, in the
  changing transaction itself, so a transaction rolled back leaves no note; the figure is
  the number of distinct transaction ids noted under the scenario's ``application_name``
  (the harness's own seeding, on its observer's connections, is not the scenario's).
  Read-only transactions and transactions on other tables are not in it; None when it
  could not be read;
* ``rows_changed``: rows the scenario's statements inserted, updated or deleted.

The run writes them all to ``reports/metrics.json`` and prints a summary at the end.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

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
    commits_unknown: int = 0
    #: None: the scenario's window crossed a statistics reset, so the delta is not known.
    xact_commit: int | None = 0
    xact_rollback: int | None = 0
    rows_changed: int = 0
    #: None: the server's count could not be read (see the module's docstring).
    ledger_commits: int | None = 0
    skip_reason: str | None = None


@dataclass(frozen=True)
class DatabaseCounters:
    """pg_stat_database's transaction counts for the suite's database at one moment, and
    what tells whether they were reset since another reading."""

    xact_commit: int
    xact_rollback: int
    #: pg_stat_database.stats_reset: set by pg_stat_reset() (None: never reset so).
    stats_reset: datetime | None = None
    #: When the server's processes last started: the checkpointer's backend_start. A crash
    #: restarts them all, even where the postmaster survives it (restart_after_crash), and
    #: crash recovery discards the statistics without touching stats_reset (measured on
    #: PostgreSQL 18.6); a restart starts them too. Where the harness's role may not see
    #: the checkpointer, the postmaster's start time.
    server_started: datetime | None = None

    def transactions_since(self, before: DatabaseCounters) -> tuple[int | None, int | None]:
        """(committed, rolled back) on the server since ``before``; (None, None) when the
        statistics were reset in between, so the difference means nothing: stats_reset
        changed, the server's processes were restarted, or a counter went down (they only
        grow between resets)."""
        reset = (
            self.stats_reset != before.stats_reset
            or self.server_started != before.server_started
            or self.xact_commit < before.xact_commit
            or self.xact_rollback < before.xact_rollback
        )
        if reset:
            return None, None
        return self.xact_commit - before.xact_commit, self.xact_rollback - before.xact_rollback


def database_counters(admin: Engine | Connection) -> DatabaseCounters:
    """Transactions committed and rolled back in the suite's database so far (one query;
    pg_stat_activity's function rather than the view, whose joins cost ~0.3 ms more).

    ``admin``: the run's admin engine, or a connection of it already checked out."""
    with admin.connect() if isinstance(admin, Engine) else contextlib.nullcontext(admin) as conn:
        row = conn.execute(
            sa.text(
                "SELECT xact_commit, xact_rollback, stats_reset, greatest("
                "pg_postmaster_start_time(), (SELECT min(backend_start) "
                "FROM pg_stat_get_activity(NULL) WHERE backend_type = 'checkpointer')) "
                "FROM pg_stat_database WHERE datname = current_database()"
            )
        ).one()
    return DatabaseCounters(int(row[0]), int(row[1]), row[2], row[3])


@dataclass
class Metrics:
    """The run's figures, scenario by scenario."""

    backend: str
    server_version: str
    scenarios: list[ScenarioMetrics] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    #: pg_stat_database's counters when the last scenario ended.
    last_counters: DatabaseCounters | None = None

    def add(self, entry: ScenarioMetrics) -> None:
        self.scenarios.append(entry)

    def totals(self) -> dict[str, Any]:
        ran = [s for s in self.scenarios if s.status != "skipped"]
        # Only known deltas are added up: never one across a statistics reset.
        counted = [s for s in ran if s.xact_commit is not None and s.xact_rollback is not None]
        return {
            "duration_s": round(sum(s.duration_s for s in ran), 3),
            "overhead_ms": round(sum(s.overhead_ms for s in ran), 1),
            "overhead_ms_median": round(statistics.median(s.overhead_ms for s in ran), 2)
            if ran
            else 0.0,
            "commits": sum(s.commits for s in ran),
            "rollbacks": sum(s.rollbacks for s in ran),
            "commits_unknown": sum(s.commits_unknown for s in ran),
            "xact_commit": sum(s.xact_commit for s in counted),
            "xact_rollback": sum(s.xact_rollback for s in counted),
            "xact_not_counted": len(ran) - len(counted),
            "rows_changed": sum(s.rows_changed for s in ran),
            "ledger_commits": sum(s.ledger_commits or 0 for s in ran),
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
        unknown = (
            f" and {_count(t['commits_unknown'], 'COMMIT')} with no reply, outcome unknown"
            if t["commits_unknown"]
            else ""
        )
        not_counted = (
            f"; {_count(t['xact_not_counted'], 'scenario')} across a statistics reset or a "
            "server restart not counted"
            if t["xact_not_counted"]
            else ""
        )
        lines = [
            f"metrics: {len(self.scenarios)} scenarios, {t['duration_s']:.1f} s in scenarios, "
            f"harness {t['overhead_ms'] / 1000:.1f} s (median {t['overhead_ms_median']:.1f} ms), "
            f"{t['ledger_commits']} commits changing the ledger (counted by the server), "
            f"{t['commits']} commits and {t['rollbacks']} rollbacks through SQLAlchemy{unknown} "
            f"({t['xact_commit']} and {t['xact_rollback']} on the server{not_counted}), "
            f"{t['rows_changed']} rows changed, at most {t['peak_connections']} connections",
            "metrics: slowest: "
            + "; ".join(f"{s.duration_s:.2f} s {s.name} ({s.location})" for s in self.slowest()),
        ]
        return lines


#: The harness's note of every change to the ledger's tables (see ``ledger_commits`` in the
#: module's docstring), run in each new scenario schema (its search_path) after the
#: ledger's tables are made. The function keeps that schema as its search_path.
LEDGER_CHANGES_DDL = (
    "CREATE TABLE failspec_ledger_changes (xid xid8 NOT NULL, application_name text NOT NULL)",
    "CREATE FUNCTION failspec_note_change() RETURNS trigger LANGUAGE plpgsql "
    "SET search_path FROM CURRENT AS $$ BEGIN "
    "INSERT INTO failspec_ledger_changes "
    "VALUES (pg_current_xact_id(), current_setting('application_name')); "
    "RETURN NULL; END $$",
    *(
        f"CREATE TRIGGER failspec_ledger_changes AFTER INSERT OR UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION failspec_note_change()"
        for table in ("accounts", "transactions")
    ),
)


def note_ledger_changes(conn: Connection) -> None:
    """Create the harness's note of ledger changes in the connection's schema (its
    search_path), on the ledger's tables, which must exist."""
    for ddl in LEDGER_CHANGES_DDL:
        conn.execute(sa.text(ddl))


def ledger_commits(conn: Connection, schema: str, application_name: str) -> int | None:
    """How many transactions carrying ``application_name`` committed a change to the
    ledger's tables in ``schema`` (see ``ledger_commits`` in the module's docstring); None
    when the schema has no note of them (made without :func:`note_ledger_changes`)."""
    try:
        count = conn.execute(
            sa.text(
                f"SELECT count(DISTINCT xid) FROM {schema}.failspec_ledger_changes "
                "WHERE application_name = :name"
            ),
            {"name": application_name},
        ).scalar_one()
    except sa.exc.ProgrammingError:
        return None
    return int(count)


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
