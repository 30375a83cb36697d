"""Members of a replicated cluster on the docker backend: containers from the run's image
on one Docker network the topology creates, each reached by the others through its
network alias (its name in the cluster) and by the harness through its published port.

Every member runs :data:`MEMBER_SCRIPT` before the image's entrypoint, with the image's
own programs and shell builtins only. It writes the members' ``pg_hba.conf`` (outside
the data directory; ``-c hba_file``), which lets the other members of the network
(``samenet``) connect for replication with the image's password (scram-sha-256). A
standby's first start makes its data directory with ``pg_basebackup -X stream -C -S
name -R`` from the primary; a member given a rejoin file (put into the stopped
container) runs ``pg_rewind`` from the new primary before it starts as its standby. So
pg_rewind runs while no server uses the data directory, and restarting a member is
starting its container, as for the run's own server (``docker.DockerServer``).
"""

from __future__ import annotations

import atexit
import contextlib
import io
import secrets
import tarfile

import docker
import docker.errors
import docker.models.networks
import sqlalchemy as sa
from testcontainers.core.network import Network

from failspec.harness.errors import SetupError
from failspec.harness.postgres import standby
from failspec.harness.postgres.ports import free_port
from failspec.harness.servers import container as tc
from failspec.harness.servers.base import Endpoint, Server, _short
from failspec.harness.servers.docker import DockerServer, prepare, server_args, start_container
from failspec.harness.servers.replication import PRIMARY, Topology

#: The role and database of every member (the image's POSTGRES_USER and POSTGRES_DB).
USER = DATABASE = "failspec"
#: Where the rejoin file goes: "<new primary's alias> <name>" asks the next start of the
#: member to rewind from that primary and follow it through the slot ``name``.
REJOIN_DIR = "/var/lib/postgresql"
REJOIN_FILE = "failspec-rejoin"

#: Run by ``sh -c`` before the image's entrypoint (which then execs the postmaster, so
#: the container's first process is still the server). Environment: the image's
#: POSTGRES_USER / POSTGRES_PASSWORD / PGDATA; FAILSPEC_CLONE_OF (the primary's alias),
#: FAILSPEC_CLONE_ADDR (its address on the network) and FAILSPEC_NAME for a standby.
#: ``-c hba_file`` comes last: it is the script's.
MEMBER_SCRIPT = r"""
set -eu
export PGPASSWORD="$POSTGRES_PASSWORD"
hba=/var/lib/postgresql/pg_hba.conf
printf '%s\n' 'local all all trust' 'local replication all trust' \
  'host all all all scram-sha-256' 'host replication all samenet scram-sha-256' > "$hba"
follow() {  # the data directory becomes a standby of $1 (address $3) through the slot $2
  : > "$PGDATA/standby.signal"
  printf "primary_conninfo = '%s user=%s password=%s application_name=%s'\n" \
    "$(conninfo "$1" "$3")" "$POSTGRES_USER" "$PGPASSWORD" "$2" \
    >> "$PGDATA/postgresql.auto.conf"
  printf "primary_slot_name = '%s'\n" "$2" >> "$PGDATA/postgresql.auto.conf"
}
# By address as well as name (libpq's hostaddr): once the primary's container is gone,
# its name no longer resolves, and the lookup (which no signal interrupts) takes the
# resolver's whole timeout, ~10 s, holding up a promotion that waits for the WAL
# receiver to stop. connect_timeout bounds a connect to an address nobody has any more.
conninfo() { printf 'host=%s hostaddr=%s port=5432 connect_timeout=2' "$1" "$2"; }
if [ -n "${FAILSPEC_CLONE_OF:-}" ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  pg_basebackup -D "$PGDATA" -X stream -C -S "$FAILSPEC_NAME" -R --no-sync \
    --checkpoint=fast \
    -d "host=$FAILSPEC_CLONE_OF user=$POSTGRES_USER application_name=$FAILSPEC_NAME"
  follow "$FAILSPEC_CLONE_OF" "$FAILSPEC_NAME" "$FAILSPEC_CLONE_ADDR"
fi
rejoin=/var/lib/postgresql/failspec-rejoin
if [ -s "$rejoin" ]; then
  read -r source name address < "$rejoin"
  # pg_rewind first runs crash recovery in a single-user postgres, which takes the
  # postmaster.pid of the killed server (PID 1) for a live one: PID 1 is now this
  # shell, its grandparent, which PG_GRANDPARENT_PID tells it to disregard (as pg_ctl
  # does; miscinit.c CreateLockFile).
  PG_GRANDPARENT_PID=$$ pg_rewind -D "$PGDATA" --no-sync \
    --source-server="host=$source user=$POSTGRES_USER dbname=postgres application_name=pg_rewind"
  follow "$source" "$name" "$address"
  # Consistent only once it has replayed the new primary's WAL past the point pg_rewind
  # copied up to; an idle primary writes nothing for seconds: a checkpoint writes now.
  psql -q -X -c CHECKPOINT "$(conninfo "$source" "$address") user=$POSTGRES_USER dbname=postgres"
  : > "$rejoin"  # done: the image has no rm; an empty file asks for nothing
fi
exec docker-entrypoint.sh "$@" -c hba_file="$hba"
"""


class DockerMember(DockerServer):
    """A member of a :class:`DockerTopology`: a :class:`DockerServer` known on the
    topology's network by ``alias``. Stopping the last member removes the network."""

    def __init__(
        self, topology: DockerTopology, alias: str, container: tc.FailFastPostgresContainer,
        endpoint: Endpoint,
    ) -> None:  # fmt: skip
        super().__init__(container, topology.image, endpoint, topology.connect_timeout, [])
        self.topology = topology
        self.alias = alias

    def address(self) -> str:
        """The member's IP address on the topology's network, as of now."""
        wrapped = self.container.get_wrapped_container()
        wrapped.reload()
        network = self.topology.network
        assert network is not None, "the topology's network is gone"
        return str(wrapped.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"])

    def stop(self) -> None:
        super().stop()
        self.topology._left(self)


class DockerTopology(Topology):
    """Members of a replicated cluster as containers from ``image`` on one Docker
    network, created with the first member and removed with the last. ``ready_timeout``
    and ``connect_timeout``: seconds. Raises ``SetupError`` (no daemon, no image, a
    member that does not start), as ``DockerServer.start`` does."""

    backend = DockerServer.backend

    def __init__(self, image: str, *, ready_timeout: float, connect_timeout: float) -> None:
        self.image = image
        self.ready_timeout = ready_timeout
        self.connect_timeout = connect_timeout
        self.network: Network | None = None
        self.members: list[DockerMember] = []
        self.password = ""
        self._prepared = False

    # -- the network ---------------------------------------------------------------------

    def _network(self) -> Network:
        if self.network is None:
            if not self._prepared:
                prepare(self.image)
                self._prepared = True
            try:
                network = Network(docker_network_kw={"labels": tc.owner_label()}).create()
            except docker.errors.DockerException as error:
                raise SetupError(f"cannot create a Docker network ({_short(error)})") from None
            atexit.register(_remove_network, network)  # after the members' (LIFO)
            self.network = network
        return self.network

    def _left(self, member: DockerMember | None) -> None:
        """``member`` was stopped (None: a member failed to start); the network goes
        with the last member."""
        if member in self.members:
            self.members.remove(member)
        if not self.members and self.network is not None:
            network, self.network = self.network, None
            _remove_network(network)

    # -- members -------------------------------------------------------------------------

    def _start(self, alias: str, env: dict[str, str]) -> DockerMember:
        network = self._network()
        container = (
            tc.FailFastPostgresContainer(
                self.image, username=USER, password=self.password, dbname=DATABASE,
                ready_timeout=self.ready_timeout,
            )
            .with_command(
                ["sh", "-c", MEMBER_SCRIPT, "failspec-member", "postgres",
                 *server_args(standby.CLUSTER_SETTINGS)]
            )
            .with_envs(**env)
            .with_network(network)
            .with_network_aliases(alias)
            # A member keeps its host port when it restarts, as a server keeps its
            # address: a connection string written before names it still.
            .with_bind_ports(5432, free_port())
            .with_kwargs(labels=tc.owner_label())
        )  # fmt: skip
        try:
            start_container(container)
            endpoint = Endpoint(
                container.get_container_host_ip(), container.mapped_port(), USER,
                self.password, DATABASE,
            )  # fmt: skip
        except BaseException:
            with contextlib.suppress(Exception):
                container.stop()
            self._left(None)
            raise
        member = DockerMember(self, alias, container, endpoint)
        self.members.append(member)
        return member

    def start_primary(self) -> DockerMember:
        self.password = secrets.token_urlsafe(18)  # the standbys copy the primary's role
        server = self._start(PRIMARY, {})
        server.checked()  # reads its version
        return server

    def start_standby(self, primary: Server, name: str) -> DockerMember:
        assert isinstance(primary, DockerMember)
        env = {
            "FAILSPEC_CLONE_OF": primary.alias,
            "FAILSPEC_CLONE_ADDR": primary.address(),
            "FAILSPEC_NAME": name,
        }
        server = self._start(name, env)
        server.version = primary.version
        return server

    isolates = True

    def isolate(self, member: Server) -> None:
        """Disconnect ``member``'s container from the cluster's network (``docker network
        disconnect``): its interface there goes, so its peers' packets to it are lost and
        its published port answers nothing; the connections it had stay open on the
        other end until a timeout notices."""
        assert isinstance(member, DockerMember)
        _network_of(member).disconnect(member.container.get_wrapped_container())

    def reconnect_network(self, member: Server) -> None:
        """Connect ``member``'s container to the cluster's network again, under its alias
        (Docker gives it back its address when it is free, as it is here)."""
        assert isinstance(member, DockerMember)
        wrapped = member.container.get_wrapped_container()
        _network_of(member).connect(wrapped, aliases=[member.alias])

    def rejoin(self, old: Server, new_primary: Server, name: str) -> None:
        assert isinstance(old, DockerMember) and isinstance(new_primary, DockerMember)
        wrapped = old.container.get_wrapped_container()
        wrapped.reload()
        if wrapped.status in ("running", "paused"):
            if wrapped.status == "paused":
                wrapped.unpause()
            wrapped.stop(timeout=10)  # the image's STOPSIGNAL: a fast shutdown
            old._wait_status("exited")
        _create_slot(new_primary, name)
        line = f"{new_primary.alias} {name} {new_primary.address()}\n"
        wrapped.put_archive(REJOIN_DIR, _file_archive(REJOIN_FILE, line))
        old.restart()  # the member script rewinds, then starts the server as a standby


def _network_of(member: DockerMember) -> docker.models.networks.Network:
    """The Docker SDK's handle on the network of ``member``'s topology."""
    assert member.topology.network is not None
    client = member.container.get_wrapped_container().client
    assert client is not None, "the container has no Docker client"
    return client.networks.get(member.topology.network.name)


def _create_slot(server: DockerMember, name: str) -> None:
    engine = server.engine(isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_create_physical_replication_slot(:n) WHERE NOT EXISTS "
                    "(SELECT 1 FROM pg_replication_slots WHERE slot_name = :n)"
                ),
                {"n": name},
            )
    finally:
        engine.dispose()


def _file_archive(name: str, text: str) -> bytes:
    """A tar archive of one file ``name`` holding ``text``, owned by the image's postgres
    user (uid 999) and writable by it, so the member script can empty it."""
    data = text.encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.uid, info.gid = len(data), 0o666, 999, 999
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _remove_network(network: Network) -> None:
    """Remove ``network`` if it is still there (safe to call twice)."""
    with contextlib.suppress(Exception):
        network.remove()
    # The Network opened a Docker client of its own and has no method to close it.
    with contextlib.suppress(Exception):
        network._docker.client.close()
