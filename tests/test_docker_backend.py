"""The docker backend's bad input: one clear line, fast, and no container left behind.

Needs a Docker daemon and a PostgreSQL image (see the docker_image fixture in
conftest.py).
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from failspec.harness import servers
from failspec.harness.errors import SetupError
from failspec.harness.servers.container import OWNER_LABEL, FailFastPostgresContainer, owner_label
from failspec.harness.servers.settings import Settings

docker = pytest.importorskip("docker")


@pytest.fixture(scope="module")
def client(docker_image) -> Iterator[docker.DockerClient]:
    the_client = docker.from_env()
    yield the_client
    the_client.close()


def ours(client) -> list:
    """The containers this process made (its owner label names this host and pid): another
    run on the machine at the same time (a parallel worker, a second CI) has its own."""

    def mine(container) -> bool:
        owner = json.loads(container.labels[OWNER_LABEL])
        return owner.get("host") == socket.gethostname() and owner.get("pid") == os.getpid()

    return [c for c in client.containers.list(all=True, filters={"label": OWNER_LABEL}) if mine(c)]


def test_an_image_that_is_not_here_and_cannot_be_pulled_is_one_clear_line(client):
    started = time.monotonic()
    with pytest.raises(SetupError) as caught:
        servers.start(Settings(backend="docker", pg_image="failspec/no-such-image:0"))
    message = str(caught.value)
    assert "failspec/no-such-image:0" in message
    assert "tools/offline-postgres-image/build.py" in message
    assert "the simplest fix is -D backend=embedded" in message
    assert "\n" not in message
    assert time.monotonic() - started < 10
    assert ours(client) == []


def test_a_container_that_dies_before_it_is_ready_shows_its_last_words(client, docker_image):
    image = docker_image
    dockerfile = (
        f'FROM {image}\nENTRYPOINT ["/bin/sh", "-c", "echo broken on purpose >&2; exit 3"]\n'
    )
    # rm/forcerm: the build leaves no intermediate container behind (the SDK keeps them).
    client.images.build(
        fileobj=io.BytesIO(dockerfile.encode()), tag="failspec/broken:test", rm=True, forcerm=True
    )
    try:
        started = time.monotonic()
        with pytest.raises(SetupError, match=r"failspec/broken:test.*broken on purpose"):
            servers.start(Settings(backend="docker", pg_image="failspec/broken:test"))
        assert time.monotonic() - started < 10
        assert ours(client) == []
    finally:
        client.images.remove("failspec/broken:test", force=True)


def test_a_server_that_never_answers_over_tcp_is_not_ready_and_ends_at_the_deadline(
    client, docker_image
):
    # The image's server, listening on its Unix socket only: the container runs, psql
    # over TCP never answers (the same check as Testcontainers' PostgresContainer).
    container = (
        FailFastPostgresContainer(
            docker_image, username="failspec", password="p'w", dbname="failspec",
            ready_timeout=3,
        )
        .with_command(["postgres", "-c", "listen_addresses="])
        .with_kwargs(labels=owner_label())
    )  # fmt: skip
    started = time.monotonic()
    try:
        with pytest.raises(
            SetupError, match=r"was not ready within 3 s \(raise -D timeout_scale\)"
        ):
            container.start()
        waited = time.monotonic() - started
        assert container.get_wrapped_container().status == "running"
        assert 3 <= waited < 15
    finally:
        container.stop()
    assert ours(client) == []


def test_a_container_left_by_a_killed_run_is_removed_by_the_next_start(client, docker_image):
    image = docker_image
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    label = {"host": socket.gethostname(), "pid": int(gone.stdout), "started": "1"}
    orphan = client.containers.create(image, labels={OWNER_LABEL: json.dumps(label)})
    server = servers.start(Settings(backend="docker", pg_image=image))
    try:
        assert orphan.short_id in server.reaped
        assert "left behind" in server.banner()
        assert [c.id for c in ours(client)] == [server.container.get_wrapped_container().id]
    finally:
        server.stop()
    assert ours(client) == []
