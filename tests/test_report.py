"""The report's reading of a run: Rules, statuses, why a scenario failed, a run that never ran."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from failspec.report.junit import write_setup_error
from failspec.report.model import Run, first_meaningful_line, load_run

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "report"
LOST_CONNECTION = "tests/fixtures/report/features/payments.lost-connection.feature"


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real behave run of the report fixture, as ./run-spec runs it, plus the sample files."""
    directory = tmp_path_factory.mktemp("reports")
    subprocess.run(
        [sys.executable, "-m", "behave", str(FIXTURE / "features"), "--show-skipped",
         "-f", "json", "-o", str(directory / "behave.json"),
         "--junit-directory", str(directory / "junit")],
        cwd=ROOT, capture_output=True, timeout=120,
    )  # fmt: skip
    for sample in (FIXTURE / "reports").glob("*.json"):
        shutil.copy(sample, directory)
    return directory


@pytest.fixture(scope="module")
def run(reports: Path) -> Run:
    return load_run(reports, ROOT)


def report_command(reports: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "failspec.report", str(reports)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_scenarios_are_grouped_by_the_rule_they_are_under(run):
    assert [(f.name, [r.title for r in f.rules]) for f in run.features] == [
        ("Reading the ledger", ["The ledger can be read while payments are being recorded"]),
        (
            "A payment survives a lost connection exactly once",
            [
                "A payment committed before the connection is lost stays in the ledger",
                "A payment whose reply was lost is applied once when it is repeated",
            ],
        ),
    ]
    assert [r.verdict for r in run.rules] == ["fails", "holds", "fails"]


def test_each_scenario_has_its_own_status_also_where_behaves_json_misplaces_it(run):
    # behave 1.3.3 writes the status of the scenario before a Rule onto that Rule's Background.
    statuses = {s.location: s.status for s in run.scenarios}
    assert statuses == {
        "tests/fixtures/report/features/ledger.reads.feature:6": "failed",
        f"{LOST_CONNECTION}:11": "skipped",
        f"{LOST_CONNECTION}:16": "passed",
        f"{LOST_CONNECTION}:23": "failed",
        f"{LOST_CONNECTION}:34": "passed",
        f"{LOST_CONNECTION}:35": "passed",
    }


def test_a_scenario_that_never_ran_still_shows_its_steps_as_skipped(run):
    [skipped] = [s for s in run.scenarios if s.status == "skipped"]
    assert [(s.keyword, s.text, s.status, s.background) for s in skipped.steps] == [
        ("Given", "the ledger holds the sample payments", "skipped", True),
        ("When", "the application pays 40.00 to dave", "skipped", False),
        ("And", "the server crashes", "skipped", False),
        ("Then", "dave has been paid 40.00 once", "skipped", False),
    ]


def test_a_failed_check_is_explained_by_its_step_and_the_assertion_on_one_line(run):
    failed = next(s for s in run.scenarios if s.location == f"{LOST_CONNECTION}:23")
    assert failed.why == (
        "“Then dave has been paid 40.00 once” failed: "
        "Expected: 40.00 paid to dave once but: was <2>"
    )
    assert failed.evidence is not None and set(failed.evidence["transcripts"]) == {"alice", "bob"}


def test_an_error_outside_assertions_is_explained_from_the_junit_report(run):
    # behave's JSON keeps no message for a step that raised anything but an AssertionError.
    [broken] = run.features[0].rules[0].scenarios
    assert broken.why == (
        "“When the ledger is read while a payment is recorded” failed: "
        'RuntimeError: relation "transactions" does not exist'
    )


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("ASSERT FAILED: \nExpected: a deadlock\n     but: succeeded\n",
         "Expected: a deadlock but: succeeded"),
        ("Traceback (most recent call last):\n  File \"x.py\", line 1\nKeyError: 'dave'",
         "KeyError: 'dave'"),
        ("\nno scenario ran: check the paths\nmore detail", "no scenario ran: check the paths"),
    ],
    ids=["hamcrest", "traceback", "plain"],
)  # fmt: skip
def test_the_first_meaningful_line_of_an_error(text, line):
    assert first_meaningful_line(text) == line


def test_the_report_command_writes_the_page_and_says_where(reports):
    done = report_command(reports)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"report: {reports / 'report.html'}\n"
    page = (reports / "report.html").read_text(encoding="utf-8")
    assert "1 of 3 guarantees hold</strong>,\n    2 fail." in page
    # Nothing to fetch, so it opens offline: every link points into the page itself.
    assert re.findall(r'(?:src|href)="([^#][^"]*)"', page) == []
    assert "<script" not in page and "<link" not in page


def test_a_run_that_could_not_start_gets_a_report_that_says_why(tmp_path):
    (tmp_path / "behave.json").write_text("")  # behave opened it, then the run ended at once
    write_setup_error(tmp_path / "junit", "unknown backend 'oracle'")
    done = report_command(tmp_path)
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "The run could not start: unknown backend &#39;oracle&#39;" in page


def test_without_behaves_json_the_report_command_fails_in_one_line(tmp_path):
    done = report_command(tmp_path)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"report: cannot build: {tmp_path / 'behave.json'} is missing: "
        f"run behave with -f json -o {tmp_path / 'behave.json'}"
    ]
