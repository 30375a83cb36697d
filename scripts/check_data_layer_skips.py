"""Check a run on a data layer of one's own against what its README says it lacks.

    python scripts/check_data_layer_skips.py reports/run.json "request deadline" "ORM unit of work"

Exit 0 when no scenario failed or was left unfinished, and the capabilities the skipped
scenarios name as missing ("the data layer … offers no <capability> (…)") are exactly
the ones given: a layer that loses a capability, or gains one the documentation still
says it lacks, fails the check. Otherwise one line per difference, and exit 1.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

MISSING = re.compile(r"the data layer \S+ offers no (.+?) \(")


def problems(record: dict, expected: set[str]) -> list[str]:
    """What differs between the run's record and the capabilities expected to be missing."""
    found: list[str] = []
    scenarios = [s for f in record["features"] for r in f["rules"] for s in r["scenarios"]]
    missing: set[str] = set()
    for scenario in scenarios:
        if scenario["status"] in ("failed", "not_finished"):
            found.append(f"{scenario['location']} {scenario['status']}: {scenario['name']}")
        match = MISSING.search(scenario.get("skip_reason") or "")
        if scenario["status"] == "skipped" and match:
            missing.add(match.group(1))
    found += [f"skipped for lack of {c}, not documented as missing" for c in missing - expected]
    found += [f"no scenario skipped for lack of {c}: update the README" for c in expected - missing]
    return found


def main(argv: list[str]) -> int:
    record = json.loads(Path(argv[0]).read_text())
    found = problems(record, set(argv[1:]))
    for line in found:
        print(f"data layer check: {line}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
