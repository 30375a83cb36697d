"""Compare two runs' reports as the specification's reader sees them: the same scenarios
with the same outcomes, the same guarantees' verdicts, the same counts, the same
matrices, the same JUnit testcases (each once) and the same metrics' counts.

``python scripts/compare_runs.py REPORTS_A REPORTS_B``: prints each difference, one a
line, and exits 1 when there is one, else 0. Made for a parallel run against a serial
one (README, "Parallel runs and shards"). What is timing (durations, the replication
matrix's ``waited`` of a connected standby, an error message naming a port, the server's
transaction counts, which a connection may publish in a later scenario's window) is not
compared; nor, in the generated workloads (``concurrency.generated.feature``: concurrent
sessions whose aborts depend on timing, even with one seed), how their transactions split
into commits and rollbacks and the rows those changed: only how many transactions ran.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

#: The metrics' figures that are a scenario's own work, the same in any run.
COUNTED = ("commits", "rollbacks", "commits_unknown", "rows_changed", "peak_connections")
#: Where concurrent sessions abort as timing has it: only commits + rollbacks compare.
TIMED = "features/concurrency.generated.feature:"


def counts(entry: dict[str, Any]) -> dict[str, Any]:
    """A scenario's metrics figures that must agree between two runs."""
    if entry["location"].startswith(TIMED):
        return {"transactions": entry["commits"] + entry["rollbacks"],
                "peak_connections": entry["peak_connections"]}  # fmt: skip
    return {key: entry[key] for key in COUNTED}


def scenarios(run: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    return {
        s["location"]: (s["status"], s["skip_reason"])
        for f in run["features"]
        for r in f["rules"]
        for s in r["scenarios"]
    }


def verdicts(run: dict[str, Any]) -> dict[str, str]:
    return {r["location"]: r["verdict"] for f in run["features"] for r in f["rules"]}


def untimed(matrix: Any) -> Any:
    """The replication matrix without ``waited`` (timing-dependent), the hang matrix
    without its measured seconds; the rest as it is."""
    if isinstance(matrix, dict):
        return {
            k: untimed(v)
            for k, v in matrix.items()
            if k not in ("waited", "measured_s", "duration_s", "message")
        }
    return matrix


def junit(directory: Path) -> dict[tuple[str, str], list[str]]:
    cases: dict[tuple[str, str], list[str]] = {}
    for path in sorted(directory.glob("*.xml")):
        for case in ET.parse(path).getroot().iter("testcase"):
            key = (case.get("classname") or "", case.get("name") or "")
            cases.setdefault(key, []).append(case.get("status") or "")
    return cases


def differences(a: Path, b: Path) -> list[str]:
    found: list[str] = []
    run_a = json.loads((a / "run.json").read_text())
    run_b = json.loads((b / "run.json").read_text())
    if run_a["outcomes"] != run_b["outcomes"]:
        found.append(f"outcomes: {run_a['outcomes']} != {run_b['outcomes']}")
    sa, sb = scenarios(run_a), scenarios(run_b)
    for location in sorted(set(sa) | set(sb)):
        if sa.get(location) != sb.get(location):
            found.append(f"scenario {location}: {sa.get(location)} != {sb.get(location)}")
    va, vb = verdicts(run_a), verdicts(run_b)
    for location in sorted(set(va) | set(vb)):
        if va.get(location) != vb.get(location):
            found.append(f"rule {location}: {va.get(location)} != {vb.get(location)}")
    for key in ("isolation_matrix", "hang_matrix", "replication_matrix", "driver_matrix"):
        if untimed(run_a.get(key)) != untimed(run_b.get(key)):
            found.append(f"{key} differs")
    ga, gb = run_a.get("isolation_generated"), run_b.get("isolation_generated")
    if (ga is None) != (gb is None) or (
        ga
        and gb
        and {w: set(levels) for w, levels in ga["workloads"].items()}
        != {w: set(levels) for w, levels in gb["workloads"].items()}
    ):
        found.append("isolation_generated: different workloads or levels")
    ma, mb = run_a.get("metrics") or {}, run_b.get("metrics") or {}
    if ma.get("scenarios") != mb.get("scenarios"):
        found.append(f"metrics scenarios: {ma.get('scenarios')} != {mb.get('scenarios')}")
    xa = {
        e["location"]: counts(e) for e in json.loads((a / "metrics.json").read_text())["scenarios"]
    }
    xb = {
        e["location"]: counts(e) for e in json.loads((b / "metrics.json").read_text())["scenarios"]
    }
    for location in sorted(set(xa) | set(xb)):
        if xa.get(location) != xb.get(location):
            found.append(f"metrics of {location}: {xa.get(location)} != {xb.get(location)}")
    ja, jb = junit(a / "junit"), junit(b / "junit")
    for name in {**ja, **jb}:
        if len(ja.get(name, [])) > 1 or len(jb.get(name, [])) > 1:
            found.append(f"JUnit testcase {name} is there more than once")
        if ja.get(name) != jb.get(name):
            found.append(f"JUnit testcase {name}: {ja.get(name)} != {jb.get(name)}")
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: compare_runs.py REPORTS_A REPORTS_B", file=sys.stderr)
        return 2
    found = differences(Path(argv[0]), Path(argv[1]))
    for line in found:
        print(line)
    print(f"compare: {len(found)} difference(s) between {argv[0]} and {argv[1]}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
