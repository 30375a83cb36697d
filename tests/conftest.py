"""Shared fixtures: one embedded server for the tests that need a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from failspec.harness import servers
from failspec.harness.servers import Server
from failspec.harness.settings import Settings
from failspec.harness.workspace import Run


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
