"""Print one closing line from behave's JUnit reports: 'behave: N passed, N failed, N skipped'.

Exits 1 when the reports hold no testcase at all: a run that tested nothing is not green.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def main(directory: str) -> int:
    tests = failed = skipped = 0
    for report in sorted(Path(directory).glob("*.xml")):
        suite = ET.parse(report).getroot()
        tests += int(suite.get("tests", 0))
        failed += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped += int(suite.get("skipped", 0))
    print(f"behave: {tests - failed - skipped} passed, {failed} failed, {skipped} skipped")
    return 1 if tests == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "reports/junit"))
