"""Before the run: every feature file parses and every step module loads, or one line.

behave 1.3.3 ends a run whose feature file does not parse, whose step module fails to
import, or whose steps collide (``AmbiguousStep``) before any hook runs: it prints a
traceback or a parser message, writes no JUnit file, and CI sees no error (see
DESIGN.md, "Known traps"). ``./run-spec`` calls this first, with the same arguments it
gives behave. It does what behave's own ``Runner`` does before it runs anything (the
same configuration, hooks, step modules and feature files, by behave's own code) and, on
a failure, prints ``failspec: cannot run: <where>: <what>`` and writes a JUnit
``<error>`` (``TESTS-setup.xml``) where behave would have written its JUnit.

Run: ``python -m failspec.preflight [behave arguments]``; exit 0 when behave can start,
2 when it cannot.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from behave.configuration import Configuration
from behave.runner import Context, Runner
from behave.runner_util import parse_features

from failspec.report import junit


class _Loader(Runner):
    """behave's Runner, stopped after loading: hooks, step modules, feature files."""

    def run_with_paths(self) -> int:  # behave's Runner.run_with_paths, without the run
        self.context = Context(self)
        self.load_hooks()
        self.load_step_definitions()
        locations = [f for f in self.feature_locations() if not self.config.exclude(f)]
        parse_features(locations, language=self.config.lang)
        return 0


def problem(args: Sequence[str]) -> tuple[str | None, str | None]:
    """(what stops behave from starting, in one line, or None; the JUnit directory behave
    would write to, or None when JUnit is off)."""
    try:
        config = Configuration(command_args=list(args))
    except SystemExit:  # argparse has said what is wrong with the options, above
        return "behave does not accept these options (see the line above)", None
    except Exception as error:
        return f"behave's options: {_one_line(error)}", None
    directory = config.junit_directory if config.junit else None
    try:
        _Loader(config).run()
    except (Exception, SystemExit) as error:
        return f"{type(error).__name__}: {_one_line(error)}", directory
    return None, directory


def _one_line(error: BaseException) -> str:
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return text or type(error).__name__


def main(argv: Sequence[str] | None = None) -> int:
    found, directory = problem(sys.argv[1:] if argv is None else argv)
    if found is None:
        return 0
    print(f"failspec: cannot run: {found}", file=sys.stderr, flush=True)
    if directory is not None:
        junit.write_setup_error(directory, found)
    return 2


if __name__ == "__main__":
    sys.exit(main())
