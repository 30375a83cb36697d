"""``python -m failspec.report <reports-dir>``: write <reports-dir>/report.html from the
run's record, <reports-dir>/run.json."""

from __future__ import annotations

import sys
from pathlib import Path

from failspec.report.html import build_report
from failspec.report.model import ReportError


def main(argv: list[str]) -> int:
    reports = Path(argv[0] if argv else "reports")
    try:
        path = build_report(reports)
    except ReportError as error:
        print(f"report: cannot build: {error}", file=sys.stderr)
        return 1
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
