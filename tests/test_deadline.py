"""The request deadline (failspec.ledger.deadline): which connections it bounds, when the
wait callback is registered, and what a request that runs out of time leaves behind."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import NamedTuple

import psycopg2
import psycopg2.extensions as ext
import pytest
import sqlalchemy as sa

from failspec import drivers
from failspec.conditions import condition_of
from failspec.harness import waiting
from failspec.harness.faults import network
from failspec.harness.scenario.application import Application
from failspec.harness.scenario.workspace import Run, Workspace
from failspec.harness.servers import Server
from failspec.ledger import deadline, is_transient


@pytest.fixture
def installed() -> Iterator[None]:
    deadline.install()
    yield
    deadline.uninstall()


def test_install_is_counted_and_the_last_uninstall_restores_the_callback_found_before():
    def earlier(conn):
        raise AssertionError("not called here")

    ext.set_wait_callback(earlier)
    try:
        deadline.install()
        deadline.install()
        assert deadline.installed()
        deadline.uninstall()
        assert deadline.installed()
        deadline.uninstall()
        assert ext.get_wait_callback() is earlier
        deadline.uninstall()  # one too many: nothing happens
        assert ext.get_wait_callback() is earlier
    finally:
        ext.set_wait_callback(None)


def test_nested_deadlines_keep_the_earlier_and_none_sets_no_deadline():
    assert deadline.remaining() is None
    with deadline.within(None):
        assert deadline.remaining() is None
    with deadline.within(10):
        with deadline.within(60):
            assert deadline.remaining() <= 10
        with deadline.within(0.5):
            assert deadline.remaining() <= 0.5
        assert 0.5 < deadline.remaining() <= 10
    assert deadline.remaining() is None
    with pytest.raises(ValueError, match="positive"), deadline.within(0):
        pass


def test_the_error_is_a_driver_error_named_deadline_exceeded_and_retried():
    error = deadline.DeadlineExceeded("deadline exceeded")
    wrapped = sa.exc.OperationalError("COMMIT", None, error)

    assert isinstance(error, psycopg2.OperationalError)  # SQLAlchemy wraps it as one
    assert condition_of(error) == condition_of(wrapped) == "deadline_exceeded"
    assert is_transient(wrapped)
    assert deadline.is_deadline_exceeded(wrapped) and not deadline.outcome_unknown(wrapped)


# -- against a real server ------------------------------------------------------------

#: A COMMIT the server needs a while for: a deferred constraint trigger sleeps at COMMIT.
SLOW_COMMIT = [
    "CREATE TABLE slow (x int)",
    "CREATE FUNCTION sleep_a_while() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN PERFORM pg_sleep(1.5); RETURN NULL; END $$",
    "CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON slow DEFERRABLE INITIALLY DEFERRED "
    "FOR EACH ROW EXECUTE FUNCTION sleep_a_while()",
]


@pytest.fixture
def workspace(server: Server) -> Iterator[Workspace]:
    run = Run(server)
    workspace = run.workspace("deadline")
    with workspace.observe() as conn:
        for ddl in SLOW_COMMIT:
            conn.execute(sa.text(ddl))
        conn.commit()
    yield workspace
    workspace.close()
    run.close()


class Bounded(NamedTuple):
    driver: str
    #: the most a request bounded at 0.3 s may take, in seconds (psycopg2's wait callback
    #: polls its socket; psycopg 3's generator is ended where it waits)
    latest: float
    engine: Callable[..., sa.Engine]


@pytest.fixture(params=drivers.NAMES)
def bounded(request: pytest.FixtureRequest, workspace: Workspace) -> Iterator[Bounded]:
    """Engines whose connections the deadline bounds, on each driver: psycopg2 through
    the wait callback and the connection factory (deadline.install, deadline.connect_args),
    psycopg 3 through deadline.bound."""
    drivers.use(request.param)
    try:
        if request.param == "psycopg2":
            deadline.install()
            yield Bounded(
                "psycopg2",
                1.5,
                lambda **kw: workspace.engine(connect_args=deadline.connect_args(), **kw),
            )
            deadline.uninstall()
        else:
            yield Bounded("psycopg", 1.0, lambda **kw: deadline.bound(workspace.engine(**kw)))
    finally:
        drivers.use("psycopg2")


@pytest.mark.server
def test_a_bounded_statement_fails_at_the_deadline_and_its_connection_is_discarded(bounded):
    engine = bounded.engine(pool_size=1, max_overflow=0)
    with engine.connect() as conn:
        first = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    started = time.monotonic()
    with (
        pytest.raises(sa.exc.OperationalError) as failed,
        deadline.within(0.3),
        engine.connect() as conn,
    ):
        conn.exec_driver_sql("SELECT pg_sleep(3)")

    assert condition_of(failed.value) == "deadline_exceeded"
    assert not deadline.outcome_unknown(failed.value)  # a statement, not COMMIT
    assert failed.value.connection_invalidated
    assert 0.3 <= time.monotonic() - started < bounded.latest
    with engine.connect() as conn:  # a new server connection, not the one that timed out
        assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar() != first
    engine.dispose()


@pytest.mark.server
def test_a_deadline_bounds_only_the_thread_that_set_it(workspace, installed):
    # Two requests at once on bounded connections: one thread's short deadline must not
    # cut the other thread's longer statement (the deadline is a context variable).
    engine = workspace.engine(connect_args=deadline.connect_args(), pool_size=2, max_overflow=0)
    results: dict[str, object] = {}
    started = threading.Barrier(2)

    def request(name: str, seconds: float | None, sleep: float) -> None:
        started.wait(timeout=5)
        try:
            with deadline.within(seconds), engine.connect() as conn:
                conn.exec_driver_sql(f"SELECT pg_sleep({sleep})")
            results[name] = "done"
        except sa.exc.OperationalError as error:
            results[name] = condition_of(error)

    threads = [
        threading.Thread(target=request, args=("bounded", 0.2, 2.0)),
        threading.Thread(target=request, args=("unbounded", None, 0.6)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert results == {"bounded": "deadline_exceeded", "unbounded": "done"}
    engine.dispose()


@pytest.mark.server
def test_a_connection_not_made_bounded_waits_as_long_as_it_takes(workspace, installed):
    engine = workspace.engine(poolclass=sa.pool.NullPool)
    with deadline.within(0.1), engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT pg_sleep(0.4)").scalar() == ""


@pytest.mark.server
def test_a_commit_past_the_deadline_reports_an_unknown_outcome_and_may_have_committed(
    bounded, workspace
):
    engine = bounded.engine(poolclass=sa.pool.NullPool)
    with (
        pytest.raises(sa.exc.OperationalError) as failed,
        deadline.within(0.5),
        engine.begin() as conn,
    ):
        conn.exec_driver_sql("INSERT INTO slow VALUES (1)")

    assert deadline.outcome_unknown(failed.value)
    assert "whether it took effect is unknown" in " ".join(failed.value.orig.__notes__)
    # The server had the COMMIT: it commits once its trigger is done.
    rows = sa.text(f"SELECT count(*) FROM {workspace.schema}.slow")
    with workspace.run.admin.connect() as conn:
        waiting.until(lambda: conn.execute(rows).scalar(), timeout=5, what="the COMMIT's effect")


@pytest.mark.server
def test_the_callback_applies_connect_timeout_which_libpq_ignores_in_non_blocking_connects(
    installed,
):
    silent = network.silent()
    # Should the callback not apply the timeout, closing the socket ends the attempt.
    waiting.after(5, silent.close)
    try:
        started = time.monotonic()
        with pytest.raises(psycopg2.OperationalError, match="timeout expired") as failed:
            psycopg2.connect(host=silent.host, port=silent.port, connect_timeout=2, user="x")
        assert condition_of(failed.value) == "connect_timeout"
        assert 2 <= time.monotonic() - started < 3
    finally:
        silent.close()


@pytest.mark.server
def test_the_application_sets_its_deadline_before_first_use_and_unregisters_it_on_close(
    workspace,
):
    app = Application(workspace)
    app.request_deadline = 1.5
    assert app.ledger.deadline == 1.5
    assert deadline.installed()
    with pytest.raises(RuntimeError, match="request deadline is chosen before its first use"):
        app.request_deadline = 2
    app.close()
    assert not deadline.installed()
    with pytest.raises(ValueError, match="positive"):
        Application(workspace).request_deadline = 0
