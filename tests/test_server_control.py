"""Server control on every backend that runs its own server: crash, restart, pause.

The docker backend needs a Docker daemon and a PostgreSQL image (see the docker_image
fixture in conftest.py).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from failspec.harness import servers
from failspec.harness.servers import Server
from failspec.harness.servers.settings import Settings
from failspec.harness.waiting import until

pytestmark = pytest.mark.server


@pytest.fixture(scope="module", params=["embedded", "docker"])
def controlled(request) -> Iterator[Server]:
    if request.param == "docker":
        settings = Settings(backend="docker", pg_image=request.getfixturevalue("docker_image"))
    else:
        settings = Settings(backend="embedded")
    server = servers.start(settings)
    yield server
    server.stop()


@pytest.fixture
def engine(controlled) -> Iterator[sa.Engine]:
    engine = controlled.engine(pool_pre_ping=True)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS payments"))
        conn.execute(sa.text("CREATE TABLE payments (ref text PRIMARY KEY)"))
    yield engine
    engine.dispose()


def refs(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT ref FROM payments ORDER BY ref")).scalars())


def test_committed_data_survives_a_crash_and_the_uncommitted_does_not(controlled, engine):
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO payments VALUES ('committed')"))
    open_tx = engine.connect()
    open_tx.execute(sa.text("INSERT INTO payments VALUES ('in flight')"))

    controlled.crash()
    with pytest.raises(sa.exc.OperationalError):
        open_tx.execute(sa.text("SELECT 1"))
    open_tx.invalidate()
    controlled.restart()

    assert refs(engine) == ["committed"]


def test_engines_follow_the_server_through_a_restart(controlled, engine):
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO payments VALUES ('before')"))
    before = controlled.endpoint

    controlled.restart()

    assert controlled.endpoint.host == before.host
    if controlled.backend == "docker":
        assert controlled.endpoint.port != before.port  # a new host port after a restart
    assert refs(engine) == ["before"]  # the same engine, now on the new address


def test_a_paused_server_answers_nothing_until_it_is_resumed(controlled, engine):
    conn = engine.connect()
    try:
        controlled.pause()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            query = pool.submit(lambda: conn.execute(sa.text("SELECT 42")).scalar_one())
            try:
                with pytest.raises(concurrent.futures.TimeoutError):
                    query.result(timeout=0.3)
            finally:
                controlled.resume()
            assert query.result(timeout=10) == 42
    finally:
        conn.close()


def test_a_new_connection_to_a_paused_server_times_out(controlled):
    engine = controlled.engine(poolclass=sa.pool.NullPool, connect_args={"connect_timeout": 2})
    controlled.pause()
    try:
        with pytest.raises(sa.exc.OperationalError, match="timeout expired"):
            engine.connect()
    finally:
        controlled.resume()
        engine.dispose()
    with controlled.engine(poolclass=sa.pool.NullPool).connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1


def test_a_crashed_server_refuses_new_connections_until_it_is_restarted(controlled):
    controlled.crash()
    try:
        assert controlled.refusal() == "connection_refused"
    finally:
        controlled.restart()
    assert controlled.refusal() is None


def test_a_smart_shutdown_refuses_new_connections_and_stops_when_the_last_client_leaves(
    controlled,
):
    # PostgreSQL's docs, "Shutting Down the Server": SIGTERM is the Smart Shutdown mode;
    # the server disallows new connections, lets existing sessions end their work
    # normally, and shuts down only after all of the sessions terminate.
    other = controlled.engine(poolclass=sa.pool.NullPool)
    client = other.connect()
    try:
        controlled.shut_down_smart()
        assert controlled.refusal() == "cannot_connect_now"
        assert client.execute(sa.text("SELECT 42")).scalar_one() == 42
    finally:
        client.close()
        other.dispose()
    try:
        until(
            lambda: controlled.refusal() == "connection_refused",
            timeout=30, what="the server stopping once its last client left",
        )  # fmt: skip
    finally:
        controlled.restart()
    assert controlled.refusal() is None


def test_a_restart_during_a_smart_shutdown_ends_the_sessions_that_hold_it_open(controlled):
    other = controlled.engine(poolclass=sa.pool.NullPool)
    client = other.connect()
    try:
        controlled.shut_down_smart()
        controlled.restart()
        assert controlled.refusal() is None
        with pytest.raises(sa.exc.OperationalError):
            client.execute(sa.text("SELECT 1"))
    finally:
        client.invalidate()
        other.dispose()
