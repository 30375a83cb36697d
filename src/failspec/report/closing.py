"""``python -m failspec.report.closing <reports-dir>``: the run's closing line, from
<reports-dir>/run.json alone: 'behave: N passed, N failed, N skipped' (and ', N not
finished, N not run' when the run stopped early: the scenario the stop ended, and those it
never reached). A run that could not start is one failed.

Exits 1 when the record holds no scenario at all (a run that tested nothing is not green),
or when there is no record to read.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from failspec.report import record


def closing_line(run: dict[str, Any]) -> str:
    """The closing line of a run record (see failspec.report.record)."""
    counts = run["outcomes"]["scenarios"]
    passed, skipped = counts[record.PASSED], counts[record.SKIPPED]
    failed = counts[record.FAILED] + (1 if run.get("setup_error") is not None else 0)
    not_finished, not_run = counts[record.NOT_FINISHED], counts[record.NOT_RUN]
    line = f"behave: {passed} passed, {failed} failed, {skipped} skipped"
    if not_finished or not_run:
        line += f", {not_finished} not finished, {not_run} not run"
    return line


def tested_nothing(run: dict[str, Any]) -> bool:
    """Whether the run neither started nor held any scenario."""
    return run.get("setup_error") is None and not any(run["outcomes"]["scenarios"].values())


def main(argv: list[str]) -> int:
    reports = Path(argv[0] if argv else "reports")
    try:
        run = record.read(reports)
    except record.ReportError as error:
        print(f"behave: no closing line: {error}")
        return 1
    print(closing_line(run))
    return 1 if tested_nothing(run) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
