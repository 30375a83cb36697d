"""The whole specification serially and on parallel workers, side by side in one run
(issue #19), and what one worker costs to start.

For each ``--jobs`` value (default 1, 2 and 4; 1 is the serial run, ./run-spec's own
path) it runs ``./run-spec -D backend=<backend> -D seed=<seed> --jobs N`` with its
reports under ``reports/bench-parallel/jN/`` and prints the wall time, its ratio to the
serial run's, the scenarios passed and failed, and whether the merged reports equal the
serial run's (scripts/compare_runs.py: outcomes, verdicts, matrices, JUnit testcases,
the metrics' counts). The workers are balanced by the durations the runs before
measured (reports/durations.json), so run it once more if the first line says "count".

A worker's start cost: a behave process on one short scenario
(``features/integrity.conservation.feature:21``), timed from its start to its end, less
the scenario's own duration and the harness's time around it (its metrics): the Python
start, behave's and the harness's imports, the server's start from the template and its
stop. Medians of ``--rounds`` runs. It asserts nothing; the target (issue #19) is
``--jobs auto`` at most 0.55 times the serial run on 2 cores.

Run: .venv/bin/python bench/parallel.py [--jobs 1 2 4] [--rounds 3] [--backend embedded]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "reports" / "bench-parallel"
SHORT = "features/integrity.conservation.feature:21"


def full_run(jobs: int, backend: str, seed: int) -> tuple[float, dict[str, int], int, Path]:
    """(wall s, scenario counts, exit code, reports directory) of the whole specification."""
    reports = OUT / f"j{jobs}"
    command = ["./run-spec", "-D", f"backend={backend}", "-D", f"seed={seed}",
               "--jobs", str(jobs), f"--junit-directory={reports / 'junit'}"]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    (OUT / f"j{jobs}.log").write_text(done.stdout + done.stderr)
    try:
        counts = json.loads((reports / "run.json").read_text())["outcomes"]["scenarios"]
    except (OSError, ValueError, KeyError):
        counts = {}
    return wall, counts, done.returncode, reports


def start_cost(backend: str, rounds: int) -> list[float]:
    """A worker's start cost (s), each round: wall time less the scenario's own time."""
    costs = []
    for round_ in range(rounds):
        reports = OUT / f"start{round_}"
        command = [str(ROOT / ".venv" / "bin" / "python"), "-m", "behave", "-D",
                   f"backend={backend}", "-f", "null", f"--junit-directory={reports / 'junit'}",
                   SHORT]  # fmt: skip
        started = time.perf_counter()
        subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - started
        entry = json.loads((reports / "metrics.json").read_text())["scenarios"][0]
        costs.append(wall - entry["duration_s"] - entry["overhead_ms"] / 1000)
    return costs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", default="embedded")
    parser.add_argument("--seed", type=int, default=18)
    options = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    env_python = str(ROOT / ".venv" / "bin" / "python")
    print(f"bench: {len(os.sched_getaffinity(0))} cores, load average {os.getloadavg()[0]:.1f} "
          f"at start; backend {options.backend}, seed {options.seed}", flush=True)  # fmt: skip
    costs = start_cost(options.backend, options.rounds)
    print(f"worker start (process, imports, server from the template, stop): median "
          f"{statistics.median(costs):.2f} s, max {max(costs):.2f} s ({options.rounds} rounds)",
          flush=True)  # fmt: skip
    rows = []
    for jobs in options.jobs:
        wall, counts, code, reports = full_run(jobs, options.backend, options.seed)
        rows.append((jobs, wall, counts, code, reports))
        print(f"  --jobs {jobs}: {wall:.1f} s, exit {code}", flush=True)
    serial = next((row for row in rows if row[0] == 1), None)
    print(f"{'jobs':>5} {'wall s':>8} {'of serial':>9} {'passed':>7} {'failed':>7}  same as serial")
    for jobs, wall, counts, _, reports in rows:
        ratio = f"{wall / serial[1]:.2f}" if serial else "-"
        same = "-"
        if serial and jobs != 1:
            script = str(ROOT / "scripts" / "compare_runs.py")
            compared = subprocess.run(
                [env_python, script, str(serial[4]), str(reports)], capture_output=True, text=True
            )
            same = "yes" if compared.returncode == 0 else compared.stdout.strip().splitlines()[-1]
        print(f"{jobs:>5} {wall:>8.1f} {ratio:>9} {counts.get('passed', '?'):>7} "
              f"{counts.get('failed', '?'):>7}  {same}")  # fmt: skip
    print(f"bench: load average {os.getloadavg()[0]:.1f} at the end")
    return 0 if all(row[3] == 0 for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
