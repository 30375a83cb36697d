"""Server start-to-ready time, per backend, measured side by side in one run.

For each backend that can run here, starts the run's server several times the way
``before_all`` does (``servers.start``: start, wait until ready, connect and check)
and stops it again, printing medians. The docker backend needs a daemon and an image
(``-D``-style ``--pg-image`` or FAILSPEC_PG_IMAGE; build one with
tools/offline-postgres-image/build.py); without them it says so instead of a figure.

Run: .venv/bin/python bench/server_start.py [--rounds N] [--pg-image IMAGE]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from failspec.harness import servers
from failspec.harness.servers.settings import Settings


def measure(settings: Settings, rounds: int) -> tuple[list[float], list[float]]:
    """(start-to-ready seconds, stop seconds) over ``rounds`` starts."""
    starts, stops = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        server = servers.start(settings)
        starts.append(time.perf_counter() - started)
        started = time.perf_counter()
        server.stop()
        stops.append(time.perf_counter() - started)
    return starts, stops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pg-image", default=os.environ.get("FAILSPEC_PG_IMAGE"))
    args = parser.parse_args()

    print(f"failspec bench: server start-to-ready ({args.rounds} rounds per backend)")
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
    for name, (starts, stops) in rows.items():
        print(
            f"  {name:<40} ready median {med(starts):6.3f} s  (min {min(starts):6.3f}, "
            f"max {max(starts):6.3f})   stop median {med(stops):6.3f} s"
        )
    if len(rows) == 2:
        (_, (embedded_starts, _)), (_, (docker_starts, _)) = rows.items()
        print(f"  docker / embedded start ratio: {med(docker_starts) / med(embedded_starts):.1f}")


if __name__ == "__main__":
    main()
