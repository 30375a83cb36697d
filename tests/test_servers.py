"""Choosing a backend, and every way of getting no usable server: one clear line each."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from failspec.harness import servers
from failspec.harness.errors import SetupError
from failspec.harness.settings import Settings


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
    from failspec.harness.embedded import free_port

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
    assert found.banner().startswith("failspec: backend=url PostgreSQL")
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
