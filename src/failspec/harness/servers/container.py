"""PostgreSQL in a container, through Testcontainers, with container-level faults.

The container is Testcontainers' ``DockerContainer`` configured as its
``PostgresContainer`` configures one (the image's ``POSTGRES_USER``, ``POSTGRES_PASSWORD``
and ``POSTGRES_DB``, port 5432 exposed), and it is ready when the same check
``PostgresContainer`` makes succeeds: ``psql`` inside the container runs a query as that
user on that database over TCP to 127.0.0.1. The check is a wait strategy, Testcontainers'
public way to say when a container is ready (``waiting_for``), instead of the
``_connect`` hook of ``PostgresContainer``'s base class ``DbContainer``, which is
deprecated for removal. ``PostgresContainer`` itself waits up to 120 s, even after the
container has died; this strategy gives up at once when the container exits, and at a
deadline the run chooses, so a broken image costs seconds, not minutes.
"""

from __future__ import annotations

import contextlib
import json
import socket
from typing import Any, TypeVar

import docker
import docker.errors
from testcontainers.core.config import testcontainers_config
from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import WaitStrategy, WaitStrategyTarget

from failspec.harness import waiting
from failspec.harness.errors import SetupError
from failspec.harness.processes import Owner

#: PostgreSQL's port inside the container (the image's default).
PORT = 5432

Container = TypeVar("Container", bound="FailFastPostgresContainer")


class ContainerExited(Exception):
    """The container stopped while it was expected to become ready."""


class PostgresAnswers(WaitStrategy):
    """Ready when ``psql`` inside the container runs ``select 1;`` as ``username`` on
    ``dbname`` over TCP to 127.0.0.1: PostgresContainer's check (its query is ``select
    version();``). Over TCP, the server that answers is the final one, not the official
    image's temporary server for its init scripts, which listens on the Unix socket only.
    Tried every 0.05 s while the container runs; raises :class:`ContainerExited` (with
    the log's last lines) as soon as the container has exited or died, and TimeoutError
    once ``timeout`` (s) has passed (``with_startup_timeout`` may change it, in whole
    seconds)."""

    def __init__(self, username: str, password: str, dbname: str, timeout: float) -> None:
        super().__init__()
        self.with_poll_interval(0.05)
        self._startup_timeout = timeout  # what with_startup_timeout sets, but not rounded
        quoted = password.replace("'", "'\"'\"'")  # inside sh's single quotes
        self.command = [
            "sh", "-c",
            f"PGPASSWORD='{quoted}' psql --username {username} --dbname {dbname} "
            "--host 127.0.0.1 -c 'select 1;'",
        ]  # fmt: skip

    def wait_until_ready(self, container: WaitStrategyTarget) -> None:
        if not isinstance(container, FailFastPostgresContainer):
            raise TypeError(
                f"PostgresAnswers waits for a FailFastPostgresContainer, not {container!r}"
            )
        target = container

        def answers() -> bool:
            wrapped = target.get_wrapped_container()
            wrapped.reload()
            if wrapped.status in ("exited", "dead"):
                raise ContainerExited(target.log_tail())
            if wrapped.status != "running":
                return False
            return target.exec(self.command).exit_code == 0

        try:
            waiting.until(
                answers, timeout=self._startup_timeout, what="readiness",
                interval=self._poll_interval,
            )  # fmt: skip
        except waiting.WaitTimeout as timeout:
            raise TimeoutError(str(timeout)) from None


class FailFastPostgresContainer(DockerContainer):
    """A PostgreSQL container whose readiness wait ends when the container exits, or at
    ``ready_timeout`` (s) with a :class:`SetupError` naming ``timeout_scale``."""

    def __init__(
        self, image: str, *, username: str, password: str, dbname: str,
        ready_timeout: float = 60.0, **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(image, **kwargs)
        self.username, self.password, self.dbname = username, password, dbname
        self.port = PORT
        self.ready_timeout = ready_timeout
        self.with_exposed_ports(self.port)
        self.with_envs(POSTGRES_USER=username, POSTGRES_PASSWORD=password, POSTGRES_DB=dbname)
        self.readiness = PostgresAnswers(username, password, dbname, ready_timeout)
        self.waiting_for(self.readiness)

    def start(self: Container) -> Container:
        """Create and start the container and wait until it is ready (see
        :class:`PostgresAnswers`). Raises :class:`ContainerExited` if it stops first,
        :class:`SetupError` if it is not ready within ``ready_timeout``."""
        try:
            super().start()
        except TimeoutError:
            raise self._not_ready() from None
        return self

    def wait_ready(self) -> None:
        """Wait until the server in the container is ready again (after a restart), as
        :meth:`start` does."""
        try:
            self.readiness.wait_until_ready(self)
        except TimeoutError:
            raise self._not_ready() from None

    def _not_ready(self) -> SetupError:
        return SetupError(
            f"the container from image {self.image!r} was not ready within "
            f"{self.ready_timeout:.0f} s (raise -D timeout_scale): {self.log_tail()}"
        )

    def log_tail(self, lines: int = 5, sep: str = " | ") -> str:
        """The container's last log lines, joined by ``sep`` (one line by default, for
        error messages)."""
        with contextlib.suppress(Exception):
            out, err = self.get_logs()
            text = (out or b"").decode(errors="replace") + (err or b"").decode(errors="replace")
            tail = [line for line in text.strip().splitlines() if line.strip()][-lines:]
            return sep.join(tail) or "no log output"
        return "no log output"

    def mapped_port(self) -> int:
        """The host port now mapped to 5432 (it changes when the container restarts)."""

        def mapped() -> int | None:
            wrapped = self.get_wrapped_container()
            wrapped.reload()
            bindings = (wrapped.attrs["NetworkSettings"]["Ports"] or {}).get(f"{self.port}/tcp")
            return int(bindings[0]["HostPort"]) if bindings else None

        return waiting.until(mapped, timeout=self.ready_timeout, what="port mapping")


OWNER_LABEL = "org.failspec.owner"


def owner_label() -> dict[str, str]:
    """A label naming this process (host, pid, start time), so a later run can tell
    whether the run that started a container is still alive."""
    me = Owner.me()
    return {OWNER_LABEL: json.dumps({"host": socket.gethostname(), **me.__dict__})}


def reap_stale_containers(client: docker.DockerClient) -> list[str]:
    """Remove containers of runs on this host that died without removing them (SIGKILL);
    return their short ids. Containers of live runs and of other hosts are left alone."""
    reaped = []
    for found in client.containers.list(all=True, filters={"label": OWNER_LABEL}):
        try:
            owner = json.loads(found.labels[OWNER_LABEL])
            host = owner.pop("host")
            alive = host != socket.gethostname() or Owner(**owner).alive()
        except (KeyError, TypeError, ValueError):
            continue  # a label we did not write
        if not alive:
            with contextlib.suppress(docker.errors.APIError):
                found.remove(force=True, v=True)
                reaped.append(found.short_id)
    return reaped


def reap_stale_networks(client: docker.DockerClient) -> list[str]:
    """Remove the networks of runs on this host that died without removing them
    (SIGKILL), once their containers are gone (``container.reap_stale_containers``);
    return their short ids. Networks of live runs and of other hosts are left alone."""
    reaped = []
    for found in client.networks.list(filters={"label": OWNER_LABEL}):
        if _owner_alive(found.attrs.get("Labels") or {}):
            continue
        with contextlib.suppress(docker.errors.APIError):
            found.remove()
            reaped.append(found.short_id)
    return reaped


def _owner_alive(labels: dict[str, Any]) -> bool:
    """Whether the run an owner label names is alive (True for labels we did not write,
    and for other hosts: those are left alone)."""
    try:
        owner = json.loads(labels[OWNER_LABEL])
        host = owner.pop("host")
        return bool(host != socket.gethostname() or Owner(**owner).alive())
    except (KeyError, TypeError, ValueError):
        return True


def use_ryuk_only_if_present(client: docker.DockerClient) -> None:
    """Testcontainers' reaper (Ryuk) is pulled from a registry; where it cannot be
    pulled, go without it: the harness removes its containers itself, also those of
    runs that were killed (reap_stale_containers)."""
    if testcontainers_config.ryuk_disabled:
        return
    try:
        client.images.get(testcontainers_config.ryuk_image)
    except docker.errors.ImageNotFound:
        testcontainers_config.ryuk_disabled = True


def image_present(client: docker.DockerClient, image: str) -> bool:
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True
