"""``python -m failspec.report <reports-dir>``: write <reports-dir>/report.html from the
run's record, <reports-dir>/run.json.

``python -m failspec.report --merge a/run.json b/run.json [--into <reports-dir>]``: merge
two runs' records (one per driver: failspec.report.merge) into <reports-dir>/run.json
(default reports/merged) and write its report.html, whose driver matrix shows both."""

from __future__ import annotations

import sys
from pathlib import Path

from failspec.report import merge, record
from failspec.report.html import build_report
from failspec.report.model import ReportError

USAGE = (
    "usage: python -m failspec.report [<reports-dir>] | --merge A/run.json B/run.json [--into DIR]"
)


def main(argv: list[str]) -> int:
    try:
        if argv and argv[0] == "--merge":
            reports = _merge(argv[1:])
        else:
            reports = Path(argv[0] if argv else "reports")
        path = build_report(reports)
    except ReportError as error:
        print(f"report: cannot build: {error}", file=sys.stderr)
        return 1
    print(f"report: {path}")
    return 0


def _merge(args: list[str]) -> Path:
    """Write the merged record of the runs ``args`` name; return its directory."""
    into = Path("reports/merged")
    if "--into" in args:
        at = args.index("--into")
        if at + 1 >= len(args):
            raise ReportError(f"--into needs a directory ({USAGE})")
        into = Path(args[at + 1])
        args = args[:at] + args[at + 2 :]
    records = [(str(path), merge.read(Path(path))) for path in args]
    record.write(into, merge.merge(records))
    return into


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
