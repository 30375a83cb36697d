"""PostgreSQL in a container, through Testcontainers, with container-level faults.

Testcontainers' ``PostgresContainer`` waits for readiness by running ``psql`` inside
the container, for up to 120 s, even after the container has died. The container
here checks the same way but gives up at once when the container exits, and at a
deadline the run chooses, so a broken image costs seconds, not minutes.
"""

from __future__ import annotations

import contextlib
import json
import socket
from typing import Any

import docker
import docker.errors
from testcontainers.community.postgres import PostgresContainer
from testcontainers.core.config import testcontainers_config

from failspec.harness import waiting
from failspec.harness.embedded import Owner
from failspec.harness.errors import SetupError


class ContainerExited(Exception):
    """The container stopped while it was expected to become ready."""


class FailFastPostgresContainer(PostgresContainer):
    """A ``PostgresContainer`` whose readiness wait ends when the container exits."""

    def __init__(self, *args: Any, ready_timeout: float = 60.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ready_timeout = ready_timeout

    def _connect(self) -> None:
        self.wait_ready()

    def wait_ready(self) -> None:
        try:
            waiting.until(
                self._answers, timeout=self.ready_timeout, what="readiness", interval=0.05
            )
        except waiting.WaitTimeout:
            raise SetupError(
                f"the container from image {self.image!r} was not ready within "
                f"{self.ready_timeout:.0f} s (raise -D timeout_scale): {self.log_tail()}"
            ) from None

    def _answers(self) -> bool:
        wrapped = self.get_wrapped_container()
        wrapped.reload()
        if wrapped.status in ("exited", "dead"):
            raise ContainerExited(self.log_tail())
        if wrapped.status != "running":
            return False
        password = self.password.replace("'", "'\"'\"'")
        result = self.exec(
            [
                "sh", "-c",
                f"PGPASSWORD='{password}' psql --username {self.username} --dbname "
                f"{self.dbname} --host 127.0.0.1 -c 'select 1;'",
            ]
        )  # fmt: skip
        return result.exit_code == 0

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
