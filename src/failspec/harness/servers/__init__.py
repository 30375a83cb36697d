"""The one PostgreSQL server a run uses: docker, embedded, or an existing one by URL.

``start(settings)`` starts (or finds) it and checks that the suite can work there;
``server.stop()`` ends whatever was started. Every failure to get a usable server is a
:class:`SetupError` with one line that names the problem and the fix.

Add a backend here: each is a :class:`Server` subclass (``base``) in a module of its own
(``embedded``, ``docker``, ``url``), an entry of ``BACKEND_CLASSES`` and its name in
``settings.BACKENDS`` (which the run's settings accept; tests/test_servers.py checks the
two agree): its classmethod
``start(settings)`` starts (or finds) the server and returns the object, whose
constructor only stores what ``start`` made. ``settings`` holds the run's settings
(behave's ``-D`` options and their environment twins); ``container`` the docker
backend's Testcontainers container.

This room builds on ``postgres`` and the kernel alone: what the run does around the
server (packet-filter rules of dead runs removed, schemas they left named in the banner)
is the caller's (``failspec.harness.hooks``).
"""

from __future__ import annotations

from failspec.harness.servers.base import PROBE_CONNECT_TIMEOUT, Endpoint, Server
from failspec.harness.servers.docker import DockerServer, docker_answers
from failspec.harness.servers.embedded import EmbeddedServer, EmbeddedTopology
from failspec.harness.servers.replication import Cluster, PrimaryOf, Topology
from failspec.harness.servers.settings import Settings
from failspec.harness.servers.url import UrlServer, UrlTopology

__all__ = [
    "BACKEND_CLASSES",
    "PROBE_CONNECT_TIMEOUT",
    "Cluster",
    "DockerServer",
    "EmbeddedServer",
    "Endpoint",
    "PrimaryOf",
    "Server",
    "UrlServer",
    "choose_backend",
    "docker_answers",
    "start",
    "topology",
]


BACKEND_CLASSES: dict[str, type[Server]] = {
    "docker": DockerServer,
    "embedded": EmbeddedServer,
    "url": UrlServer,
}


def choose_backend(settings: Settings) -> str:
    """The backend to use. ``auto`` never picks ``url``: a DATABASE_URL left in the
    environment must not send the suite to somebody's real database unasked."""
    if settings.backend != "auto":
        return settings.backend
    return "docker" if docker_answers() else "embedded"


def start(settings: Settings) -> Server:
    """Start (or find) the run's server, check it is usable, and return it."""
    return BACKEND_CLASSES[choose_backend(settings)].start(settings).checked()


def topology(settings: Settings, server: Server) -> Topology | str:
    """How to build a replicated cluster beside the run's ``server`` on its backend, or
    why there is none (a server by URL: the harness cannot start its standbys)."""
    if isinstance(server, EmbeddedServer):
        return EmbeddedTopology(
            server.pg.bin_dir,
            ready_timeout=settings.seconds(15),
            connect_timeout=settings.seconds(5),
        )
    if isinstance(server, DockerServer):
        from failspec.harness.servers.docker_cluster import DockerTopology

        return DockerTopology(
            server.image,
            ready_timeout=settings.seconds(60),
            connect_timeout=settings.seconds(5),
        )
    if isinstance(server, UrlServer) and settings.standby_url:
        return UrlTopology(server, settings.standby_url, settings.seconds(5))
    return (
        f"the {server.backend} backend uses a server it did not start, so it cannot start "
        "a standby beside it: name one of it with -D standby_url=... (FAILSPEC_STANDBY_URL) "
        "for the scenarios that only use a standby"
    )
