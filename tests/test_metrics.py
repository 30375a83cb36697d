"""The run's metrics: totals, the slowest scenarios, the JSON and the closing summary; how
the scenario's own transactions ended, as the server answered; the server's counts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from failspec.harness import servers
from failspec.harness.guards.metrics import (
    DatabaseCounters,
    Metrics,
    ScenarioMetrics,
    database_counters,
)
from failspec.harness.scenario.workspace import Run, Workspace
from failspec.harness.servers.settings import Settings
from failspec.harness.waiting import until


def _metrics() -> Metrics:
    metrics = Metrics("embedded", "18.6")
    for i, duration in enumerate([0.5, 2.0, 0.1]):
        metrics.add(
            ScenarioMetrics(
                f"features/x.feature:{i}",
                "X",
                f"s{i}",
                "passed",
                duration,
                3.0,
                i + 1,
                commits=2,
                rollbacks=1,
                xact_commit=5,
                xact_rollback=1,
                rows_changed=4,
            )
        )
    metrics.add(ScenarioMetrics("features/x.feature:9", "X", "skipped one", "skipped"))
    return metrics


def test_totals_leave_out_skipped_scenarios() -> None:
    totals = _metrics().totals()
    assert totals["duration_s"] == 2.6
    assert totals["commits"] == 6
    assert totals["peak_connections"] == 3
    assert totals["overhead_ms_median"] == 3.0


def test_the_slowest_scenarios_come_first() -> None:
    assert [s.name for s in _metrics().slowest()][:2] == ["s1", "s0"]


def test_the_json_holds_the_run_and_every_scenario(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    _metrics().write(path)
    data = json.loads(path.read_text())
    assert data["run"]["backend"] == "embedded"
    assert data["run"]["slowest"][0]["location"] == "features/x.feature:1"
    assert len(data["scenarios"]) == 4
    assert data["scenarios"][3]["status"] == "skipped"


def test_the_summary_is_two_lines_naming_totals_and_the_slowest() -> None:
    lines = _metrics().summary()
    assert len(lines) == 2
    assert "4 scenarios" in lines[0]
    assert lines[1].startswith("metrics: slowest: 2.00 s s1")


# -- the server's counters across a statistics reset ---------------------------------------

STARTED = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


def test_the_servers_counts_over_a_scenario_are_the_difference_of_two_readings() -> None:
    before = DatabaseCounters(100, 7, None, STARTED)
    assert DatabaseCounters(127, 9, None, STARTED).transactions_since(before) == (27, 2)


@pytest.mark.parametrize(
    "after",
    [
        # crash recovery discards the statistics: the counters start again from zero
        DatabaseCounters(3, 1, None, STARTED + timedelta(seconds=5)),
        # ... and may have grown past the old figures by the time they are read again
        DatabaseCounters(5000, 900, None, STARTED + timedelta(seconds=5)),
        # pg_stat_reset() sets stats_reset
        DatabaseCounters(120, 8, STARTED + timedelta(seconds=5), STARTED),
        # a counter that went down was reset, whatever else says so
        DatabaseCounters(130, 2, None, STARTED),
    ],
    ids=["crash", "crash-then-busy", "pg_stat_reset", "counter-down"],
)
def test_a_window_across_a_statistics_reset_has_no_known_count(after: DatabaseCounters) -> None:
    assert after.transactions_since(DatabaseCounters(100, 7, None, STARTED)) == (None, None)


def test_totals_never_add_an_unknown_count_and_the_summary_says_what_it_left_out() -> None:
    metrics = _metrics()
    crashed = ScenarioMetrics("features/x.feature:7", "X", "crash", "passed", 1.0)
    crashed.xact_commit, crashed.xact_rollback = None, None
    crashed.commits_unknown = 2
    metrics.add(crashed)
    totals = metrics.totals()
    assert (totals["xact_commit"], totals["xact_rollback"]) == (15, 3)
    assert totals["xact_not_counted"] == 1
    assert (
        "6 commits and 3 rollbacks through SQLAlchemy and 2 COMMITs with no reply, outcome "
        "unknown (15 and 3 on the server; 1 scenario across a statistics reset or a server "
        "restart not counted)"
    ) in metrics.summary()[0]
    assert "no reply" not in _metrics().summary()[0]  # said only when there are some


@pytest.mark.server
def test_a_crash_resets_the_servers_counts_and_the_harness_notices(tmp_path: Path) -> None:
    server = servers.start(Settings(backend="embedded"))
    admin = server.engine(isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        before = database_counters(admin)
        server.crash()
        server.restart()
        # Both counters past the old figures, so that none went down: the restart tells.
        now = until(
            lambda: _past(before, _rolled_back_and_read(admin)), timeout=30,
            what="the server's counters going past their figures before the crash",
        )  # fmt: skip
        assert now.transactions_since(before) == (None, None)
        assert database_counters(admin).transactions_since(now) != (None, None)
    finally:
        admin.dispose()
        server.stop()


def _rolled_back_and_read(admin: sa.Engine) -> DatabaseCounters:
    with admin.connect() as conn:  # AUTOCOMMIT: each BEGIN ... ROLLBACK is one rollback
        for _ in range(5):
            conn.exec_driver_sql("BEGIN")
            conn.exec_driver_sql("ROLLBACK")
    return database_counters(admin)


def _past(before: DatabaseCounters, now: DatabaseCounters) -> DatabaseCounters | None:
    above = now.xact_commit > before.xact_commit and now.xact_rollback > before.xact_rollback
    return now if above else None


# -- how the server ended the scenario's own transactions -----------------------------------


def ended(workspace: Workspace) -> tuple[int, int, int]:
    """(commits, rollbacks, commits with no reply) the workspace counted."""
    return workspace.commits, workspace.rollbacks, workspace.commits_unknown


@pytest.fixture
def workspace(run: Run) -> Iterator[Workspace]:
    the_workspace = run.workspace("counted")
    with the_workspace.observe() as conn:  # the run's own connection: not counted
        conn.execute(sa.text("CREATE TABLE t (x int UNIQUE DEFERRABLE INITIALLY DEFERRED)"))
        conn.commit()
    yield the_workspace
    the_workspace.close()


@pytest.mark.server
def test_a_commit_the_server_makes_counts_as_a_commit(workspace: Workspace) -> None:
    with workspace.engine().connect() as conn:
        conn.execute(sa.text("INSERT INTO t VALUES (1)"))
        conn.commit()
    assert ended(workspace) == (1, 0, 0)


@pytest.mark.server
def test_a_commit_or_rollback_with_no_transaction_open_counts_nothing(
    workspace: Workspace,
) -> None:
    with workspace.engine().connect() as conn:
        conn.begin()
        conn.commit()  # no statement ran: psycopg2 has no transaction to end, sends nothing
        conn.begin()
        conn.rollback()
    assert ended(workspace) == (0, 0, 0)


@pytest.mark.server
def test_a_commit_of_a_failed_transaction_counts_as_a_rollback(workspace: Workspace) -> None:
    with workspace.engine().connect() as conn:
        conn.execute(sa.text("INSERT INTO t VALUES (1)"))
        with pytest.raises(sa.exc.DataError):
            conn.execute(sa.text("SELECT 1 / 0"))
        conn.commit()  # the server answers ROLLBACK, and no error
    assert ended(workspace) == (0, 1, 0)
    with workspace.observe() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM t")).scalar_one() == 0


@pytest.mark.server
def test_a_serialization_failure_at_commit_counts_as_a_rollback(workspace: Workspace) -> None:
    engine = workspace.engine(isolation_level="SERIALIZABLE")
    with engine.connect() as t1, engine.connect() as t2:
        for conn in (t1, t2):  # write skew: each reads what the other will write
            conn.execute(sa.text("SELECT count(*) FROM t"))
        t1.execute(sa.text("INSERT INTO t VALUES (1)"))
        t2.execute(sa.text("INSERT INTO t VALUES (2)"))
        t1.commit()
        with pytest.raises(sa.exc.OperationalError) as refused:
            t2.commit()
    assert refused.value.orig.pgcode == "40001"  # serialization_failure, at COMMIT
    assert ended(workspace) == (1, 1, 0)


@pytest.mark.server
def test_a_deferred_constraint_refused_at_commit_counts_as_a_rollback(
    workspace: Workspace,
) -> None:
    with workspace.engine().connect() as conn:
        conn.execute(sa.text("INSERT INTO t VALUES (1), (1)"))  # checked at COMMIT
        with pytest.raises(sa.exc.IntegrityError) as refused:
            conn.commit()
    assert refused.value.orig.pgcode == "23505"  # unique_violation
    assert ended(workspace) == (0, 1, 0)


@pytest.mark.server
def test_a_commit_whose_reply_never_came_counts_as_unknown(workspace: Workspace) -> None:
    with workspace.engine().connect() as conn:
        conn.execute(sa.text("INSERT INTO t VALUES (1)"))
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        assert workspace.terminate(pid)  # the client learns of it only when it commits
        with pytest.raises(sa.exc.OperationalError) as lost:
            conn.commit()
    assert lost.value.connection_invalidated
    assert ended(workspace) == (0, 0, 1)
