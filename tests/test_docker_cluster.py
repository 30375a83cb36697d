"""A replicated cluster on the docker backend (issue #16): a primary and a standby as
containers on one Docker network, failover by promotion, the old primary back as a
standby by pg_rewind, and nothing left behind.

Expected behaviour from the PostgreSQL documentation: "Streaming Replication" and
"Synchronous Replication" (a commit with ``synchronous_standby_names`` naming the standby
returns once the standby has flushed it, so it survives the primary), ``pg_promote``
("Failover"), libpq "Specifying Multiple Hosts" (``target_session_attrs=read-write``
connects to the host that accepts writes), and the pg_rewind reference page.

Needs a Docker daemon and a PostgreSQL image (the docker_image fixture in conftest.py).
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from failspec.harness.servers.container import OWNER_LABEL, owner_label
from failspec.harness.servers.replication import Cluster, PrimaryOf

docker = pytest.importorskip("docker")

from failspec.harness.servers.docker import prepare  # noqa: E402
from failspec.harness.servers.docker_cluster import DockerMember, DockerTopology  # noqa: E402


@pytest.fixture(scope="module")
def client(docker_image: str) -> Iterator[docker.DockerClient]:
    the_client = docker.from_env()
    yield the_client
    the_client.close()


def mine(items: list) -> list:
    """The containers or networks this process labelled."""
    me = owner_label()[OWNER_LABEL]
    # A network's labels are at the top of its attributes, a container's in its Config.
    labels = [item.attrs.get("Labels") or item.attrs["Config"]["Labels"] for item in items]
    return [item for item, found in zip(items, labels, strict=True) if found[OWNER_LABEL] == me]


def containers_of_mine(client) -> list:
    return mine(client.containers.list(all=True, filters={"label": OWNER_LABEL}))


def networks_of_mine(client) -> list:
    return mine(client.networks.list(filters={"label": OWNER_LABEL}))


def rows(engine: sa.Engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT x FROM t ORDER BY x")).scalars())


def on(cluster: Cluster, name: str, sql: str) -> object:
    with cluster.control(name) as conn:
        return conn.execute(sa.text(sql)).scalar()


def test_a_committed_synchronous_write_survives_failover_and_the_old_primary_rejoins(
    client, docker_image
):
    topology = DockerTopology(docker_image, ready_timeout=60, connect_timeout=5)
    cluster = Cluster(topology, 1)
    engines: list[sa.Engine] = []
    try:
        cluster.start()
        harness = PrimaryOf(cluster, 5).engine(isolation_level="AUTOCOMMIT", pool_pre_ping=True)
        engines.append(harness)
        # One network, every member on it and labelled as this run's.
        assert topology.network is not None
        assert [n.name for n in networks_of_mine(client)] == [topology.network.name]
        members = sorted(c.name for c in containers_of_mine(client))
        expected = sorted(
            m.container.get_wrapped_container().name for m in cluster.members.values()
        )
        assert members == expected and len(members) == 2
        for member in cluster.members.values():
            assert isinstance(member, DockerMember)
            attached = member.container.get_wrapped_container().attrs["NetworkSettings"]
            assert topology.network.name in attached["Networks"]
        assert cluster.in_recovery("standby1") and not cluster.in_recovery("primary")
        assert cluster.streams_to("standby1")

        with harness.connect() as conn:
            conn.execute(sa.text("CREATE TABLE t (x int)"))
            conn.execute(sa.text("INSERT INTO t VALUES (1)"))
        cluster.catch_up("standby1")
        assert on(cluster, "standby1", "SELECT count(*) FROM t WHERE x = 1") == 1

        cluster.require_synchronous("standby1")
        assert (
            on(cluster, "primary",
               "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby1'")
            == "sync"
        )  # fmt: skip
        url = cluster.url("primary", "standby1", target_session_attrs="read-write")
        assert len(url.query["host"]) == 2
        app = sa.create_engine(url)
        engines.append(app)
        with app.begin() as conn:  # returns once standby1 has flushed it
            conn.execute(sa.text("INSERT INTO t VALUES (2)"))

        cluster.crash("primary")
        assert cluster.member("primary").refusal() is not None
        cluster.promote("standby1")
        assert cluster.primary_name == "standby1" and not cluster.in_recovery("standby1")
        assert rows(harness) == [1, 2]  # the harness follows the primary of the moment

        app.dispose()  # the old primary's connections died with it
        with app.begin() as conn:
            conn.execute(sa.text("INSERT INTO t VALUES (3)"))
            assert conn.execute(sa.text("SELECT pg_is_in_recovery()")).scalar() is False
        assert on(cluster, "standby1", "SELECT count(*) FROM t WHERE x = 3") == 1

        cluster.rejoin("primary")
        assert cluster.in_recovery("primary")
        assert cluster.streams_to("primary")
        cluster.catch_up("primary")
        assert on(cluster, "primary", "SELECT array_agg(x ORDER BY x) FROM t") == [1, 2, 3]

        before = {c.id for c in containers_of_mine(client)}
        network_before = topology.network.name
        cluster.fresh()
        assert cluster.primary_name == "primary"
        assert not cluster.in_recovery("primary") and cluster.streams_to("standby1")
        assert on(cluster, "primary", "SELECT to_regclass('t') IS NULL") is True
        assert not before & {c.id for c in containers_of_mine(client)}
        assert [n.name for n in networks_of_mine(client)] != [network_before]
    finally:
        for engine in engines:
            engine.dispose()
        cluster.stop()
    assert containers_of_mine(client) == []
    assert networks_of_mine(client) == []


def test_a_network_left_by_a_killed_run_is_removed_by_the_next_start(client, docker_image):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    label = {OWNER_LABEL: json.dumps({"host": socket.gethostname(), "pid": int(gone.stdout),
                                      "started": "1"})}  # fmt: skip
    orphan = client.networks.create("failspec-test-orphan", labels=label)
    member = client.containers.create(docker_image, labels=label, network=orphan.name)
    alive = client.networks.create("failspec-test-alive", labels=owner_label())
    try:
        prepare(docker_image)
        remaining = {n.id for n in client.networks.list(filters={"label": OWNER_LABEL})}
        assert orphan.id not in remaining
        assert alive.id in remaining  # this run is alive: its network stays
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            member.remove(force=True)
        for network in (orphan, alive):
            with contextlib.suppress(docker.errors.NotFound):
                network.remove()
