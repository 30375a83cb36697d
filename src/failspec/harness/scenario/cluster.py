"""The run's replicated cluster, for the scenarios that need one (``@replication``).

It is started the first time such a scenario runs, never when none is selected, and kept
for the next one unless a scenario changed it (a fault, a setting, a promotion): then the
next one gets a new cluster, built in ~0.3 s on the embedded backend (bench/server_start.py).
Each build has its own :class:`Run` on the cluster's primary of the moment
(``servers.PrimaryOf``): the scenario's schema, its guards and its counters live there.
"""

from __future__ import annotations

import contextlib

from failspec.harness.scenario.workspace import Preparation, Run
from failspec.harness.servers import Cluster, PrimaryOf
from failspec.harness.servers.replication import Topology

#: The server settings of the harness's own connections to the cluster's primary.
HARNESS_SETTINGS = "-c synchronous_commit=local"


class NoCluster(Exception):
    """The run's backend cannot start a replicated cluster; the message says why."""


class Replication:
    """The run's cluster, made on demand from ``topology`` (or the reason there is none).
    ``standbys``: how many standbys it has; ``connect_timeout``: seconds for control;
    ``prepare``: what each scenario's fresh schema gets (the ledger's tables)."""

    def __init__(
        self,
        topology: Topology | str,
        *,
        standbys: int = 1,
        connect_timeout: float,
        prepare: Preparation,
    ) -> None:
        self.topology = topology
        self.standbys = standbys
        self.connect_timeout = connect_timeout
        self.prepare = prepare
        self.cluster: Cluster | None = None
        self.server: PrimaryOf | None = None
        self.run: Run | None = None
        #: How many times a cluster was built in this run, and scenarios it was given to.
        self.builds = 0
        self.scenarios = 0

    def for_scenario(self) -> tuple[Cluster, PrimaryOf, Run]:
        """The cluster as :meth:`Cluster.start` leaves it, its primary as the scenario's
        server, and the run of schemas on it. Raises :class:`NoCluster` with the reason
        on a backend without one; ``SetupError`` when a member cannot be started."""
        if isinstance(self.topology, str):
            raise NoCluster(self.topology)
        if self.cluster is None:
            self.cluster = Cluster(
                self.topology, self.standbys, connect_timeout=self.connect_timeout
            )
        if self.run is None or self.cluster.touched or not self.cluster.members:
            self._close_run()
            self.cluster.fresh()
            self.builds += 1
            self.server = PrimaryOf(self.cluster, self.connect_timeout)
            # The harness's writes (schemas, seeds) never wait for a standby: a scenario
            # may cut it off while the primary waits for it.
            self.run = Run(self.server, prepare=self.prepare, ahead=0, settings=HARNESS_SETTINGS)
        assert self.server is not None
        self.scenarios += 1
        return self.cluster, self.server, self.run

    def _close_run(self) -> None:
        run, self.run = self.run, None
        if run is not None:
            with contextlib.suppress(Exception):  # its cluster may be half gone: rebuilt next
                run.close()

    def close(self) -> None:
        """Stop the cluster and every member (safe to call twice)."""
        self._close_run()
        if self.cluster is not None:
            self.cluster.stop()
