"""How long the concurrency, network and server scenarios take, against their limits.

Runs those features with behave on each backend given, several rounds, and prints for
each feature the slowest scenario's duration over all rounds next to its limit: 2 s for
concurrency, 3 s for network and server faults (from the issues that asked for them).
Durations come from the run's reports/metrics.json (behave's own scenario timing).

Run: .venv/bin/python bench/scenario_durations.py [--rounds N] [--backend embedded ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMITS = {
    "features/concurrency.isolation.feature": 2.0,
    "features/concurrency.deadlocks.feature": 2.0,
    "features/concurrency.locks.feature": 2.0,
    "features/network.faults.feature": 3.0,
    "features/server.faults.feature": 3.0,
    "features/connections.limits.feature": 3.0,
}


def run_once(backend: str, extra: list[str]) -> list[dict[str, object]]:
    with tempfile.TemporaryDirectory() as reports:
        done = subprocess.run(
            [sys.executable, "-m", "behave", "-D", f"backend={backend}", *extra, "-f", "null",
             "--junit-directory", f"{reports}/junit", *LIMITS],
            cwd=ROOT, capture_output=True, text=True, env=os.environ,
        )  # fmt: skip
        if done.returncode != 0:
            raise SystemExit(f"{backend}: the run failed:\n{done.stdout[-2000:]}{done.stderr}")
        return json.loads(Path(reports, "metrics.json").read_text())["scenarios"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", action="append", default=None)
    parser.add_argument("--pg-bin", help="also run embedded on these binaries (e.g. PG 15)")
    args = parser.parse_args()
    runs = [(b, []) for b in (args.backend or ["embedded"])]
    if args.pg_bin:
        runs.append((f"embedded ({args.pg_bin})", ["-D", f"pg_bin={args.pg_bin}"]))
    print(f"{'backend':<42} {'feature':<42} {'slowest':>8} {'limit':>6}")
    for label, extra in runs:
        backend = label.split(" ")[0]
        slowest: dict[str, tuple[float, str]] = defaultdict(lambda: (0.0, ""))
        for _ in range(args.rounds):
            for s in run_once(backend, extra):
                feature = str(s["location"]).rsplit(":", 1)[0]
                if float(s["duration_s"]) > slowest[feature][0]:  # type: ignore[arg-type]
                    slowest[feature] = (float(s["duration_s"]), str(s["name"]))  # type: ignore[arg-type]
        for feature, limit in LIMITS.items():
            took, name = slowest[feature]
            mark = "ok" if took <= limit else "OVER"
            print(f"{label:<42} {feature[9:]:<42} {took:>7.2f}s {limit:>5.1f}s {mark}  {name}")


if __name__ == "__main__":
    main()
