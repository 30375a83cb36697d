"""The hang matrix's cost and precision: each cell's measured time beside its bound, each
scenario's duration beside its limit, and what the whole matrix adds to a run.

Runs ``features/network.hangs.feature`` with behave on each backend given, several
rounds, and reads what the run wrote: ``hang-matrix.json`` (for each cell the bound the
settings give and the time measured) and ``metrics.json`` (behave's duration of each
scenario). For each cell it prints, over all rounds, the measured time's range and its
ratio to the bound (the specification allows 0.8-1.2; "at once" is under 0.5 s), and the
slowest duration of the cell's scenario beside its limit, the bound plus 1 s (issue "No
wait without a bound"). Then, per round, the sum of the feature's scenario durations:
what the matrix adds to a run, against the target of 30 s.

Run: .venv/bin/python bench/hang_matrix.py [--rounds N] [--backend embedded ...]
(the docker backend needs ``-D pg_image=...`` as the specification does; pass behave
options after ``--``).
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
FEATURE = "features/network.hangs.feature"
#: A hang scenario may take its bound plus this (s).
SLACK = 1.0
#: What the whole matrix may add to a run (s).
TARGET = 30.0


def run_once(backend: str, extra: list[str]) -> tuple[dict, list[dict]]:
    """One run of the matrix: (hang-matrix.json, metrics.json's scenarios)."""
    with tempfile.TemporaryDirectory() as reports:
        done = subprocess.run(
            [sys.executable, "-m", "behave", "-D", f"backend={backend}", *extra, "-f", "null",
             "--junit-directory", f"{reports}/junit", FEATURE],
            cwd=ROOT, capture_output=True, text=True, env=os.environ,
        )  # fmt: skip
        if done.returncode != 0:
            raise SystemExit(f"{backend}: the run failed:\n{done.stdout[-3000:]}{done.stderr}")
        matrix = json.loads(Path(reports, "hang-matrix.json").read_text())
        return matrix, json.loads(Path(reports, "metrics.json").read_text())["scenarios"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", action="append", default=None)
    parser.add_argument("behave", nargs="*", help="more behave options (after --)")
    args = parser.parse_args()
    for backend in args.backend or ["embedded"]:
        measured: dict[tuple[str, str], list[float]] = defaultdict(list)
        durations: dict[tuple[str, str], list[float]] = defaultdict(list)
        cells: dict[tuple[str, str], dict] = {}
        totals: list[float] = []
        skipped = 0
        for _ in range(args.rounds):
            matrix, scenarios = run_once(backend, args.behave)
            took = {str(s["location"]): float(s["duration_s"]) for s in scenarios}
            skipped = sum(1 for s in scenarios if s["status"] == "skipped")
            totals.append(sum(took.values()))
            for phase, row in matrix.items():
                for fault, cell in row.items():
                    cells[phase, fault] = cell
                    measured[phase, fault].append(float(cell["measured_s"]))
                    durations[phase, fault].append(took[cell["scenario"]])
        print(f"== {backend}: {len(cells)} cells, {skipped} scenarios skipped, "
              f"{args.rounds} rounds")  # fmt: skip
        print(f"{'phase':<40} {'silence':<38} {'bound':>7} {'measured':>13} {'ratio':>11} "
              f"{'scenario':>8} {'limit':>6}")  # fmt: skip
        over = 0
        for (phase, fault), cell in cells.items():
            low, high = min(measured[phase, fault]), max(measured[phase, fault])
            expected = float(cell["expected_s"])
            ratio = f"{low / expected:.2f}-{high / expected:.2f}" if expected else "at once"
            slowest, limit = max(durations[phase, fault]), expected + SLACK
            mark = "ok" if slowest <= limit else "OVER"
            over += mark == "OVER"
            print(f"{phase:<40} {fault:<38} {expected:>6.2f}s {low:>5.2f}-{high:>5.2f}s "
                  f"{ratio:>11} {slowest:>7.2f}s {limit:>5.2f}s {mark}")  # fmt: skip
        added = ", ".join(f"{t:.1f}" for t in totals)
        unbounded = [k for k, c in cells.items() if c.get("unbounded")]
        floor = sum(min(durations[k]) for k in unbounded)
        print(f"the matrix adds {added} s to a run (target {TARGET:.0f} s); "
              f"{over} scenarios over their limit; the {len(unbounded)} unbounded cells, "
              f"which must each outlast every client bound, {floor:.1f} s of it")  # fmt: skip


if __name__ == "__main__":
    main()
