"""``python -m failspec.report <reports-dir>``: write <reports-dir>/report.html from the
run's record, <reports-dir>/run.json.

``python -m failspec.report --merge a/run.json b/run.json [--into <reports-dir>]``: merge
two runs' records into <reports-dir>/run.json (default reports/merged) and write its
report.html. Which merge is told by the records: the shards of one run (each record says
which share it ran: ``--shard K/N``) are merged as one serial run, with the files a run
writes beside its record and, where each shard's directory has its ``junit/``, its JUnit
(failspec.report.partitions); runs of different drivers are put side by side for the
driver matrix (failspec.report.merge). A mix of the two is refused."""

from __future__ import annotations

import sys
from pathlib import Path

from failspec.report import merge, partitions, record
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
    shards = [partitions.is_partition(data) for _, data in records]
    if any(shards) and not all(shards):
        raise ReportError(
            "--merge takes either the shards of one run or runs of different drivers, not both"
        )
    if not all(shards):
        record.write(into, merge.merge(records))
        return into
    merged = partitions.merge(records)
    partitions.write(into, merged)
    directories = [Path(path) if Path(path).is_dir() else Path(path).parent for path in args]
    if all((directory / "junit").is_dir() for directory in directories):
        located = [(d / "junit", data) for d, (_, data) in zip(directories, records, strict=True)]
        partitions.merge_junit(located, merged, into / "junit")
    return into


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
