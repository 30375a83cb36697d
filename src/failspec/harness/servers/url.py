"""The url backend: an existing server, given by URL; the suite cannot control it."""

from __future__ import annotations

from failspec import drivers
from failspec.harness.servers.base import Endpoint, NoServerControl, Server
from failspec.harness.servers.replication import Topology
from failspec.harness.servers.settings import Settings, parse_db_url


class UrlServer(Server):
    backend = "url"

    def stop(self) -> None:
        """Nothing to stop: the server was running before the run and goes on running."""

    @classmethod
    def start(cls, settings: Settings) -> UrlServer:
        return cls.at(settings.db_url or "", settings.seconds(5))

    @classmethod
    def at(cls, text: str, connect_timeout: float, *, name: str = "db_url") -> UrlServer:
        """The server the URL ``text`` (the setting ``name``) names, checked as
        :func:`parse_db_url` checks it; ``connect_timeout`` in seconds."""
        url = parse_db_url(text, name=name, driver=drivers.current().name)
        assert url.host is not None  # parse_db_url refuses a URL without one
        params = tuple(sorted((key, str(value)) for key, value in url.query.items()))
        return cls(
            Endpoint(url.host, url.port or 5432, url.username or "postgres", url.password,
                     url.database or "postgres", params),
            connect_timeout,
        )  # fmt: skip


class UrlTopology(Topology):
    """The user's own primary (the run's server) and a standby of it they name
    (``standby_url``): nothing is started, nothing can be controlled. Only the scenarios
    that read from the standby or write to it run (not ``@server-control``)."""

    backend = UrlServer.backend
    controllable = False

    def __init__(self, primary: UrlServer, standby_url: str, connect_timeout: float) -> None:
        self.primary = primary
        self.standby_url = standby_url
        self.connect_timeout = connect_timeout

    def start_primary(self) -> Server:
        return self.primary

    def start_standby(self, primary: Server, name: str) -> Server:
        standby = UrlServer.at(self.standby_url, self.connect_timeout, name="standby_url")
        standby.version = primary.version
        return standby

    def rejoin(self, old: Server, new_primary: Server, name: str) -> None:
        raise NoServerControl(self.backend)
