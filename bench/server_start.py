"""Server start-to-ready time, per backend, measured side by side in one run; and a
replicated cluster's (issue #16): a primary + standby stood up, a failover, a rejoin.

For each backend that can run here, starts the run's server several times the way
``before_all`` does (``servers.start``: start, wait until ready, connect and check)
and stops it again; then, beside one such server as in a run, stands up a primary and
a standby the way the first @replication scenario does (``Cluster.start``: both started,
the standby cloned with pg_basebackup and streaming), fails over (the primary crashes,
the standby is promoted: ``Cluster.crash`` + ``Cluster.promote``), brings the old
primary back as a standby (``Cluster.rejoin``: pg_rewind, then streaming), and stops
the cluster. It prints medians and maxima; it asserts nothing (issue #16 asks for a
primary + standby in at most 2 s on embedded). The docker backend needs a daemon and an
image (``--pg-image`` or FAILSPEC_PG_IMAGE; build one with
tools/offline-postgres-image/build.py); without them it says so instead of a figure.

Run: .venv/bin/python bench/server_start.py [--rounds N] [--pg-image IMAGE]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from collections.abc import Iterator

from failspec.harness import servers
from failspec.harness.servers import Cluster
from failspec.harness.servers.replication import PRIMARY, STANDBY
from failspec.harness.servers.settings import Settings

#: A phase's name -> its durations (s), one per round.
Figures = dict[str, list[float]]


@contextlib.contextmanager
def timed(figures: Figures, phase: str) -> Iterator[None]:
    """Add the seconds the block takes to ``figures[phase]``."""
    started = time.perf_counter()
    yield
    figures.setdefault(phase, []).append(time.perf_counter() - started)


def measure(settings: Settings, rounds: int) -> Figures:
    """Seconds per phase over ``rounds``: the run's server's start-to-ready and stop, then
    a primary + standby's start, failover, rejoin and stop beside one running server."""
    figures: Figures = {}
    for _ in range(rounds):
        with timed(figures, "server start"):
            server = servers.start(settings)
        with timed(figures, "server stop"):
            server.stop()
    run_server = servers.start(settings)  # a cluster is stood up beside it, as in a run
    try:
        topology = servers.topology(settings, run_server)
        assert not isinstance(topology, str), topology
        standby = f"{STANDBY}1"
        for _ in range(rounds):
            cluster = Cluster(topology, 1, connect_timeout=settings.seconds(5))
            try:
                with timed(figures, "primary + standby start"):
                    cluster.start()
                with timed(figures, "failover (crash + promote)"):
                    cluster.crash(PRIMARY)
                    cluster.promote(standby)
                with timed(figures, "rejoin (pg_rewind + streaming)"):
                    cluster.rejoin(PRIMARY)
            finally:
                with timed(figures, "primary + standby stop"):
                    cluster.stop()
    finally:
        run_server.stop()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pg-image", default=os.environ.get("FAILSPEC_PG_IMAGE"))
    args = parser.parse_args()

    print(f"failspec bench: server and cluster start-to-ready ({args.rounds} rounds per backend)")
    rows = {}
    rows["embedded"] = measure(Settings(backend="embedded"), args.rounds)
    if not servers.docker_answers():
        print("  docker: not measured (no Docker daemon answers)")
    elif not args.pg_image:
        print("  docker: not measured (no image: pass --pg-image or set FAILSPEC_PG_IMAGE)")
    else:
        rows[f"docker ({args.pg_image})"] = measure(
            Settings(backend="docker", pg_image=args.pg_image), args.rounds
        )
    med = statistics.median
    for name, figures in rows.items():
        print(f"  {name}")
        for phase, seconds in figures.items():
            print(f"    {phase:<32} median {med(seconds):6.3f} s  max {max(seconds):6.3f} s")
        ratio = med(figures["primary + standby start"]) / med(figures["server start"])
        print(f"    primary + standby start / server start: {ratio:.1f}")
    if len(rows) == 2:
        (_, embedded), (_, docker) = rows.items()
        for phase in ("server start", "primary + standby start"):
            ratio = med(docker[phase]) / med(embedded[phase])
            print(f"  docker / embedded {phase} ratio: {ratio:.1f}")


if __name__ == "__main__":
    main()
