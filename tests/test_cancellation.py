"""Cancelling a running statement (the application's cancel, an administrator's) and a
worker process killed while the server runs its report."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from failspec.harness.concurrency.cancellation import (
    Worker,
    WorkerFailed,
    cancel_as_administrator,
    is_sleeping,
    run_report,
    work_of,
)
from failspec.harness.concurrency.interleaving import Interleaving
from failspec.harness.scenario.workspace import Run, Workspace

pytestmark = pytest.mark.server

#: Longer than any wait of these tests: a report that ends by itself did not get cancelled.
LONG = 30.0


@pytest.fixture
def workspace(run: Run) -> Iterator[Workspace]:
    ws = run.workspace("cancellation test")
    with run.admin.connect() as conn:
        conn.execute(sa.text(f"CREATE TABLE {ws.schema}.transactions (id int)"))
        conn.commit()
    yield ws
    ws.close()


@pytest.fixture
def sessions(workspace: Workspace) -> Iterator[Interleaving]:
    interleaving = Interleaving(workspace, timeout=2.0)
    yield interleaving
    interleaving.close()


def _start_report(sessions: Interleaving, name: str) -> None:
    session = sessions[name]
    admin = sessions.workspace.run.admin
    state = sessions.perform(
        name, "report", lambda: run_report(session.conn, LONG),
        busy=lambda: is_sleeping(admin, session.pid),
    )  # fmt: skip
    assert state == "busy"


def test_the_applications_cancel_fails_the_statement_and_keeps_the_connection(
    sessions: Interleaving,
) -> None:
    _start_report(sessions, "T1")
    pid = sessions["T1"].pid
    sessions["T1"].cancel()
    assert sessions.finish("T1").condition == "query_canceled"
    work, _ = work_of(sessions.workspace.run.admin, pid)
    assert work is not None and work.state == "idle in transaction (aborted)"
    assert sessions["T1"].dbapi_connection.get_backend_pid() == pid


def test_an_administrators_cancel_fails_the_statement(sessions: Interleaving) -> None:
    _start_report(sessions, "T1")
    assert cancel_as_administrator(sessions.workspace.run.admin, sessions["T1"].pid)
    assert sessions.finish("T1").condition == "query_canceled"


def test_a_cancel_with_nothing_running_changes_nothing(sessions: Interleaving) -> None:
    session = sessions["T1"]
    sessions.perform("T1", "read", lambda: session.conn.exec_driver_sql("SELECT 1").scalar())
    session.cancel()
    assert cancel_as_administrator(sessions.workspace.run.admin, session.pid)
    sessions.perform("T1", "read again", lambda: session.conn.exec_driver_sql("SELECT 2").scalar())
    assert sessions.finish("T1").value == 2


def test_a_session_that_never_connected_has_nothing_to_cancel(sessions: Interleaving) -> None:
    with pytest.raises(RuntimeError, match="T1 has no connection"):
        sessions["T1"].cancel()


def test_an_administrators_cancel_of_no_server_process_says_so(run: Run) -> None:
    with run.admin.connect() as conn:
        pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    assert work_of(run.admin, 2**31 - 1)[0] is None
    assert not cancel_as_administrator(run.admin, 2**31 - 1)
    assert work_of(run.admin, pid)[0] is not None  # an idle connection of the pool


def test_a_killed_worker_leaves_its_report_running_and_close_ends_it(
    workspace: Workspace,
) -> None:
    worker = Worker(workspace, {}, timeout=5.0)
    try:
        report = worker.start_report(LONG)
        assert report.sleeping and report.pid == worker.pid
        worker.kill()
        work, _ = work_of(workspace.run.admin, report.pid)
        assert work is not None and work.sleeping  # nothing told the server
    finally:
        worker.close()
    assert report.pid not in workspace.open_backends()


def test_a_worker_with_a_setting_the_server_refuses_fails_with_the_servers_reason(
    workspace: Workspace,
) -> None:
    worker = Worker(workspace, {"no_such_setting": "1"}, timeout=5.0)
    try:
        with pytest.raises(WorkerFailed, match="no_such_setting"):
            worker.start_report(LONG)
    finally:
        worker.close()


def test_a_worker_whose_server_checks_its_client_has_its_session_ended(
    workspace: Workspace,
) -> None:
    worker = Worker(workspace, {"client_connection_check_interval": "100ms"}, timeout=5.0)
    try:
        worker.start_report(LONG)
        killed = worker.kill()
        ended, _ = worker.server_process_end(timeout=2.0)
        assert 0 <= ended - killed <= 1.0
    finally:
        worker.close()
