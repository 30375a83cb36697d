"""The url backend: an existing server, given by URL; the suite cannot control it."""

from __future__ import annotations

from failspec.harness.servers.base import Endpoint, Server
from failspec.harness.servers.settings import Settings, parse_db_url


class UrlServer(Server):
    backend = "url"

    def stop(self) -> None:
        """Nothing to stop: the server was running before the run and goes on running."""

    @classmethod
    def start(cls, settings: Settings) -> UrlServer:
        url = parse_db_url(settings.db_url or "")
        assert url.host is not None  # parse_db_url refuses a URL without one
        params = tuple(sorted((key, str(value)) for key, value in url.query.items()))
        return cls(
            Endpoint(url.host, url.port or 5432, url.username or "postgres", url.password,
                     url.database or "postgres", params),
            settings.seconds(5),
        )  # fmt: skip
