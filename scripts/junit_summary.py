"""Print one closing line from behave's JUnit reports: 'behave: N passed, N failed, N skipped'
(and ', N not finished, N not run' when the run stopped early: the testcase in <error> that
the stop ended, and those skipped as "not run: …", see failspec.report.junit).

Exits 1 when the reports hold no testcase at all: a run that tested nothing is not green.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from failspec.report.junit import NOT_RUN, STOPPED_ERRORS


def main(directory: str) -> int:
    tests = failed = skipped = not_run = not_finished = 0
    for report in sorted(Path(directory).glob("*.xml")):
        suite = ET.parse(report).getroot()
        tests += int(suite.get("tests", 0))
        failed += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped += int(suite.get("skipped", 0))
        not_run += sum(s.get("message", "").startswith(NOT_RUN) for s in suite.iter("skipped"))
        not_finished += sum(e.get("type") in STOPPED_ERRORS for e in suite.iter("error"))
    passed = tests - failed - skipped
    line = f"behave: {passed} passed, {failed - not_finished} failed, {skipped - not_run} skipped"
    if not_run or not_finished:
        line += f", {not_finished} not finished, {not_run} not run"
    print(line)
    return 1 if tests == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "reports/junit"))
