"""A run with a replicated cluster (issue #16) leaves nothing behind when it is interrupted
(SIGINT: it stops the primary and the standby itself) or killed (SIGKILL: the next run's
start stops them): no PostgreSQL process, no server directory, no container, no network.

Each run is behave on tests/fixtures/interrupt-cluster, whose one @replication scenario
puts a replication fault in force (FAILSPEC_TEST_FAULT: the standby cut off, the network
between primary and standby partitioned, or the standby's processes stopped), writes
where its cluster is to FAILSPEC_TEST_MARKER and waits for
the signal; the test signals it once that file is written (no sleep).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from failspec.harness import postgres, waiting
from failspec.harness.postgres.pidfile import postmaster_pid
from tests.owned import server_dirs_of

ROOT = Path(__file__).resolve().parent.parent
CLUSTER = ROOT / "tests" / "fixtures" / "interrupt-cluster"
#: How long a run may take to stand up its server and its cluster, and reach the step (s).
STARTED = 120
#: The faults a run is interrupted in: ``Failover``'s verbs, each undone by the scenario's end.
FAULTS = ("cut_off", "partition", "stop_standby")
#: What the docker backend's runs need here: the harness removes its own containers.
DOCKER_ENV = {
    "TESTCONTAINERS_RYUK_DISABLED": "true",
    "TESTCONTAINERS_CONNECTION_MODE": "docker_host",
}


class ClusterRun:
    """A behave run of the fixture, from its start until the marker says where its cluster
    is; on a failure of the test, the run is killed and nothing of it is left either."""

    def __init__(self, marker: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.marker = marker
        self.process = subprocess.Popen(
            [sys.executable, "-m", "behave", str(CLUSTER), "-f", "plain",
             "--junit-directory", str(marker.parent / "junit"), *args],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, **(env or {}), "FAILSPEC_TEST_MARKER": str(marker)},
        )  # fmt: skip
        self.pid = self.process.pid

    def wait_for_the_cluster(self) -> dict:
        """What the run's step wrote, once it has (its fault is then in force)."""

        def reported() -> str | None:
            if self.process.poll() is not None:  # it ended before the step: say why
                raise AssertionError(self.process.communicate()[0])
            return self.marker.exists() and self.marker.read_text()

        return json.loads(waiting.until(reported, timeout=STARTED, what="the cluster's step"))

    def signal(self, sig: signal.Signals) -> str:
        """Send ``sig`` and return the run's output once it has ended."""
        self.process.send_signal(sig)
        output, _ = self.process.communicate(timeout=60)
        return output

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate()


def server_processes(bases: list[Path]) -> list[psutil.Process]:
    """Every process of the servers running on ``bases``: postmasters and their children
    (a standby's WAL receiver, a primary's WAL senders)."""
    found = []
    for base in bases:
        pid = postmaster_pid(base / "data")
        if pid is not None:
            postmaster = psutil.Process(pid)
            found += [postmaster, *postmaster.children(recursive=True)]
    return found


def running(server: list[psutil.Process]) -> list[str]:
    """Those of ``server`` still running (a zombie has ended), as 'pid name'."""
    left = []
    for process in server:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{process.pid} {process.name()}")
        except psutil.NoSuchProcess:
            continue
    return left


def the_runs_servers(run: ClusterRun) -> tuple[list[Path], list[psutil.Process]]:
    """The run's server directories and processes once its cluster is up: its own server,
    the cluster's primary and its standby (the only one with standby.signal)."""
    found = run.wait_for_the_cluster()
    bases = server_dirs_of({run.pid})
    assert {Path(b) for b in found["bases"]} <= set(bases) and len(bases) == 3, bases
    standbys = [b for b in bases if (b / "data" / "standby.signal").exists()]
    assert len(standbys) == 1, bases
    server = server_processes(bases)
    assert len(server) > 3, "postmasters and their children"
    return bases, server


@pytest.fixture
def reaped_after() -> Iterator[None]:
    """On a failure of the test, what its run left is removed as the next run would."""
    yield
    postgres.reap_stale_servers()


@pytest.mark.server
@pytest.mark.parametrize("fault", FAULTS)
def test_a_run_interrupted_in_a_replication_fault_stops_the_cluster_and_leaves_nothing(
    tmp_path, reaped_after, fault
):
    run = ClusterRun(
        tmp_path / "cluster.json", "-D", "backend=embedded", env={"FAILSPEC_TEST_FAULT": fault}
    )
    try:
        bases, server = the_runs_servers(run)

        output = run.signal(signal.SIGINT)
    finally:
        run.kill()

    assert run.process.returncode == 130, output
    assert "failspec: interrupted by SIGINT after 0 of 1 scenarios: 1 not finished" in output
    assert running(server) == [], output
    assert [base for base in bases if base.exists()] == [], output


@pytest.mark.server
@pytest.mark.parametrize("fault", FAULTS)
def test_a_cluster_left_by_a_killed_run_is_stopped_by_the_next_start(tmp_path, reaped_after, fault):
    run = ClusterRun(
        tmp_path / "cluster.json", "-D", "backend=embedded", env={"FAILSPEC_TEST_FAULT": fault}
    )
    try:
        bases, server = the_runs_servers(run)

        postmasters = {postmaster_pid(base / "data") for base in bases}
        assert None not in postmasters, bases
        run.signal(signal.SIGKILL)  # nothing of the run's own cleanup runs
        assert [base for base in bases if base.exists()] == bases, "left behind"

        stopped = postgres.reap_stale_servers()  # what the next run's start does first
        # Each was stopped by this start, or, in the moment since the kill, by the start of
        # another run on this machine (which reaps every dead run's servers the same way).
        assert all(pid in stopped or not psutil.pid_exists(pid) for pid in postmasters), (
            postmasters,
            stopped,
        )
        waiting.until(
            lambda: not running(server) and not any(base.exists() for base in bases),
            timeout=15, what="the killed run's primary, standby and server stopped and removed",
        )  # fmt: skip
    finally:
        run.kill()


# -- the docker backend ------------------------------------------------------------------


def labelled_by(pid: int, client) -> tuple[list[str], list[str]]:
    """The names of the containers and networks labelled as made by process ``pid`` here."""
    from failspec.harness.servers.container import OWNER_LABEL

    def made_by_run(labels: dict[str, str]) -> bool:
        owner = json.loads(labels[OWNER_LABEL])
        return owner.get("host") == socket.gethostname() and owner.get("pid") == pid

    containers = client.containers.list(all=True, filters={"label": OWNER_LABEL})
    networks = client.networks.list(filters={"label": OWNER_LABEL})
    return (
        sorted(c.name for c in containers if made_by_run(c.labels)),
        sorted(n.name for n in networks if made_by_run(n.attrs.get("Labels") or {})),
    )


@pytest.fixture
def client(docker_image: str) -> Iterator:
    import docker

    from failspec.harness.servers.docker import prepare

    the_client = docker.from_env()
    yield the_client
    prepare(docker_image)  # on a failure, what the test's run left goes
    the_client.close()


def docker_run(tmp_path: Path, docker_image: str, fault: str = "cut_off") -> ClusterRun:
    return ClusterRun(
        tmp_path / "cluster.json", "-D", "backend=docker", "-D", f"pg_image={docker_image}",
        env={**DOCKER_ENV, "FAILSPEC_TEST_FAULT": fault},
    )  # fmt: skip


def the_runs_containers(run: ClusterRun, client) -> tuple[list[str], list[str]]:
    """The run's containers (its server, the primary, the standby) and its one network."""
    found = run.wait_for_the_cluster()
    containers, networks = labelled_by(run.pid, client)
    assert set(found["containers"]) <= set(containers) and len(containers) == 3, containers
    assert networks == [found["network"]]
    return containers, networks


@pytest.mark.parametrize("fault", FAULTS)
def test_a_docker_run_interrupted_in_a_replication_fault_leaves_no_container_or_network(
    tmp_path, client, docker_image, fault
):
    run = docker_run(tmp_path, docker_image, fault)
    try:
        the_runs_containers(run, client)

        output = run.signal(signal.SIGINT)
    finally:
        run.kill()

    assert run.process.returncode == 130, output
    assert labelled_by(run.pid, client) == ([], []), output


def test_a_docker_cluster_left_by_a_killed_run_is_removed_by_the_next_start(
    tmp_path, client, docker_image
):
    from failspec.harness.servers.docker import prepare

    run = docker_run(tmp_path, docker_image)
    try:
        containers, networks = the_runs_containers(run, client)

        run.signal(signal.SIGKILL)
        assert labelled_by(run.pid, client) == (containers, networks), "left behind"

        prepare(docker_image)  # what the next run's start does first
        assert labelled_by(run.pid, client) == ([], [])
    finally:
        run.kill()
