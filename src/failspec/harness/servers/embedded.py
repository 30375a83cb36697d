"""The embedded backend: a PostgreSQL server the harness runs itself, from binaries on
this machine (``failspec.harness.postgres``), with full control."""

from __future__ import annotations

import atexit
from dataclasses import replace
from pathlib import Path

import sqlalchemy as sa

from failspec.harness import postgres
from failspec.harness.postgres import standby
from failspec.harness.servers.base import Endpoint, Server
from failspec.harness.servers.replication import Topology
from failspec.harness.servers.settings import Settings


class EmbeddedServer(Server):
    backend = "embedded"
    controllable = True

    def __init__(
        self, pg: postgres.EmbeddedPostgres, endpoint: Endpoint, connect_timeout: float,
        reaped: list[int],
    ) -> None:  # fmt: skip
        super().__init__(endpoint, connect_timeout)
        self.pg = pg
        #: Servers left running by earlier runs that died (SIGKILL), stopped by start().
        self.reaped = reaped

    @classmethod
    def start(cls, settings: Settings) -> EmbeddedServer:
        bin_dir = postgres.find_binaries(settings.pg_bin)
        reaped = postgres.reap_stale_servers()
        pg = postgres.EmbeddedPostgres(
            bin_dir, port=settings.pg_port, ready_timeout=settings.seconds(15)
        )
        pg.start()
        atexit.register(pg.stop)  # a crash of the harness must not leave it running
        server = cls(
            pg,
            Endpoint("127.0.0.1", pg.port or 0, postgres.SUPERUSER, pg.password, "postgres"),
            settings.seconds(5),
            reaped,
        )
        engine = server.engine(isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                exists = conn.execute(
                    sa.text("SELECT 1 FROM pg_database WHERE datname = :d"),
                    {"d": postgres.DATABASE},
                ).first()
                if not exists:  # a cluster from initdb rather than from the template
                    conn.execute(sa.text(f"CREATE DATABASE {postgres.DATABASE}"))
        except BaseException:
            server.stop()
            raise
        finally:
            engine.dispose()
        server.endpoint = replace(server.endpoint, database=postgres.DATABASE)
        return server

    reaped_as = ("stopped", "server")

    def banner_details(self) -> list[str]:
        return [f"binaries={self.pg.bin_dir}"]

    def crash(self) -> None:
        self.pg.crash()

    def restart(self) -> None:
        self.pg.restart()

    def pause(self) -> None:
        self.pg.pause()

    def resume(self) -> None:
        self.pg.resume()

    def shut_down_smart(self) -> None:
        self.pg.shut_down_smart()

    def stop(self) -> None:
        self.pg.stop()

    def process_ended(self) -> bool:
        return self.pg.pid is None  # the postmaster, reaped if it ended (Popen.poll)

    has_log = True

    def log_tail(self, lines: int = 20) -> str:
        return self.pg.log_tail(lines)


class EmbeddedTopology(Topology):
    """Members of a replicated cluster from the binaries this backend runs (``postgres.
    standby``): the primary from the cluster template, each standby by ``pg_basebackup``
    from it, an old primary brought back by ``pg_rewind``. ``ready_timeout`` and
    ``connect_timeout``: seconds."""

    backend = EmbeddedServer.backend

    def __init__(self, bin_dir: Path, *, ready_timeout: float, connect_timeout: float) -> None:
        self.bin_dir = bin_dir
        self.ready_timeout = ready_timeout
        self.connect_timeout = connect_timeout

    def _member(self, pg: postgres.EmbeddedPostgres) -> EmbeddedServer:
        atexit.register(pg.stop)  # a crash of the harness must not leave it running
        endpoint = Endpoint(
            "127.0.0.1", pg.port or 0, postgres.SUPERUSER, pg.password, postgres.DATABASE
        )
        return EmbeddedServer(pg, endpoint, self.connect_timeout, [])

    def start_primary(self) -> EmbeddedServer:
        pg = postgres.EmbeddedPostgres(
            self.bin_dir, ready_timeout=self.ready_timeout, settings=standby.CLUSTER_SETTINGS
        )
        pg.start()
        server = self._member(pg)
        server.checked()  # reads its version
        return server

    def start_standby(self, primary: Server, name: str) -> EmbeddedServer:
        assert isinstance(primary, EmbeddedServer)
        server = self._member(standby.clone(primary.pg, name, ready_timeout=self.ready_timeout))
        server.version = primary.version
        return server

    def relay_conninfo(self, primary: Server, name: str, host: str, port: int) -> str:
        assert isinstance(primary, EmbeddedServer)
        return standby.relay_conninfo(primary.pg, name, host, port)

    def rejoin(self, old: Server, new_primary: Server, name: str) -> None:
        assert isinstance(old, EmbeddedServer) and isinstance(new_primary, EmbeddedServer)
        standby.rejoin(old.pg, new_primary.pg, name)
