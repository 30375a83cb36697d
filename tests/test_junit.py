"""The JUnit reports as CI reads them, checked by a real consumer (junitparser), and the
closing line (rendered from the run's record, run.json) saying what they say."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

from junitparser import Error, Failure, JUnitXml, Skipped, TestSuite

from failspec.report.junit import SETUP_REPORT

ROOT = Path(__file__).resolve().parent.parent
REPORT_FIXTURE = ROOT / "tests" / "fixtures" / "report" / "features"
HOOKS_FIXTURE = ROOT / "tests" / "fixtures" / "features"
# As ./run-spec runs behave: skipped scenarios are in the JUnit too.
RUN_SPEC_OPTIONS = ("--show-skipped",)
SUMMARY = re.compile(
    r"(?P<passed>\d+) scenarios? passed, (?P<failed>\d+) failed(?:, (?P<error>\d+) error)?, "
    r"(?P<skipped>\d+) skipped"
)


def behave(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "behave", *RUN_SPEC_OPTIONS, *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def suites(directory: Path) -> list[TestSuite]:
    return [
        suite for path in sorted(directory.glob("*.xml")) for suite in JUnitXml.fromfile(str(path))
    ]


def closing_line(reports: Path) -> str:
    """The closing line ./run-spec prints, from ``reports``/run.json."""
    done = subprocess.run(
        [sys.executable, "-m", "failspec.report.closing", str(reports)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip().splitlines()[0]


def closing_lines(reports: Path) -> list[str]:
    """Every line ./run-spec prints after the run, from ``reports``/run.json."""
    done = subprocess.run(
        [sys.executable, "-m", "failspec.report.closing", str(reports)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip().splitlines()


def test_junit_counts_agree_with_behaves_summary_line_and_the_closing_line(tmp_path):
    junit = tmp_path / "junit"
    done = behave(str(REPORT_FIXTURE), "-f", "plain", "--junit-directory", str(junit))
    assert done.returncode == 1, done.stdout + done.stderr
    said = SUMMARY.search(done.stdout + done.stderr)
    assert said, done.stdout + done.stderr
    expected = {key: int(value or 0) for key, value in said.groupdict().items()}
    assert expected == {"passed": 3, "failed": 1, "error": 1, "skipped": 1}  # the fixture's mix

    read = Counter()
    for suite in suites(junit):
        read.update(tests=suite.tests, failed=suite.failures, error=suite.errors,
                    skipped=suite.skipped)  # fmt: skip
        for case in suite:  # and each testcase says the same as its suite's counts
            read.update(f"{type(result).__name__} testcases" for result in case.result)
    read["passed"] = read["tests"] - read["failed"] - read["error"] - read["skipped"]
    assert {key: read[key] for key in expected} == expected
    assert [read[f"{kind} testcases"] for kind in ("Failure", "Error", "Skipped")] == [1, 1, 1]
    assert closing_line(tmp_path) == "behave: 3 passed, 2 failed, 1 skipped"
    # and the next line says where the two that failed are
    features = "tests/fixtures/report/features"
    assert closing_lines(tmp_path)[1] == (
        f"behave: failing: {features}/ledger.reads.feature:6, "
        f"{features}/payments.lost-connection.feature:23"
    )


def test_testcase_names_of_the_specification_are_unique_across_its_rules(tmp_path):
    # behave 1.3.3 names a testcase '<file>.<feature>' + scenario name, without its Rule:
    # equal scenario names under two Rules would be one name to CI.
    done = behave("--dry-run", "-D", "backend=embedded", "-f", "null", "--junit-directory",
                  str(tmp_path))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    names = Counter((case.classname, case.name) for suite in suites(tmp_path) for case in suite)
    assert len(names) >= 25
    assert [name for name, count in names.items() if count > 1] == []


def test_a_run_that_cannot_start_is_one_error_testcase_in_junit(tmp_path):
    junit = tmp_path / "junit"
    done = behave(str(HOOKS_FIXTURE), "-D", "backend=oracle", "--junit-directory", str(junit))
    assert done.returncode == 2
    assert [p.name for p in junit.iterdir()] == [SETUP_REPORT]

    [suite] = suites(junit)
    assert (suite.tests, suite.errors, suite.failures, suite.skipped) == (1, 1, 0, 0)
    [case] = suite
    [error] = case.result
    assert isinstance(error, Error) and not isinstance(error, (Failure, Skipped))
    assert error.message.startswith("unknown backend 'oracle': use one of auto, docker")
    assert closing_line(tmp_path) == "behave: not run (setup error)"
