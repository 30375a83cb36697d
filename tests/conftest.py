"""Shared fixtures: one embedded server for the tests that need a real PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from failspec.harness import servers
from failspec.harness.scenario.workspace import Run
from failspec.harness.servers import Server
from failspec.harness.servers.settings import Settings


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    started = servers.start(Settings(backend="embedded"))
    yield started
    started.stop()


@pytest.fixture
def run(server: Server) -> Iterator[Run]:
    the_run = Run(server)
    yield the_run
    the_run.close()


@pytest.fixture(scope="session")
def docker_image() -> str:
    """The PostgreSQL image for docker-backend tests: FAILSPEC_PG_IMAGE, else the default.

    Skipped (with the reason) without a daemon or without the image on this machine;
    under CI, where the docker backend must be tested, that is a failure instead.
    """
    image = os.environ.get("FAILSPEC_PG_IMAGE") or Settings().pg_image
    reason = None
    if not servers.docker_answers():
        reason = "no Docker daemon answers"
    else:
        import docker

        client = docker.from_env()
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            reason = (
                f"image {image!r} is not on this machine: build one with "
                "tools/offline-postgres-image/build.py and set FAILSPEC_PG_IMAGE"
            )
        finally:
            client.close()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: CI must test the docker backend")
        pytest.skip(reason)
    return image
