"""What every backend is: where the server is (:class:`Endpoint`) and what the harness
can ask of it (:class:`Server`: an engine, a check that the suite can work there, and,
where the backend started it, crash, restart, pause, resume, shut down)."""

from __future__ import annotations

import secrets
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from failspec import drivers
from failspec.conditions import condition_of, first_line
from failspec.harness.errors import SetupError
from failspec.harness.servers.settings import Settings

#: The connect timeout (s) of the first connection to a server, whatever timeout_scale
#: says: a server that cannot be reached ends the run within seconds.
PROBE_CONNECT_TIMEOUT = 5


@dataclass(frozen=True)
class Endpoint:
    """Where the server is and whom to connect as."""

    host: str
    port: int
    user: str
    password: str | None
    database: str
    #: libpq connection parameters the user's URL gives (sslmode, sslrootcert, options,
    #: target_session_attrs…), as (name, value): every connection to the server gets them.
    params: tuple[tuple[str, str], ...] = ()

    def url(
        self,
        *,
        user: str | None = None,
        password: str | None = None,
        database: str | None = None,
        host: str | None = None,
        port: int | None = None,
    ) -> URL:
        return URL.create(
            drivers.current().dialect,
            username=user or self.user,
            password=self.password if password is None else password,
            host=host or self.host,
            port=port or self.port,
            database=database or self.database,
            query=dict(self.params),
        )

    def connect_args(self, harness: Mapping[str, Any]) -> dict[str, Any]:
        """The driver's connection arguments for a connection the harness opens with
        ``harness`` arguments, keeping the user's parameters (which the URL carries).

        SQLAlchemy's psycopg2 and psycopg dialects pass a URL's query parameters to
        ``connect`` and
        lets ``connect_args`` replace them key by key, so the harness's ``options`` (its
        ``-c search_path=…``, a scenario's server settings) would drop the user's. libpq's
        ``options`` is one string of command-line options: the user's come first and the
        harness's after, and of two ``-c`` for one setting the later is in force, so a
        scenario's own settings hold on its connections while the user's others do too.
        Other keys the harness passes are ones the URL may not set (``application_name``,
        ``connect_timeout``: see ``settings.REFUSED_PARAMETERS``) or values a scenario
        states for its own connections (``tcp_user_timeout``), which it uses.
        """
        args = dict(harness)
        user_options = dict(self.params).get("options")
        if user_options and args.get("options"):
            args["options"] = f"{user_options} {args['options']}"
        return args

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class NoServerControl(Exception):
    """The backend does not control the server process (an existing server by URL)."""


class Server(ABC):
    """A running server the suite may use. Subclasses start, stop and control it.

    A backend's classmethod :meth:`start` makes one from the run's settings; the
    constructor takes what it made (the endpoint, and the subclass's own handles).
    Server control (``crash``, ``restart``, ``pause``, ``resume``) is one interface for
    every backend that runs its own server. After a restart the server's address may
    change (a container gets a new host port): every engine made by :meth:`engine` or
    :meth:`follow` connects to the address of the moment, so callers never notice.
    """

    backend = "?"
    #: Whether the harness controls the server process (crash, restart, pause).
    controllable = False

    def __init__(self, endpoint: Endpoint, connect_timeout: float) -> None:
        self.endpoint = endpoint
        self.connect_timeout = connect_timeout
        self.version = "?"
        self._demands_password: bool | None = None
        #: What start() cleared away that runs which died left behind (their servers,
        #: containers); the backend's constructor sets it.
        self.reaped: Sequence[object] = ()

    @classmethod
    @abstractmethod
    def start(cls, settings: Settings) -> Server:
        """Start this backend's server as ``settings`` say (or find it, for a server that
        already runs) and return it, not yet checked (see :meth:`check`). Raises
        :class:`SetupError` when there is none to be had; stops what it started then."""

    def engine(self, *, connect_args: Mapping[str, Any] | None = None, **kwargs: Any) -> Engine:
        """An engine on the suite's database as its own role (the caller disposes of it):
        ``kwargs`` go to :func:`sqlalchemy.create_engine`, ``connect_args`` to the driver
        on top of the harness's connect timeout (s)."""
        harness: dict[str, Any] = {"connect_timeout": max(2, round(self.connect_timeout))}
        harness.update(connect_args or {})
        return self.follow(
            sa.create_engine(
                self.endpoint.url(),
                connect_args=self.endpoint.connect_args(harness),
                **kwargs,
            )
        )

    def follow(self, engine: Engine) -> Engine:
        """Make ``engine`` connect to wherever the server is at each new connection."""

        @sa.event.listens_for(engine, "do_connect")
        def to_current_address(
            dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]
        ) -> None:
            cparams["host"], cparams["port"] = self.endpoint.host, self.endpoint.port

        return engine

    # -- server control -------------------------------------------------------------

    def crash(self) -> None:
        """End the server abruptly, as a power cut to its processes would (no shutdown)."""
        raise NoServerControl(self.backend)

    def restart(self) -> None:
        """Start the server again (after a crash, or stop and start a running one) and
        return once it accepts connections."""
        raise NoServerControl(self.backend)

    def pause(self) -> None:
        """Freeze every server process: connections stay open, nothing answers."""
        raise NoServerControl(self.backend)

    def resume(self) -> None:
        """Let a paused server run on."""
        raise NoServerControl(self.backend)

    def shut_down_smart(self) -> None:
        """Begin PostgreSQL's *smart* shutdown (SIGTERM to the postmaster; docs: "Shutting
        Down the Server"): the server disallows new connections, lets the sessions already
        open end their work normally, and stops once they have all ended. Returns once it
        refuses new connections; :meth:`restart` starts it again (a fast shutdown first if
        sessions still hold it open)."""
        raise NoServerControl(self.backend)

    def refusal(self) -> str | None:
        """Try one new connection, and close it at once: None if the server accepted it,
        else the condition it was refused with (``cannot_connect_now`` while the server
        shuts down or starts up, ``connection_refused`` while nothing listens…)."""
        engine = self.engine(poolclass=sa.pool.NullPool)
        try:
            with engine.connect():
                return None
        except sa.exc.DBAPIError as error:
            return condition_of(error) or "error"
        finally:
            engine.dispose()

    def process_ended(self) -> bool:
        """Whether the harness knows, without connecting, that the server's process has
        ended (killed, as the out-of-memory killer would). False when it runs, or when the
        harness cannot tell without connecting (a server it did not start). A connection
        open before the postmaster died may still be served for a moment by its server
        process, which ends only once it notices (docs: "Server Processes" crash handling),
        so a read that succeeds does not prove the server is there."""
        return False

    # --------------------------------------------------------------------------------

    def check(self) -> None:
        """Connect once (within ``PROBE_CONNECT_TIMEOUT``), read the version, and check
        the role has the privileges the scenarios need: CREATE on the database (each
        scenario gets a schema) and setting ``deadlock_timeout``, which the deadlock
        scenarios set and PostgreSQL lets only superusers set unless granted (docs:
        "Lock Management", ``GRANT SET ON PARAMETER`` since PostgreSQL 15).
        Raises :class:`SetupError` naming the GRANT that is missing."""
        engine = self.engine(
            poolclass=sa.pool.NullPool, connect_args={"connect_timeout": PROBE_CONNECT_TIMEOUT}
        )
        try:
            with engine.connect() as conn:
                self.version = conn.execute(sa.text("SHOW server_version")).scalar_one()
                may_create = conn.execute(
                    sa.text("SELECT has_database_privilege(current_database(), 'CREATE')")
                ).scalar_one()
                may_set = _may_set(conn, "deadlock_timeout", "1s")
        except sa.exc.DBAPIError as error:
            name = condition_of(error) or "error"
            raise SetupError(
                f"cannot connect to the {self.backend} server at {self.endpoint.address} "
                f"as {self.endpoint.user!r} ({name}: {first_line(error)})"
            ) from None
        finally:
            engine.dispose()
        if not may_create:
            raise SetupError(
                f"role {self.endpoint.user!r} may not create schemas in database "
                f"{self.endpoint.database!r}: GRANT CREATE ON DATABASE "
                f"{self.endpoint.database} TO {self.endpoint.user}, or use another role"
            )
        if not may_set:
            raise SetupError(
                f"role {self.endpoint.user!r} may not set deadlock_timeout (a superuser-only "
                "parameter), which the deadlock scenarios set: GRANT SET ON PARAMETER "
                f"deadlock_timeout TO {self.endpoint.user} (PostgreSQL 15 and later), or use "
                "a superuser"
            )

    def checked(self) -> Server:
        """:meth:`check` it and return it; if the check fails, stop it first (what was
        started for it is not left running) and raise the check's error."""
        try:
            self.check()
        except BaseException:
            self.stop()
            raise
        return self

    def demands_password(self) -> bool:
        """Whether the server refuses a wrong password (a 'trust' server accepts anything)."""
        if self._demands_password is None:
            engine = self.follow(
                sa.create_engine(
                    self.endpoint.url(password=secrets.token_hex(8)),
                    poolclass=sa.pool.NullPool,
                    connect_args=self.endpoint.connect_args(
                        {"connect_timeout": max(2, round(self.connect_timeout))}
                    ),
                )
            )
            try:
                with engine.connect():
                    self._demands_password = False
            except sa.exc.DBAPIError:
                self._demands_password = True
            finally:
                engine.dispose()
        return self._demands_password

    #: What the backend's start() cleared away that runs which died left behind (see
    #: ``reaped``), as the banner says it: what it did, to what.
    reaped_as = ("removed", "thing")

    def banner(self) -> str:
        """The run's one line about its server: backend, driver, version, address, database, the
        backend's own details (:meth:`banner_details`) and what it cleared away that runs
        which died left behind; never a password."""
        line = " ".join(
            [
                f"failspec: backend={self.backend} driver={drivers.current()} "
                f"PostgreSQL {self.version}",
                f"at {self.endpoint.address} database={self.endpoint.database}",
                *self.banner_details(),
            ]
        )
        if self.reaped:
            did, what = self.reaped_as
            line += f" ({did} {len(self.reaped)} {what}(s) an earlier run left behind)"
        return line

    def banner_details(self) -> list[str]:
        """The backend's own ``name=value`` pairs for the banner (none by default)."""
        return []

    @abstractmethod
    def stop(self) -> None:
        """Stop what was started; safe to call twice."""

    #: Whether :meth:`log_tail` can read the server's log.
    has_log = False

    def log_tail(self, lines: int = 20) -> str:
        return ""


def _may_set(conn: sa.Connection, parameter: str, value: str) -> bool:
    """Whether the connection's role may SET ``parameter`` (tried in a transaction that is
    rolled back, so nothing changes; a refusal is ``insufficient_privilege``)."""
    try:
        conn.execute(sa.text("SELECT set_config(:p, :v, true)"), {"p": parameter, "v": value})
    except sa.exc.DBAPIError as error:
        if condition_of(error) == "insufficient_privilege":
            return False
        raise
    finally:
        conn.rollback()
    return True


def _short(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:200] or type(error).__name__
