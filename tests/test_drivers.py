"""The driver setting (failspec.drivers): what differs between psycopg2 and psycopg and is
answered for either, the deadline on psycopg, and the driver matrix and its merge."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import psycopg2
import pytest
import sqlalchemy as sa

from failspec import drivers
from failspec.conditions import condition_of
from failspec.harness import waiting
from failspec.harness.driver_matrix import DriverMatrix, PerDriver, observed
from failspec.harness.faults import network
from failspec.harness.outcomes import capture
from failspec.harness.scenario.workspace import Run, Workspace
from failspec.harness.servers import Server
from failspec.ledger import deadline, is_transient
from failspec.report import __main__ as report_main
from failspec.report import record
from failspec.report.html import render
from failspec.report.model import load_run


@pytest.fixture(params=drivers.NAMES)
def driver(request: pytest.FixtureRequest) -> Iterator[str]:
    drivers.use(request.param)
    yield request.param
    drivers.use("psycopg2")


@pytest.fixture
def psycopg3() -> Iterator[None]:
    drivers.use("psycopg")
    yield
    drivers.use("psycopg2")


@pytest.fixture
def workspace(server: Server) -> Iterator[Workspace]:
    run = Run(server)
    workspace = run.workspace("drivers")
    yield workspace
    workspace.close()
    run.close()


def test_psycopg2_is_the_default_and_an_unknown_driver_is_refused():
    assert drivers.current() is drivers.PSYCOPG2
    with pytest.raises(ValueError, match="psycopg2, psycopg"):
        drivers.use("asyncpg")
    assert drivers.current() is drivers.PSYCOPG2


def test_a_servers_sqlstate_is_read_from_either_drivers_error():
    class Psycopg2Error(psycopg2.Error):
        pgcode = "57P01"  # type: ignore[assignment]

    wrapped = sa.exc.OperationalError("SELECT 1", None, psycopg.errors.AdminShutdown("ended"))
    assert condition_of(wrapped) == "admin_shutdown"
    assert condition_of(Psycopg2Error("ended")) == "admin_shutdown"
    assert condition_of(psycopg.OperationalError("the connection is closed")) == "connection_lost"
    assert is_transient(psycopg.OperationalError("the connection is closed"))


def test_the_deadline_error_is_each_drivers_own_and_named_alike():
    for error in (
        deadline.DeadlineExceeded("deadline exceeded"),
        deadline.PsycopgDeadlineExceeded("deadline exceeded"),
    ):
        wrapped = sa.exc.OperationalError("COMMIT", None, error)
        assert condition_of(wrapped) == "deadline_exceeded"
        assert deadline.is_deadline_exceeded(wrapped) and is_transient(wrapped)
    assert isinstance(deadline.PsycopgDeadlineExceeded("x"), psycopg.OperationalError)


def test_a_per_driver_outcome_names_each_drivers_and_picks_the_runs(psycopg3):
    stated = PerDriver.parse("connection_lost on psycopg2, admin_shutdown on psycopg")
    assert stated.outcomes == {"psycopg2": "connection_lost", "psycopg": "admin_shutdown"}
    assert stated.expected == "admin_shutdown"
    with pytest.raises(ValueError, match="per-driver"):
        PerDriver.parse("admin_shutdown on psycopg")


# -- against a real server ------------------------------------------------------------


@pytest.mark.server
def test_process_open_state_and_transaction_status_are_read_alike(workspace, driver):
    engine = workspace.engine(pool_size=1)
    with engine.connect() as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        dbapi = conn.connection.dbapi_connection
        assert drivers.backend_pid(dbapi) == pid
        assert drivers.is_open(dbapi)
        assert drivers.transaction_status(dbapi) == drivers.TRANSACTION_INTRANS
        conn.rollback()
        assert drivers.transaction_status(dbapi) == drivers.TRANSACTION_IDLE
    engine.dispose()


@pytest.mark.server
def test_the_servers_warnings_are_collected_in_libpqs_layout(workspace, driver):
    engine = workspace.engine(pool_size=1)
    with engine.connect() as conn:
        dbapi = conn.connection.dbapi_connection
        notices = drivers.notices(dbapi)
        del notices[:]
        # The driver's own cursor: SQLAlchemy's psycopg2 dialect empties the list after each
        # statement it runs (it logs them); a COMMIT's notices stay (the ledger's case).
        dbapi.cursor().execute(
            "DO $$ BEGIN RAISE WARNING 'careful' USING DETAIL = 'it might not be there'; END $$"
        )
        assert notices == ["WARNING:  careful\nDETAIL:  it might not be there\n"]
    engine.dispose()


@pytest.mark.server
def test_a_cancel_from_another_thread_ends_the_statement_with_query_canceled(workspace, driver):
    engine = workspace.engine(pool_size=1)
    with engine.connect() as conn:
        dbapi = conn.connection.dbapi_connection
        timer = threading.Timer(0.2, drivers.cancel, [dbapi])
        timer.start()
        outcome = capture("sleep", lambda: conn.exec_driver_sql("SELECT pg_sleep(3)"))
        timer.join()
        assert outcome.condition == "query_canceled"
        assert not outcome.connection_invalidated
    engine.dispose()


@pytest.mark.server
def test_a_psycopg_connection_opening_into_silence_ends_at_the_deadline(workspace, psycopg3):
    silent = network.silent()
    waiting.after(5, silent.close)  # should the deadline not end it
    try:
        url = workspace.url(host=silent.host, port=silent.port)
        engine = deadline.bound(
            workspace.engine(url, poolclass=sa.pool.NullPool, connect_args={"connect_timeout": 10})
        )
        started = time.monotonic()
        with pytest.raises(sa.exc.OperationalError) as failed, deadline.within(0.5):
            engine.connect()
        assert condition_of(failed.value) == "deadline_exceeded"
        assert 0.5 <= time.monotonic() - started < 1.2
    finally:
        silent.close()


# -- the driver matrix and the merged report --------------------------------------------


def _record(tmp_path: Path, driver: str, condition: str, sqlstate: str | None) -> Path:
    drivers.use(driver)
    try:
        matrix = DriverMatrix()
        outcome = capture("lock alice", lambda: None)
        seen = {**observed(outcome), "condition": condition, "sqlstate": sqlstate}
        stated = PerDriver.parse("connection_lost on psycopg2, admin_shutdown on psycopg")
        matrix.record("An administrator ends a request", stated, seen, "features/x.feature:3")
    finally:
        drivers.use("psycopg2")
    data = record.setup_error("")
    data.update(
        setup_error=None,
        server={"backend": "embedded", "version": "18.6", "driver": driver},
        driver_matrix=matrix.as_json(),
    )
    return record.write(tmp_path / driver, data)


def test_two_runs_records_merge_into_one_report_with_both_drivers_columns(tmp_path):
    first = _record(tmp_path, "psycopg2", "connection_lost", None)
    second = _record(tmp_path, "psycopg", "admin_shutdown", "57P01")
    into = tmp_path / "merged"
    assert report_main.main(["--merge", str(first), str(second), "--into", str(into)]) == 0
    merged = json.loads((into / record.RUN_RECORD).read_text())
    observed_by = merged["driver_matrix"]["An administrator ends a request"]["observed"]
    assert set(observed_by) == {"psycopg2", "psycopg"}
    assert [run["driver"] for run in merged["merged_from"]] == ["psycopg2", "psycopg"]
    page = render(load_run(into))
    assert "driver-matrix" in page and "SQLSTATE 57P01" in page and "SQLSTATE none" in page


def test_merging_two_runs_of_one_driver_is_refused(tmp_path, capsys):
    first = _record(tmp_path, "psycopg2", "connection_lost", None)
    assert report_main.main(["--merge", str(first), str(first)]) == 1
    assert "different drivers" in capsys.readouterr().err
