"""``python -m failspec.parallel [--jobs N|auto] [--shard K/N] [--into DIR]
[--durations FILE] [--previous FILE] -- [behave arguments]``: see
failspec.parallel.workers. Bad options end it with one line and exit code 2."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from failspec.parallel import workers
from failspec.report import junit, record


def main(argv: list[str]) -> int:
    ours, behave_args = (
        (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    )
    parser = argparse.ArgumentParser(prog="python -m failspec.parallel")
    parser.add_argument("--jobs", default=None)
    parser.add_argument("--shard", default=None)
    parser.add_argument("--into", type=Path, default=Path("reports"))
    parser.add_argument("--durations", type=Path, default=None)
    parser.add_argument("--previous", type=Path, default=None)
    options = parser.parse_args(ours)
    try:
        jobs = workers.jobs_from(
            options.jobs if options.jobs is not None else os.environ.get(workers.JOBS_VARIABLE)
        )
        shard = workers.shard_from(options.shard)
    except workers.UsageError as error:
        # As a run that cannot start: one line, a JUnit error and the record saying why.
        print(f"failspec: cannot run: {error}", file=sys.stderr, flush=True)
        junit.write_setup_error(options.into / "junit", str(error))
        record.write_setup_error(options.into, str(error))
        return 2
    try:
        return workers.run(
            behave_args,
            jobs=jobs,
            shard=shard,
            into=options.into,
            durations=options.durations,
            previous=options.previous,
        )
    except workers.UsageError as error:
        # As a run that cannot start: one line, a JUnit error and the record saying why.
        print(f"failspec: cannot run: {error}", file=sys.stderr, flush=True)
        junit.write_setup_error(options.into / "junit", str(error))
        record.write_setup_error(options.into, str(error))
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
