"""The leak guard names what a scenario left behind, and finds nothing when it left nothing."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from failspec.harness.guards.leaks import find_leaks
from failspec.harness.scenario.workspace import Run

pytestmark = pytest.mark.server


def test_nothing_left_means_no_leak(run: Run) -> None:
    workspace = run.workspace("clean")
    engine = workspace.engine(label="the application")
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    assert find_leaks(workspace, grace=1.0) == []
    workspace.close()


def test_a_connection_never_returned_is_named_with_its_pool_and_open_transaction(run: Run) -> None:
    workspace = run.workspace("leaky")
    engine = workspace.engine(label="the application")
    forgotten = engine.connect()
    forgotten.execute(sa.text("SELECT 1"))  # begins a transaction, never ended
    leaks = find_leaks(workspace, grace=0.2)
    assert leaks[0] == "the pool of the application still has 1 connection(s) checked out"
    assert "a transaction left open" in leaks[1]
    assert "idle in transaction" in leaks[1]
    forgotten.invalidate()
    workspace.close()


def test_the_runs_own_connections_are_never_counted(run: Run) -> None:
    workspace = run.workspace("observed")
    with workspace.observe() as conn:
        conn.execute(sa.text("SELECT 1"))
    with run.admin.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    assert find_leaks(workspace, grace=0.2) == []
    workspace.close()


def test_metrics_count_peak_connections_rows_and_commits(run: Run) -> None:
    workspace = run.workspace("counted")
    engine = workspace.engine()
    with engine.connect() as a, engine.connect() as b:
        a.execute(sa.text("CREATE TABLE t (x int)"))
        a.execute(sa.text("INSERT INTO t VALUES (1), (2), (3)"))
        a.commit()
        b.execute(sa.text("UPDATE t SET x = x + 1"))
        b.rollback()
    assert workspace.peak_connections == 2
    assert workspace.rows_changed == 6  # 3 inserted, 3 updated (then rolled back)
    assert (workspace.commits, workspace.rollbacks) == (1, 1)
    workspace.close()
