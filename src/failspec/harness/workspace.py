"""One run on one server, and a clean schema for each scenario in it.

Every scenario gets a schema of its own, named for the run and the scenario's number
(``fs_<run id>_<n>``), and every connection the scenario opens carries that schema as
its ``search_path`` and an ``application_name`` naming the scenario. Closing the
workspace disposes of its engines, ends any connection of the scenario still open, and
drops the schema, whatever state the scenario left it in. The run drops only schemas
whose names carry its own id, so it never touches another run's or anybody else's.
"""

from __future__ import annotations

import itertools
import re
import secrets
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from failspec.harness.servers import Server

SCHEMA_PREFIX = "fs_"


class Run:
    """The run's identity, its server and its own administrative connection."""

    def __init__(self, server: Server, run_id: str | None = None) -> None:
        self.id = run_id or secrets.token_hex(4)
        self.server = server
        self.admin = server.engine(
            isolation_level="AUTOCOMMIT",
            pool_size=2,
            pool_pre_ping=True,
            connect_args={"application_name": f"failspec:{self.id}:admin"},
        )
        self._numbers = itertools.count(1)
        #: How many scenarios this run has started.
        self.scenarios = 0
        self.schema_prefix = f"{SCHEMA_PREFIX}{self.id}_"

    def workspace(self, scenario: str) -> Workspace:
        """Create the next scenario's schema and return its workspace."""
        self.scenarios = next(self._numbers)
        workspace = Workspace(self, self.scenarios, scenario)
        workspace.create()
        return workspace

    def schemas(self) -> list[str]:
        """This run's scenario schemas that exist on the server now."""
        with self.admin.connect() as conn:
            return list(
                conn.execute(
                    sa.text(
                        "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, :prefix) "
                        "ORDER BY nspname"
                    ),
                    {"prefix": self.schema_prefix},
                ).scalars()
            )

    def close(self) -> list[str]:
        """Drop any scenario schema of this run still present; return their names."""
        left = self.schemas()
        for name in left:
            _drop_schema(self.admin, name)
        self.admin.dispose()
        return left


class Workspace:
    """A scenario's schema, connection identity and engines."""

    def __init__(self, run: Run, number: int, scenario: str) -> None:
        self.run = run
        self.schema = f"{SCHEMA_PREFIX}{run.id}_{number}"
        self.application_name = application_name(run.id, number, scenario)
        self._engines: list[Engine] = []

    def create(self) -> None:
        with self.run.admin.connect() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA {self.schema}"))

    def connect_args(self) -> dict[str, Any]:
        """psycopg2 connection arguments that put a connection in this scenario."""
        return {
            "application_name": self.application_name,
            "options": f"-c search_path={self.schema}",
            "connect_timeout": max(2, round(self.run.server.connect_timeout)),
        }

    def url(self, **overrides: Any) -> URL:
        return self.run.server.endpoint.url(**overrides)

    def engine(self, url: URL | None = None, **kwargs: Any) -> Engine:
        """An engine whose every connection belongs to this scenario; disposed at close."""
        connect_args = self.connect_args()
        connect_args.update(kwargs.pop("connect_args", {}))
        engine = sa.create_engine(url or self.url(), connect_args=connect_args, **kwargs)
        self._engines.append(engine)
        return engine

    def open_backends(self) -> list[int]:
        """Server process ids of connections that still carry this scenario's name."""
        with self.run.admin.connect() as conn:
            return list(
                conn.execute(
                    sa.text(
                        "SELECT pid FROM pg_stat_activity WHERE application_name = :name "
                        "AND pid <> pg_backend_pid()"
                    ),
                    {"name": self.application_name},
                ).scalars()
            )

    def terminate(self, pid: int) -> bool:
        """End one server connection, as an administrator would (pg_terminate_backend)."""
        with self.run.admin.connect() as conn:
            return bool(
                conn.execute(
                    sa.text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid}
                ).scalar_one()
            )

    def close(self) -> None:
        """Dispose engines, end stragglers, drop the schema: runs even after failures."""
        errors: list[BaseException] = []
        for engine in self._engines:
            try:
                engine.dispose()
            except Exception as error:  # keep cleaning; report the first problem at the end
                errors.append(error)
        self._engines.clear()
        try:
            for pid in self.open_backends():
                self.terminate(pid)
            _drop_schema(self.run.admin, self.schema)
        except Exception as error:
            errors.append(error)
        if errors:
            raise errors[0]


def application_name(run_id: str, number: int, scenario: str) -> str:
    """``fs:<run>:<n> <scenario>``, printable ASCII, within PostgreSQL's 63 bytes."""
    text = re.sub(r"[^\x20-\x7e]", "?", f"fs:{run_id}:{number} {scenario}")
    return text[:63]


def _drop_schema(admin: Engine, schema: str) -> None:
    with admin.connect() as conn:
        # A leaked lock must not hang cleanup: fail visibly instead.
        conn.execute(sa.text("SET lock_timeout = '5s'"))
        conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
