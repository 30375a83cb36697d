"""A replicated cluster: one primary and its standbys, kept current by PostgreSQL's own
streaming replication, and the faults that decide whether an acknowledged payment
survives a failover (docs: "High Availability, Load Balancing, and Replication";
"Write Ahead Log" settings ``synchronous_commit``, ``synchronous_standby_names``;
"Hot Standby").

A backend that starts servers builds the members (:class:`Topology`: the embedded one
with ``pg_basebackup`` and ``pg_rewind`` from the same binaries, the docker one as
containers on one network); :class:`Cluster` controls them the same way on every
backend, with SQL: ``pg_promote()``, ``ALTER SYSTEM`` + ``pg_reload_conf()`` and the
replay controls ``pg_wal_replay_pause()`` / ``pg_wal_replay_resume()``. Failover is
PostgreSQL's own promotion, what failover managers call underneath: no consensus here.

:class:`PrimaryOf` is the cluster as one :class:`Server`: whatever member is the
primary at the moment. The harness's own connections (the run's schemas, the guards)
go through it, so they follow a promotion; the application's connections do not:
they go where their connection string says (:meth:`Cluster.url`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection

from failspec import drivers
from failspec.harness import waiting
from failspec.harness.servers.base import Endpoint, Server

#: The primary's name when the cluster is built; standbys are named STANDBY + number.
PRIMARY = "primary"
STANDBY = "standby"
#: The harness's connections to members for control (ALTER SYSTEM, pg_promote).
CONTROL_APP = "failspec:cluster-control"


class Topology(ABC):
    """How a backend builds the members of a cluster. Each member is a :class:`Server`
    of that backend, with its server control (crash, restart, pause, resume, stop,
    log_tail); the cluster's own control is SQL (:class:`Cluster`)."""

    backend = "?"
    #: Whether the members are the harness's: it can crash, promote, cut them off, and
    #: it names the standbys (their ``application_name``), so it knows when one streams.
    #: False for a user's own primary and standby (``url``).
    controllable = True

    @abstractmethod
    def start_primary(self) -> Server:
        """A new server that can be a primary: ``wal_level=replica``, WAL senders and
        replication slots, ``hot_standby=on``, ``full_page_writes`` and ``wal_log_hints``
        on (pg_rewind needs them), ``wal_receiver_status_interval=1s``. Raises
        ``SetupError`` when it cannot be started."""

    @abstractmethod
    def start_standby(self, primary: Server, name: str) -> Server:
        """A new standby of the running ``primary`` (made by ``pg_basebackup -X stream
        -C -S name -R``), named ``name`` (its ``application_name`` towards the primary,
        and its replication slot), started and streaming. Raises ``SetupError``."""

    #: How a standby is partitioned from its primary (:meth:`Cluster.isolate`): True
    #: when the topology takes the member off the network (docker: the container leaves
    #: the cluster's network, so nothing reaches it, the application neither); False when
    #: the harness puts a relay of its own between the two (:meth:`relay_conninfo`).
    isolates = False

    def relay_conninfo(self, primary: Server, name: str, host: str, port: int) -> str:
        """The ``primary_conninfo`` with which standby ``name`` streams from ``primary``
        through a TCP relay at ``host``:``port`` (libpq "Parameter Key Words"). Raises
        ``NotImplementedError`` on a topology whose members cannot reach the harness's
        relay (:attr:`isolates` is then True)."""
        raise NotImplementedError(f"{self.backend}: members cannot stream through a relay")

    def isolate(self, member: Server) -> None:
        """Take ``member`` off the network: nothing reaches it or leaves it, and the
        connections it had stay open, unanswered. Raises ``NotImplementedError`` where
        :attr:`isolates` is False."""
        raise NotImplementedError(f"{self.backend}: members cannot be taken off the network")

    def reconnect_network(self, member: Server) -> None:
        """Undo :meth:`isolate`: ``member`` is on the network again at its old address."""
        raise NotImplementedError(f"{self.backend}: members cannot be taken off the network")

    @abstractmethod
    def rejoin(self, old: Server, new_primary: Server, name: str) -> None:
        """Bring ``old``, a primary that crashed or stopped, back as a standby named
        ``name`` of ``new_primary``, with ``pg_rewind`` (as failover managers do), and
        start it. Raises ``SetupError``."""


class Cluster:
    """A primary and ``standbys`` standbys of one backend, started on :meth:`start`.

    Members are known by name (``primary``, ``standby1`` …); the names stay with the
    servers when roles change (after a promotion ``standby1`` is the primary).
    ``connect_timeout``: seconds for the harness's control connections.
    """

    def __init__(self, topology: Topology, standbys: int = 1, *, connect_timeout: float = 5.0):
        self.topology = topology
        self.standby_count = standbys
        self.connect_timeout = connect_timeout
        self.members: dict[str, Server] = {}
        self.primary_name = PRIMARY
        #: Whether anything changed the cluster since it was built (a fault, a setting,
        #: a promotion): then the next scenario gets a new one (:meth:`fresh`).
        self.touched = False
        #: The conninfo each cut-off standby streamed with, restored by :meth:`reconnect`.
        self._conninfo: dict[str, str] = {}

    # -- building ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the primary and its standbys; return once every standby streams."""
        try:
            primary = self.topology.start_primary()
            self.members = {PRIMARY: primary}
            self.primary_name = PRIMARY
            for number in range(1, self.standby_count + 1):
                name = f"{STANDBY}{number}"
                self.members[name] = self.topology.start_standby(primary, name)
            for name in self.standby_names():
                if self.topology.controllable:
                    self.wait_streaming(name)
        except BaseException:
            self.stop()
            raise
        self.touched = False

    def fresh(self) -> None:
        """Make sure the cluster is as :meth:`start` leaves it: rebuilt if anything
        touched it (its members then are new servers)."""
        if self.members and not self.touched:
            return
        self.stop()
        self.start()

    def stop(self) -> None:
        """Stop and remove every member (safe to call twice)."""
        members, self.members = self.members, {}
        for server in members.values():
            with contextlib.suppress(Exception):
                server.stop()

    # -- who is who --------------------------------------------------------------------

    @property
    def primary(self) -> Server:
        """The member that is the primary now."""
        return self.members[self.primary_name]

    def member(self, name: str) -> Server:
        """Member ``name``; raises ``ValueError`` naming the members there are."""
        try:
            return self.members[name]
        except KeyError:
            known = sorted(self.members)
            raise ValueError(f"the cluster has no member {name!r}: {known}") from None

    def standby_names(self) -> list[str]:
        """The names of the members that are not the primary now."""
        return [name for name in self.members if name != self.primary_name]

    def url(
        self, *names: str, target_session_attrs: str | None = None,
        via: dict[str, tuple[str, int]] | None = None,
    ) -> URL:  # fmt: skip
        """The application's connection string for the members ``names`` (in order), as
        a libpq multi-host string when there are several (docs: libpq "Connection
        Strings", "Specifying Multiple Hosts"); ``target_session_attrs`` as libpq takes it
        (``read-write``, ``primary`` …). The address is the member's of this moment: it
        does not follow a promotion, as a connection string does not. ``via``: the
        (host, port) through which a member is reached instead (a fault proxy in front
        of it)."""
        endpoints = [self.member(name).endpoint for name in names]
        for i, name in enumerate(names):
            if via and name in via:
                host, port = via[name]
                endpoints[i] = dataclasses.replace(endpoints[i], host=host, port=port)
        first = endpoints[0]
        query: dict[str, Any] = dict(first.params)
        if target_session_attrs is not None:
            query["target_session_attrs"] = target_session_attrs
        if len(endpoints) == 1:
            return first.url().update_query_dict(query)
        query["host"] = [f"{e.host}:{e.port}" for e in endpoints]
        return URL.create(
            drivers.current().dialect, username=first.user, password=first.password,
            database=first.database, query=query,
        )  # fmt: skip

    # -- control, the same on every backend ---------------------------------------------

    @contextlib.contextmanager
    def control(self, name: str) -> Iterator[Connection]:
        """An autocommit connection to member ``name`` for the harness's control."""
        engine = self.member(name).engine(
            isolation_level="AUTOCOMMIT",
            poolclass=sa.pool.NullPool,
            connect_args={"application_name": CONTROL_APP},
        )
        try:
            with engine.connect() as conn:
                yield conn
        finally:
            engine.dispose()

    def _scalar(self, name: str, sql: str, **params: Any) -> Any:
        with self.control(name) as conn:
            return conn.execute(sa.text(sql), params).scalar()

    def set_on(self, name: str, setting: str, value: str) -> None:
        """``ALTER SYSTEM SET setting = value`` on member ``name`` and reload its
        configuration; returns once the member's own sessions see the new value."""
        self.touched = True
        with self.control(name) as conn:
            conn.execute(sa.text(f"ALTER SYSTEM SET {setting} = " + _literal(value)))
            conn.execute(sa.text("SELECT pg_reload_conf()"))
        # A reload is a signal: the postmaster and then each process reads the file.
        waiting.until(
            lambda: self._scalar(name, "SELECT current_setting(:s)", s=setting) == value,
            timeout=self.connect_timeout, what=f"{setting} = {value!r} on {name}",
        )  # fmt: skip

    def require_synchronous(self, names: str) -> None:
        """``synchronous_standby_names = names`` on the primary (``'standby1'``,
        ``'ANY 1 (standby1, standby2)'``; empty: asynchronous) and, for each standby it
        names, wait until the primary counts it synchronous (``pg_stat_replication``'s
        ``sync_state``)."""
        self.set_on(self.primary_name, "synchronous_standby_names", names)
        if names:
            waiting.until(
                lambda: self._scalar(
                    self.primary_name,
                    "SELECT count(*) FROM pg_stat_replication "
                    "WHERE sync_state IN ('sync', 'quorum')",
                ) > 0,
                timeout=self.connect_timeout, what="a synchronous standby",
            )  # fmt: skip

    def cut(self, name: str) -> None:
        """Cut standby ``name`` off from the primary: it keeps serving reads of what it
        has, and receives nothing more (its WAL receiver is stopped by an empty
        ``primary_conninfo``, reloaded). Returns once the primary no longer streams to it."""
        self._conninfo[name] = self._scalar(name, "SELECT current_setting('primary_conninfo')")
        self.set_on(name, "primary_conninfo", "")
        waiting.until(
            lambda: not self.streams_to(name), timeout=self.connect_timeout,
            what=f"the primary to stop streaming to {name}",
        )  # fmt: skip

    def reconnect(self, name: str) -> None:
        """Undo :meth:`cut` or :meth:`stream_via`: the standby streams with the
        ``primary_conninfo`` it had before; returns once it does."""
        self.set_on(name, "primary_conninfo", self._conninfo.pop(name))
        self.wait_streaming(name)

    def stream_via(self, name: str, host: str, port: int) -> None:
        """Make standby ``name`` stream from the primary through a TCP relay at
        ``host``:``port`` (the WAL receiver restarts with the new ``primary_conninfo``);
        returns once the primary streams to it over TCP (``pg_stat_replication``'s
        ``client_addr`` is set; over a Unix socket it is null). :meth:`reconnect` undoes it."""
        conninfo = self.topology.relay_conninfo(self.primary, name, host, port)
        self._conninfo.setdefault(
            name, self._scalar(name, "SELECT current_setting('primary_conninfo')")
        )
        self.set_on(name, "primary_conninfo", conninfo)
        waiting.until(
            lambda: self._scalar(
                self.primary_name,
                "SELECT count(*) FROM pg_stat_replication WHERE application_name = :n "
                "AND state = 'streaming' AND client_addr IS NOT NULL",
                n=name,
            ), timeout=self.connect_timeout * 2, what=f"{name} streaming through the relay",
        )  # fmt: skip

    def isolate(self, name: str) -> None:
        """Take member ``name`` off the network (:meth:`Topology.isolate`)."""
        self.touched = True
        self.topology.isolate(self.member(name))

    def reconnect_network(self, name: str) -> None:
        """Put member ``name`` back on the network (:meth:`Topology.reconnect_network`)."""
        self.topology.reconnect_network(self.member(name))

    def pause(self, name: str) -> None:
        """Stop every process of member ``name`` where it stands (SIGSTOP; docker's
        pause): its connections stay open, unanswered."""
        self.touched = True
        self.member(name).pause()

    def resume(self, name: str) -> None:
        """Let member ``name``'s processes run again (SIGCONT; docker's unpause)."""
        self.member(name).resume()

    def streams_to(self, name: str) -> bool:
        """Whether the primary has a WAL sender streaming to standby ``name``."""
        return bool(
            self._scalar(
                self.primary_name,
                "SELECT count(*) FROM pg_stat_replication WHERE application_name = :n "
                "AND state = 'streaming'",
                n=name,
            )
        )

    def primary_holds_feedback(self, name: str) -> bool:
        """Whether the primary keeps row versions for standby ``name``'s queries: its
        replication slot has an ``xmin`` (``hot_standby_feedback``)."""
        return bool(
            self._scalar(
                self.primary_name,
                "SELECT count(*) FROM pg_replication_slots WHERE slot_name = :n "
                "AND xmin IS NOT NULL",
                n=name,
            )
        )

    def wait_streaming(self, name: str) -> None:
        """Return once the primary streams to standby ``name``; raises
        ``waiting.WaitTimeout`` after twice the connect timeout (s)."""
        waiting.until(
            lambda: self.streams_to(name), timeout=self.connect_timeout * 2,
            what=f"the primary streaming to {name}",
        )  # fmt: skip

    def pause_replay(self, name: str) -> None:
        """Pause replay on standby ``name`` (``pg_wal_replay_pause()``): it still receives
        and confirms WAL, but what it shows stays as it was. Returns once paused."""
        self.touched = True
        with self.control(name) as conn:
            conn.execute(sa.text("SELECT pg_wal_replay_pause()"))
        waiting.until(
            lambda: self._scalar(name, "SELECT pg_get_wal_replay_pause_state()") == "paused",
            timeout=self.connect_timeout, what=f"replay paused on {name}",
        )  # fmt: skip

    def resume_replay(self, name: str) -> None:
        """Let standby ``name`` replay again (``pg_wal_replay_resume()``)."""
        with self.control(name) as conn:
            conn.execute(sa.text("SELECT pg_wal_replay_resume()"))

    def catch_up(self, name: str) -> None:
        """Return once standby ``name`` has replayed everything the primary has written
        so far (``pg_last_wal_replay_lsn()`` ≥ the primary's ``pg_current_wal_lsn()``)."""
        target = self._scalar(self.primary_name, "SELECT pg_current_wal_lsn()::text")
        waiting.until(
            lambda: self._scalar(
                name, "SELECT pg_last_wal_replay_lsn() >= CAST(:t AS pg_lsn)", t=target
            ),
            timeout=self.connect_timeout, what=f"{name} replaying up to {target}",
        )  # fmt: skip

    def promote(self, name: str) -> None:
        """Promote standby ``name`` (``pg_promote(wait => true)``): it replays what it
        received, leaves recovery and accepts writes on a new timeline. Returns once it
        does; raises ``RuntimeError`` if PostgreSQL says the promotion did not finish."""
        self.touched = True
        seconds = max(1, round(self.connect_timeout * 2))
        done = self._scalar(name, f"SELECT pg_promote(true, {seconds})")
        if not done:
            raise RuntimeError(f"{name} was not promoted within {seconds} s")
        self.primary_name = name

    def crash(self, name: str) -> None:
        """End member ``name`` abruptly (the backend's crash: no shutdown checkpoint)."""
        self.touched = True
        self.member(name).crash()

    def rejoin(self, name: str) -> None:
        """Bring member ``name`` (an old primary, crashed) back as a standby of the
        current primary (:meth:`Topology.rejoin`); returns once it streams."""
        self.touched = True
        self.topology.rejoin(self.member(name), self.primary, name)
        self.wait_streaming(name)

    def in_recovery(self, name: str) -> bool:
        """Whether member ``name`` is a standby now (``pg_is_in_recovery()``)."""
        return bool(self._scalar(name, "SELECT pg_is_in_recovery()"))


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class PrimaryOf(Server):
    """The cluster as the one server of a scenario: whichever member is the primary now.
    Its endpoint is the primary's of the moment, so engines made by :meth:`engine` or
    :meth:`follow` (the run's schemas, the guards) connect to the new primary after a
    promotion; server control acts on the primary of the moment."""

    controllable = True
    has_log = True

    def __init__(self, cluster: Cluster, connect_timeout: float) -> None:
        self.cluster = cluster
        super().__init__(cluster.primary.endpoint, connect_timeout)
        self.backend = cluster.topology.backend
        self.version = cluster.primary.version
        self.controllable = cluster.topology.controllable
        self.has_log = cluster.primary.has_log

    @property
    def endpoint(self) -> Endpoint:
        return self.cluster.primary.endpoint

    @endpoint.setter
    def endpoint(self, value: Endpoint) -> None:
        pass  # always the primary's of the moment

    @classmethod
    def start(cls, settings: Any) -> Server:  # pragma: no cover - made by a Cluster
        raise NotImplementedError("a cluster's primary is made by Cluster.start")

    def crash(self) -> None:
        self.cluster.crash(self.cluster.primary_name)

    def restart(self) -> None:
        self.cluster.touched = True
        self.cluster.primary.restart()

    def pause(self) -> None:
        self.cluster.touched = True
        self.cluster.primary.pause()

    def resume(self) -> None:
        self.cluster.primary.resume()

    def process_ended(self) -> bool:
        return self.cluster.primary.process_ended()

    def log_tail(self, lines: int = 20) -> str:
        return self.cluster.primary.log_tail(lines)

    def stop(self) -> None:
        """The cluster outlives a scenario; the run stops it (:meth:`Cluster.stop`)."""


#: Builds a backend's topology from the run's settings.
TopologyFactory = Callable[[], Topology]
