"""Choosing a backend, and every way of getting no usable server: one clear line each."""

from __future__ import annotations

import socket
import time

import pytest
import sqlalchemy as sa

from failspec.harness import servers
from failspec.harness.errors import SetupError
from failspec.harness.servers.settings import BACKENDS, Settings


def test_auto_prefers_docker_when_a_daemon_answers(monkeypatch):
    monkeypatch.setattr(servers, "docker_answers", lambda: True)
    assert servers.choose_backend(Settings()) == "docker"


def test_auto_falls_back_to_embedded_without_docker(monkeypatch):
    monkeypatch.setattr(servers, "docker_answers", lambda: False)
    assert servers.choose_backend(Settings()) == "embedded"


def test_auto_never_sends_the_suite_to_a_database_url_from_the_environment(monkeypatch):
    monkeypatch.setattr(servers, "docker_answers", lambda: False)
    assert servers.choose_backend(Settings(db_url="postgresql://prod/db")) == "embedded"


def test_docker_without_a_daemon_says_so_and_how_to_go_on(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(SetupError) as caught:
        servers.start(Settings(backend="docker"))
    message = str(caught.value)
    assert "no Docker daemon" in message and "backend=embedded" in message


@pytest.mark.parametrize("url", ["not a url", "mysql://u:p@h/d", "postgresql:///only-a-db"])
def test_a_malformed_url_is_refused_with_the_expected_form(url):
    with pytest.raises(SetupError, match="postgresql://user:password@host:port/database"):
        servers.start(Settings(backend="url", db_url=url))


def test_an_unreachable_url_is_one_line_without_the_password():
    from failspec.harness.postgres import free_port

    url = f"postgresql://someone:s3cret-pw@127.0.0.1:{free_port()}/db"
    with pytest.raises(SetupError) as caught:
        servers.start(Settings(backend="url", db_url=url))
    message = str(caught.value)
    assert "connection_refused" in message
    assert "s3cret-pw" not in message
    assert "\n" not in message


@pytest.mark.server
def test_the_url_backend_uses_an_existing_server(server):
    url = server.endpoint.url().render_as_string(hide_password=False)
    found = servers.start(Settings(backend="url", db_url=url))
    assert found.version == server.version
    assert found.banner().startswith("failspec: backend=url driver=psycopg2 PostgreSQL")
    assert server.endpoint.password not in found.banner()


@pytest.mark.server
def test_a_role_that_may_not_create_schemas_is_told_the_grant_it_needs(server):
    admin = server.engine(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text("DROP ROLE IF EXISTS reader"))
        conn.execute(sa.text("CREATE ROLE reader LOGIN PASSWORD 'reader-pw'"))
    try:
        url = server.endpoint.url(user="reader", password="reader-pw")
        with pytest.raises(SetupError, match="GRANT CREATE ON DATABASE failspec TO reader"):
            servers.start(Settings(backend="url", db_url=url.render_as_string(False)))
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text("DROP ROLE reader"))
        admin.dispose()


@pytest.mark.server
def test_the_banner_names_backend_version_and_address_but_no_password(server):
    banner = server.banner()
    assert "backend=embedded" in banner
    assert f"PostgreSQL {server.version}" in banner
    assert server.endpoint.address in banner
    assert server.endpoint.password not in banner


@pytest.mark.server
def test_the_embedded_server_demands_a_password(server):
    assert server.demands_password()


def test_a_password_with_an_unencoded_at_sign_is_refused_before_any_connection():
    """Today's URL parsers end the user part at the first '@' (RFC 3986), so the rest of
    the password would be taken for the host, tried, and printed in the error."""
    url = "postgresql://someone:p@ss-9Q@127.0.0.1:1/db"
    with pytest.raises(SetupError) as caught:
        servers.start(Settings(backend="url", db_url=url))
    message = str(caught.value)
    assert "%40" in message
    assert "ss-9Q" not in message and "p@ss" not in message
    assert "cannot connect" not in message


def test_the_first_connection_to_a_url_server_has_a_fixed_short_bound():
    """A server that accepts the connection but never answers: the probe gives up after
    PROBE_CONNECT_TIMEOUT, not after timeout_scale times the harness's 5 s (50 s at 10)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the handshake; nobody ever answers
        url = f"postgresql://someone@127.0.0.1:{silent.getsockname()[1]}/db"
        started = time.monotonic()
        with pytest.raises(SetupError, match="connect_timeout"):
            servers.start(Settings(backend="url", db_url=url, timeout_scale=10))
        took = time.monotonic() - started
    assert servers.PROBE_CONNECT_TIMEOUT - 0.5 <= took < servers.PROBE_CONNECT_TIMEOUT + 3


def test_the_harness_options_follow_the_users_and_keep_them():
    endpoint = servers.Endpoint(
        "db", 5432, "me", None, "ledger", (("options", "-c work_mem=8MB"), ("sslmode", "require"))
    )
    assert endpoint.connect_args({"options": "-c search_path=fs_1"}) == {
        "options": "-c work_mem=8MB -c search_path=fs_1"
    }
    assert endpoint.connect_args({"connect_timeout": 5}) == {"connect_timeout": 5}
    assert dict(endpoint.url().query) == {"options": "-c work_mem=8MB", "sslmode": "require"}


@pytest.mark.server
def test_the_users_options_reach_the_server_beside_the_harness_s(server):
    url = server.endpoint.url().render_as_string(hide_password=False)
    found = servers.start(
        Settings(backend="url", db_url=f"{url}?options=-c%20failspec.probe%3Dkept")
    )
    engine = found.engine(connect_args={"options": "-c lock_timeout=1234"})
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SHOW failspec.probe")).scalar_one() == "kept"
            assert conn.execute(sa.text("SHOW lock_timeout")).scalar_one() == "1234ms"
    finally:
        engine.dispose()


@pytest.mark.server
def test_a_role_that_may_not_set_deadlock_timeout_is_told_the_grant_it_needs(server):
    admin = server.engine(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text("DROP ROLE IF EXISTS creator"))
        conn.execute(sa.text("CREATE ROLE creator LOGIN PASSWORD 'creator-pw'"))
        conn.execute(sa.text("GRANT CREATE ON DATABASE failspec TO creator"))
    try:
        url = server.endpoint.url(user="creator", password="creator-pw")
        settings = Settings(backend="url", db_url=url.render_as_string(False))
        with pytest.raises(
            SetupError, match="GRANT SET ON PARAMETER deadlock_timeout TO creator"
        ) as caught:
            servers.start(settings)
        assert "creator-pw" not in str(caught.value)
        with admin.connect() as conn:
            conn.execute(sa.text("GRANT SET ON PARAMETER deadlock_timeout TO creator"))
        found = servers.start(settings)  # the grant is enough, also at connection start
        engine = found.engine(connect_args={"options": "-c deadlock_timeout=321ms"})
        with engine.connect() as conn:
            assert conn.execute(sa.text("SHOW deadlock_timeout")).scalar_one() == "321ms"
        engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text("REVOKE ALL ON DATABASE failspec FROM creator"))
            conn.execute(sa.text("REVOKE SET ON PARAMETER deadlock_timeout FROM creator"))
            conn.execute(sa.text("DROP ROLE creator"))
        admin.dispose()


def test_every_backend_the_settings_accept_has_a_class_and_every_class_is_accepted():
    assert set(BACKENDS) == {"auto", *servers.BACKEND_CLASSES}
