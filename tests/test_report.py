"""The report's reading of a run, from its one record (reports/run.json): Rules, statuses,
why a scenario failed, a run that never ran."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys
from decimal import Decimal
from html import unescape
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from failspec.harness import hooks
from failspec.harness.concurrency import cycles, generated, isolation
from failspec.harness.faults import hangs, replication
from failspec.harness.guards.metrics import Metrics, ScenarioMetrics
from failspec.report import html, model, record
from failspec.report.closing import closing_line
from failspec.report.html import build_report
from failspec.report.model import Run, first_meaningful_line, load_run

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "report"
LOST_CONNECTION = "tests/fixtures/report/features/payments.lost-connection.feature"


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real behave run of the report fixture, as ./run-spec runs it: its environment
    writes run.json as the harness does, with the sample files as the harness's parts."""
    directory = tmp_path_factory.mktemp("reports")
    subprocess.run(
        [sys.executable, "-m", "behave", str(FIXTURE / "features"), "--show-skipped",
         "-f", "json", "-o", str(directory / "behave.json"),
         "--junit-directory", str(directory / "junit")],
        cwd=ROOT, capture_output=True, timeout=120,
    )  # fmt: skip
    return directory


@pytest.fixture(scope="module")
def run(reports: Path) -> Run:
    return load_run(reports)


def read_record(reports: Path) -> dict[str, Any]:
    return json.loads((reports / record.RUN_RECORD).read_text(encoding="utf-8"))


def write_record(reports: Path, run_record: dict[str, Any]) -> None:
    record.write(reports, run_record)


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
    assert failed.evidence is not None and set(failed.evidence.transcripts) == {"T1", "T2"}
    assert failed.evidence.other == {}  # every part of the sample evidence has its place


def test_a_skipped_scenario_gives_the_reason_the_harness_recorded(run):
    [skipped] = [s for s in run.scenarios if s.status == "skipped"]
    assert skipped.skip_reason == "this run's server offers no server control, so it cannot crash"


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
    record.write_setup_error(tmp_path, "unknown backend 'oracle'")  # as hooks.abort_setup
    done = report_command(tmp_path)
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "The run could not start: unknown backend &#39;oracle&#39;" in page
    assert closing_line(read_record(tmp_path)) == "behave: not run (setup error)"


def test_without_a_run_record_the_report_command_fails_in_one_line(tmp_path):
    done = report_command(tmp_path)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"report: cannot build: {tmp_path / 'run.json'} is missing: "
        "the run ended before the harness wrote it"
    ]


def test_the_report_needs_nothing_but_the_run_record(reports, tmp_path):
    # Every other file the run wrote is deleted, the feature files are out of reach (the
    # report runs elsewhere): the page is the one built beside all of them.
    beside = report_command(reports)
    assert beside.returncode == 0, beside.stderr
    alone = tmp_path / "elsewhere" / "reports"
    alone.mkdir(parents=True)
    shutil.copy(reports / record.RUN_RECORD, alone)
    done = subprocess.run(
        [sys.executable, "-m", "failspec.report", str(alone)],
        cwd=tmp_path / "elsewhere", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in alone.iterdir()) == ["report.html", "run.json"]
    page = (alone / "report.html").read_text(encoding="utf-8")
    assert page == (reports / "report.html").read_text(encoding="utf-8")
    # … and it is the whole run: Rules, a failure's reason, evidence, skip reason, figures.
    assert "A payment whose reply was lost is applied once when it is repeated" in page
    assert "Expected: 40.00 paid to dave once but: was &lt;2&gt;" in page
    assert "What session T1 did" in page
    assert "Skipped: this run&#39;s server offers no server control, so it cannot crash." in page
    assert '<table class="matrix">' in page and '<table class="totals">' in page
    assert '<table class="matrix replication">' in page


def test_the_record_counts_what_it_holds_and_closes_with_behaves_counts(reports):
    written = read_record(reports)
    assert set(written) == {
        "format", "server", "data_layer", "setup_error", "stopped", "outcomes", "features",
        "isolation_matrix", "hang_matrix", "replication_matrix", "isolation_generated",
        "driver_matrix", "metrics",
    }  # fmt: skip
    assert written["outcomes"] == record.outcomes(written)
    assert written["outcomes"]["scenarios"] == {
        "passed": 3, "failed": 2, "skipped": 1, "not_finished": 0, "not_run": 0,
    }  # fmt: skip
    assert written["outcomes"]["guarantees"] == {"holds": 1, "fails": 2, "unchecked": 0}
    assert written["server"] == {"backend": "embedded", "version": "18.6"}
    assert closing_line(written) == "behave: 3 passed, 2 failed, 1 skipped"
    scenarios = {s["location"]: s for s in record.scenarios(written)}
    assert scenarios[f"{LOST_CONNECTION}:11"]["tags"] == ["server-control"]
    repeated = scenarios[f"{LOST_CONNECTION}:23"]
    assert isinstance(repeated["duration_s"], float)
    [broken] = [step for step in repeated["steps"] if step["status"] == "failed"]
    assert broken["text"] == "dave has been paid 40.00 once"
    assert "Expected: 40.00 paid to dave once" in broken["error"]
    assert repeated["metrics"]["location"] == repeated["location"]  # the harness's figures
    assert set(repeated["evidence"]["transcripts"]) == {"T1", "T2"}
    # The harness's replication matrix, as it wrote it, in the record.
    sample = json.loads((FIXTURE / "reports" / "replication-matrix.json").read_text())
    assert written["replication_matrix"] == sample


def test_the_replication_matrix_is_read_back_from_the_record_alone(run):
    # The fixture's record holds the matrix a real run of replication.failover.feature wrote.
    matrix = run.replication
    assert matrix is not None
    assert [failure for failure, _ in matrix.failures] == list(replication.FAILURES)
    assert [level for level, _, _ in matrix.rows] == list(replication.LEVELS)
    off = dict(zip(replication.FAILURES, matrix.rows[0][2], strict=True))
    assert off["primary crash + promotion"] is None  # not run at that level
    assert off["standby cut off + promotion"] == model.ReplicationCell(
        acknowledged=True, waited=False, told="applied", survived=False
    )
    assert off["standby cut off + promotion"].kind == "lost"


def test_the_run_record_holds_the_replication_matrix_the_hooks_kept():
    kept = replication_matrix()
    context = SimpleNamespace(config=None, replication_matrix=kept)
    assert hooks.run_record(context, None, None)["replication_matrix"] == kept.as_json()
    context.replication_matrix = replication.ReplicationMatrix()  # no scenario measured one
    assert hooks.run_record(context, None, None)["replication_matrix"] is None


def test_the_run_record_holds_the_generated_matrix_the_hooks_kept():
    kept = generated_matrix()
    context = SimpleNamespace(config=None, generated_matrix=kept)
    assert hooks.run_record(context, None, None)["isolation_generated"] == kept.as_json()
    context.generated_matrix = generated.GeneratedMatrix(7)  # no generated scenario ran
    assert hooks.run_record(context, None, None)["isolation_generated"] is None


def test_the_closing_line_of_a_run_that_stopped_early_names_what_it_did_not_finish():
    counts = {"passed": 35, "failed": 1, "skipped": 0, "not_finished": 1, "not_run": 106}
    stopped = {"outcomes": {"scenarios": counts}, "setup_error": None}
    assert closing_line(stopped) == (
        "behave: 35 passed, 1 failed, 0 skipped, 1 not finished, 106 not run"
    )


# -- the files the harness writes ---------------------------------------------------------
#
# The report is read from files another part of the project writes. These tests hold the
# report and its sample files to the shapes the harness's own code produces, so that a
# field the harness renames or adds fails here, not silently on the page.


def shape(value: Any) -> Any:
    """The keys of a JSON value, all the way down (a list by its first item)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return None


def harness_metrics(scenarios: list[model.Scenario]) -> Metrics:
    """Metrics as the harness keeps them, for ``scenarios``; each figure differs from the
    others, so one shown in another's place is caught."""
    metrics = Metrics("embedded", "18.6")
    for scenario in scenarios:
        ran = scenario.status != "skipped"
        metrics.add(
            ScenarioMetrics(
                scenario.location, "a feature", scenario.name, scenario.status,
                duration_s=0.25 if ran else 0.0, overhead_ms=12.5 if ran else 0.0,
                peak_connections=4 if ran else 0, commits=3 if ran else 0,
                ledger_commits=2 if ran else 0, rollbacks=2 if ran else 0,
                xact_commit=41 if ran else 0,
                xact_rollback=17 if ran else 0, rows_changed=7 if ran else 0,
                skip_reason=None if ran else "the url server accepts any password",
            )
        )  # fmt: skip
    return metrics


def harness_evidence(leaks: list[str], imbalances: list[str] = ()) -> dict[str, Any]:
    """A failed scenario's evidence as the harness's after_scenario hook puts it together."""
    context = SimpleNamespace(
        server=SimpleNamespace(log_tail=lambda lines: "LOG:  <the server's last lines>"),
        network=SimpleNamespace(log_text=lambda: "+0.000s start: listening on 127.0.0.1:1"),
    )
    workspace = SimpleNamespace(application_name="fs:abcd:1 a scenario")
    transcripts = {"T1": ["+0.004s commit -> ok"]}
    found = {"leaks": leaks, "imbalances": list(imbalances)}
    return hooks._evidence(context, workspace, transcripts, found)


def test_every_figure_the_harness_writes_has_words_in_the_report():
    # A new or renamed field of failspec.harness.guards.metrics must be named in
    # failspec.report.html.
    assert set(Metrics("embedded", "18.6").totals()) == set(html.TOTALS)
    fields = {f.name for f in dataclasses.fields(ScenarioMetrics)}
    assert fields == set(html.SCENARIO_LINE) | set(html.NOT_ON_SCENARIO_LINE)
    assert not set(html.SCENARIO_LINE) & set(html.NOT_ON_SCENARIO_LINE)


def test_the_isolation_matrix_names_every_anomaly_and_level_the_harness_checks():
    assert {a.id for a in isolation.ANOMALIES.values()} <= set(model.ANOMALIES)
    assert set(isolation.LEVELS) <= set(model.LEVELS)


def test_the_replication_matrix_names_every_level_and_failure_the_harness_measures():
    assert list(model.SYNC_LEVELS) == list(replication.LEVELS)  # weakest first
    assert list(model.FAILURES) == list(replication.FAILURES)


def test_the_sample_files_have_the_shapes_the_harness_writes():
    samples = {p.name: json.loads(p.read_text()) for p in (FIXTURE / "reports").glob("*.json")}
    assert set(samples) == {
        "metrics.json",
        "evidence.json",
        "isolation-matrix.json",
        "replication-matrix.json",
    }, "sample files missing from tests/fixtures/report/reports (ignored by git?)"
    metrics = harness_metrics([model.Scenario("x.feature:1", "x", "passed", [])]).as_json()
    assert shape(samples["metrics.json"]) == shape(metrics)
    evidence = harness_evidence(["a leak"], ["dave holds 1.00, but its records give 0.00"])
    kinds = {key: type(part) for key, part in evidence.items()}
    for sample in samples["evidence.json"].values():  # each with some of the parts, or all
        assert {key: type(part) for key, part in sample.items()}.items() <= kinds.items()
    matrix = samples["isolation-matrix.json"]
    assert list(matrix) == list(dict.fromkeys(a.id for a in isolation.ANOMALIES.values()))
    assert all(list(row) == list(isolation.LEVELS) for row in matrix.values())
    cells = samples["replication-matrix.json"]
    assert list(cells) == [level for level in replication.LEVELS if level in cells]
    harness = next(iter(next(iter(replication_matrix().as_json().values())).values()))
    assert all(shape(cell) == shape(harness) for row in cells.values() for cell in row.values())


@pytest.fixture(scope="module")
def harness_report(reports: Path, run: Run, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The fixture run's report, from a run record holding the metrics, evidence and
    matrices the harness's code made, put in as the harness puts them."""
    directory = tmp_path_factory.mktemp("harness-reports")
    failed = [s.location for s in run.scenarios if s.status == "failed"]
    evidence = {
        location: harness_evidence(
            ["<a leak> & more"], ["<dave> holds 1.00, but its records give 0.00"]
        )
        for location in failed
    }
    matrix = isolation.Matrix()
    for name, anomaly in isolation.ANOMALIES.items():
        for level in isolation.LEVELS:
            prevented = level == "serializable" or anomaly.id.startswith("G1")
            verdict = isolation.PREVENTED if prevented else isolation.ALLOWED
            matrix.record(isolation.Verdict(name, level, verdict, "how"))
    run_record = record.attach(
        read_record(reports),
        metrics=harness_metrics(run.scenarios).as_json(),
        evidence=evidence,
        isolation=matrix.as_json(),
        hangs=hang_matrix().as_json(),
        replication=replication_matrix().as_json(),
        generated=generated_matrix().as_json(),
    )
    write_record(directory, run_record)
    return build_report(directory).read_text(encoding="utf-8")


def hang_matrix() -> hangs.HangMatrix:
    """Three cells, as the harness's own code measures them: two within their bound, one
    not, and the phases recorded out of the matrix's order."""
    settings = hangs.Settings(2.0, 0.5, (1.0, 1.0, 1), 0.8, 0.5, 0.5, None)
    matrix = hangs.HangMatrix()
    keepalives = hangs.BOUNDS["the TCP keepalives"]
    matrix.record(hangs.LOCK, hangs.CUT, hangs.Cell.measure(keepalives, settings, 2.07,
                                                           "network_timeout"))  # fmt: skip
    connect = hangs.BOUNDS["the connect timeout"]
    matrix.record(hangs.OPENING, hangs.FROZEN, hangs.Cell.measure(connect, settings, 2.01,
                                                                 "connect_timeout"))  # fmt: skip
    matrix.record(hangs.OPENING, hangs.CUT, hangs.Cell.measure(connect, settings, 1.03,
                                                              "unnamed"))  # fmt: skip
    deadline = hangs.BOUNDS["the data layer's deadline"]
    settings = hangs.Settings(2.0, 0.5, (1.0, 1.0, 1), 0.8, 0.5, 0.5, 2.5)
    matrix.record(hangs.COMMIT, hangs.FROZEN, hangs.Cell.measure(
        deadline, settings, 2.52, "deadline_exceeded", unbounded=True))  # fmt: skip
    return matrix


def replication_matrix() -> replication.ReplicationMatrix:
    """One cell of each kind, as the harness's own code makes them (Failover.cell), the
    levels recorded out of the matrix's order."""
    matrix = replication.ReplicationMatrix()
    crash, cut_off, partition = replication.FAILURES
    lost = replication.Cell(acknowledged=True, waited=False, told="applied", survived=False)
    doubt = replication.Cell(False, True, "transaction_resolution_unknown", survived=True)
    matrix.record("on", cut_off, replication.Cell(False, True, "connection_lost", False))
    matrix.record("on", crash, replication.Cell(True, False, "applied", True))
    matrix.record("local", cut_off, lost)
    matrix.record("remote_apply", cut_off, doubt)
    matrix.record(
        "remote_write", partition, replication.Cell(False, True, "connection_lost", False)
    )
    return matrix


def generated_matrix() -> generated.GeneratedMatrix:
    """Two levels of the list-append workload and one of the bank, as the harness's own
    code records them: write skew found at repeatable read (allowed), and at serializable
    (never: a broken promise); a bank read with a total the books never had, allowed."""
    matrix = generated.GeneratedMatrix(seed=7)

    def t(id_, *ops):
        return cycles.Transaction(id_, "S1", list(ops))

    skew = [
        t(1, (cycles.READ, 632, None), (cycles.APPEND, 633, 3)),
        t(2, (cycles.READ, 633, None), (cycles.APPEND, 632, 2)),
        t(3, (cycles.READ, 632, [2]), (cycles.READ, 633, [3])),
    ]
    for level, said in (("serializable", generated.NEVER), ("repeatable read", generated.ALLOWED)):
        run = generated.Run("list-append", level, 7, 4, history=skew)
        matrix.record(run, generated.findings(cycles.check(run.history)))
        for kind in cycles.CLASSES:
            matrix.expect("list-append", level, kind, generated.NEVER)
        matrix.expect("list-append", level, "G2-item", said)
    read = generated.BankRecord(1, "S2", None, balances={"alice": Decimal("90.00")})
    bank = generated.Run("bank", "read committed", 7, 4, history=[read])
    matrix.record(bank, {generated.BANK_SKEW: generated.check_bank(bank, Decimal("100.00"))})
    matrix.expect("bank", "read committed", generated.BANK_SKEW, generated.ALLOWED)
    return matrix


def test_the_report_names_every_class_the_generated_workloads_check():
    assert list(model.GENERATED) == [*cycles.CLASSES, generated.BANK_SKEW]
    assert set(model.WORKLOADS) == {"list-append", "bank"}


def test_the_report_shows_the_generated_matrix_the_harness_wrote(harness_report):
    section = re.search(r'<section id="isolation-generated">.*?</section>', harness_report, re.S)[0]
    assert "seed 7: run again with -D seed=7" in text(section)
    lists = re.search(r'<table [^>]*data-workload="list-append">.*?</table>', section, re.S)[0]
    rows = [text(row) for row in re.findall(r"<tr>.*?</tr>", lists, re.S)]
    assert rows == [
        "anomaly repeatable read 3 transactions, 3 committed, on 4 sessions "
        "serializable 3 transactions, 3 committed, on 4 sessions",
        "G0 dirty write ✔ never · not found ✔ never · not found",
        "G1a aborted read ✔ never · not found ✔ never · not found",
        "G1b intermediate read ✔ never · not found ✔ never · not found",
        "G1c circular information flow ✔ never · not found ✔ never · not found",
        "G-single read skew ✔ never · not found ✔ never · not found",
        "G2-item write skew allowed · observed 1 ✘ never · found 1",
        "internal a transaction not seeing its own writes ✔ never · not found ✔ never · not found",
        "incompatible-order reads that no one order of appends explains ✔ never · not found "
        "✔ never · not found",
    ]
    assert '<td class="broken">' in lists  # the broken promise stands out
    examples = [text(li) for li in re.findall(r"<li>.*?</li>", section, re.S)]
    assert examples[1] == (
        "G2-item at serializable : T1 → T2 → T1: T1 read key 632 as empty, without 2, which "
        "T2 appended next (rw); T2 read key 633 as empty, without 3, which T1 appended next "
        "(rw). Each must come before the next, round to the first: no serial order does that"
    )
    bank = re.search(r'<table [^>]*data-workload="bank">.*?</table>', section, re.S)[0]
    assert text(bank).endswith(
        "read skew over balances a read of every balance with a total the books never had "
        "allowed · observed 1"
    )
    assert "total 90.00, not 100.00" in examples[-1]


def article(page: str, location: str) -> str:
    match = re.search(rf'<article [^>]*data-location="{re.escape(location)}">.*?</article>', page,
                      re.S)  # fmt: skip
    assert match, location
    return match[0]


def text(fragment: str) -> str:
    """What a reader sees of some HTML, on one line."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def test_the_report_shows_the_run_from_the_harness_metrics(harness_report):
    page = harness_report
    assert "Server: backend <strong>embedded</strong>, PostgreSQL <strong>18.6</strong>" in page
    # Each scenario shows what its own connections did: commits, not the server's count.
    passed = text(article(page, f"{LOST_CONNECTION}:16"))
    assert (
        "took 0.25 s · 2 commits changing the ledger · 3 commits through SQLAlchemy · 2 rollbacks"
        " · 7 rows changed · at most 4 connections at once · harness 12.5 ms"
    ) in passed
    assert "41" not in passed and "17" not in passed
    skipped = text(article(page, f"{LOST_CONNECTION}:11"))
    assert "Skipped: this run's server offers no server control, so it cannot crash." in skipped
    assert "took" not in skipped
    # The run's totals: the scenarios' own commits, and the server's, said to be server-wide.
    table = re.search(r'<table class="totals">.*?</table>', page, re.S)[0]
    totals = text(table)
    assert "commits by the scenarios 15 the scenarios' own transactions the server" in totals
    assert "transactions committed on the server 205 counted by PostgreSQL for the whole" in totals
    assert "harness time per scenario 12.5 ms" in totals
    # Every figure in words, never as the harness's key.
    labels = [text(cell) for cell in re.findall(r'<tr class="\w+"><td>(.*?)</td>', table)]
    assert sorted(labels) == sorted(label for label, _ in html.TOTALS.values())
    slowest = text(re.search(r'<table class="slowest">.*?</table>', page, re.S)[0])
    assert "A payment of 0.01 is applied once" in slowest and "@1.1" not in slowest


def test_the_report_shows_the_isolation_matrix_the_harness_wrote(harness_report):
    matrix = re.search(r'<table class="matrix">.*?</table>', harness_report, re.S)[0]
    rows = [text(row) for row in re.findall(r"<tr>.*?</tr>", matrix, re.S)]
    assert rows[0] == "anomaly read committed repeatable read serializable"
    assert len(rows) == 1 + 10
    assert "G1a aborted read ✔ prevented ✔ prevented ✔ prevented" in rows
    assert "G2 anti-dependency cycles ✘ allowed ✘ allowed ✔ prevented" in rows


def test_the_report_shows_the_hang_matrix_the_harness_wrote(harness_report):
    table = re.search(r'<table class="matrix hangs">.*?</table>', harness_report, re.S)[0]
    rows = [text(row) for row in re.findall(r"<tr>.*?</tr>", table, re.S)]
    assert rows[0] == "the request waits in the server freezes the network is cut"
    assert rows[1] == (
        "the opening of a connection "
        "✔ the connect timeout (connect_timeout, 2.00 s) measured 2.01 s · connect_timeout "
        "✘ the connect timeout (connect_timeout, 2.00 s) measured 1.03 s · unnamed"
    )
    assert rows[2] == (
        "COMMIT's wait for its reply "
        "✔ unbounded by any client setting; ended by the data layer's deadline "
        "(request_deadline, 2.50 s) measured 2.52 s · deadline_exceeded not run"
    )
    assert rows[3] == (
        "the wait for a lock not run "
        "✔ the TCP keepalives (keepalives, 2.00 s) measured 2.07 s · network_timeout"
    )
    assert len(rows) == 4


def test_the_report_shows_the_replication_matrix_the_harness_wrote(harness_report):
    section = re.search(r'<section id="replication-matrix">.*?</section>', harness_report, re.S)[0]
    table = re.search(r'<table class="matrix replication">.*?</table>', section, re.S)[0]
    rows = [text(row) for row in re.findall(r"<tr>.*?</tr>", table, re.S)]
    assert rows[0] == (
        "synchronous_commit the primary crashes and the standby is promoted "
        "the standby is cut off, then the primary crashes and the standby is promoted "
        "the network between primary and standby is partitioned, then the primary crashes "
        "and the standby is promoted"
    )
    assert rows[1:] == [
        "local waits for the primary's own disk, not for a standby not run ✘ told applied · lost "
        "not run",
        "remote_write waits until the standby has written the payment to its operating system "
        "not run not run "
        "✔ waited, told connection_lost · not acknowledged, so nothing acknowledged lost",
        "on waits until the standby has saved the payment to its disk "
        "✔ told applied · survived "
        "✔ waited, told connection_lost · not acknowledged, so nothing acknowledged lost not run",
        "remote_apply waits until the standby shows the payment to its readers not run "
        "? waited, told transaction_resolution_unknown · not acknowledged, yet it survived: "
        "in doubt not run",
    ]
    assert '<td class="lost">' in table  # the one broken promise stands out
    legend = text(re.search(r'<p class="legend">.*?</p>', section, re.S)[0])
    assert legend.startswith("✘ lost: the application was told it was applied, and it is gone")
    assert "PostgreSQL's documentation, “Synchronous Replication”" in legend


def test_the_evidence_the_harness_kept_is_shown_escaped_and_collapsed(harness_report):
    failed = article(harness_report, f"{LOST_CONNECTION}:23")
    evidence = re.search(r'<details class="evidence">.*?</details>', failed, re.S)[0]
    assert (
        "Evidence: the full error, where the books do not balance, what it left open, "
        "what each session did, the network"
    ) in text(evidence)
    assert "<li>&lt;dave&gt; holds 1.00, but its records give 0.00</li>" in evidence
    assert "<li>&lt;a leak&gt; &amp; more</li>" in evidence
    assert "+0.004s commit -&gt; ok" in evidence
    assert "LOG:  &lt;the server&#39;s last lines&gt;" in evidence
    assert "+0.000s start: listening on 127.0.0.1:1" in evidence


def test_evidence_the_report_does_not_know_is_shown_under_its_own_name(reports, tmp_path):
    location = f"{LOST_CONNECTION}:23"
    run_record = read_record(reports)
    [scenario] = [s for s in record.scenarios(run_record) if s["location"] == location]
    scenario["evidence"]["locks"] = {"T1": ["<row lock> on dave"]}
    write_record(tmp_path, run_record)
    page = build_report(tmp_path).read_text(encoding="utf-8")
    shown = article(page, location)
    assert "<h4>locks</h4>" in shown and "&lt;row lock&gt; on dave" in shown


def _rule(title: str, *scenarios: dict[str, Any]) -> dict[str, Any]:
    return {"title": title, "verdict": record.verdict(s["status"] for s in scenarios),
            "scenarios": list(scenarios)}  # fmt: skip


def _one(status: str, uses: bool) -> dict[str, Any]:
    return {"status": status, "uses_data_layer": uses, "missing_capability": None}


def test_the_guarantees_are_split_by_whether_they_went_through_the_data_layer():
    # A layer whose every operation raises: the Rules that never call it still hold, and
    # the run must not let them pass for the layer's.
    run = {
        "setup_error": None, "stopped": None,
        "data_layer": {"factory": "mylayer:factory", "lacks": {}, "acknowledged_missing": []},
        "features": [{"rules": [
            _rule("pays", _one("failed", True)),
            _rule("isolation", _one("passed", False), _one("passed", False)),
            _rule("pool", _one("passed", False)),
        ]}],
    }  # fmt: skip
    found = record.outcomes(run)
    assert found["guarantees"] == {"holds": 2, "fails": 1, "unchecked": 0}
    assert found["guarantees_through_data_layer"] == {"holds": 0, "fails": 1, "unchecked": 0}
    assert found["guarantees_without_data_layer"] == {"holds": 2, "fails": 0, "unchecked": 0}
    assert found["green"] is False and found["exit_code"] == 1
    from failspec.report.closing import guarantees_line

    assert guarantees_line({**run, "outcomes": found}) == (
        "guarantees through the data layer mylayer:factory: 0 of 1 hold, 1 fail; "
        "of PostgreSQL and the driver (the data layer not called): 2 of 2 hold"
    )


def test_the_record_says_whether_the_run_is_green_and_its_exit_code():
    def run(*statuses: str, **more: Any) -> dict[str, Any]:
        base = {
            "setup_error": None,
            "stopped": None,
            "data_layer": None,
            "features": [{"rules": [_rule("r", *(_one(s, True) for s in statuses))]}],
        }
        return record.outcomes({**base, **more})  # fmt: skip

    assert (run("passed")["green"], run("passed")["exit_code"]) == (True, 0)
    assert (run("passed", "failed")["green"], run("passed", "failed")["exit_code"]) == (False, 1)
    assert run()["exit_code"] == 1  # tested nothing
    stopped = {"exit_code": 130, "cause": "interrupted by SIGINT"}
    assert run("passed", stopped=stopped)["exit_code"] == 130
    assert record.setup_error("no docker")["outcomes"]["exit_code"] == 2
    assert record.setup_error("no docker")["outcomes"]["green"] is False


def test_a_record_without_a_data_layer_has_no_split_line():
    from failspec.report.closing import guarantees_line

    run = {"setup_error": None, "stopped": None, "data_layer": None,
           "features": [{"rules": [_rule("r", _one("passed", False))]}]}  # fmt: skip
    assert guarantees_line({**run, "outcomes": record.outcomes(run)}) == ""
    layer = {"factory": "mylayer:factory", "lacks": {}, "acknowledged_missing": []}
    stopped = {**run, "data_layer": layer, "stopped": {"exit_code": 130}}
    assert guarantees_line({**stopped, "outcomes": record.outcomes(stopped)}) == ""


def test_a_half_of_the_split_with_no_guarantee_selected_is_left_out():
    # A run of one feature through the layer: no "of PostgreSQL and the driver: 0 of 0".
    from failspec.report.closing import guarantees_line

    layer = {"factory": "mylayer:factory", "lacks": {}, "acknowledged_missing": []}
    run = {"setup_error": None, "stopped": None, "data_layer": layer,
           "features": [{"rules": [_rule("pays", _one("passed", True))]}]}  # fmt: skip
    assert guarantees_line({**run, "outcomes": record.outcomes(run)}) == (
        "guarantees through the data layer mylayer:factory: 1 of 1 hold"
    )


def test_the_report_leads_with_the_split_where_there_is_one(reports, tmp_path):
    # The fixture's run, its first Rule's scenarios marked as having called the data layer:
    # the title and the first verdict are the split's, the total comes after it ("In all").
    split = read_record(reports)
    for feature in split["features"]:
        for number, rule in enumerate(feature["rules"]):
            for scenario in rule["scenarios"]:
                scenario["uses_data_layer"] = number == 0
    split["data_layer"] = {"factory": "mylayer:factory", "lacks": {}, "acknowledged_missing": []}
    split["outcomes"] = record.outcomes(split)
    write_record(tmp_path, split)
    html = build_report(tmp_path).read_text(encoding="utf-8")
    title = re.search(r"<title>(.*?)</title>", html, re.S)
    assert title and title.group(1).startswith("failspec: through the data layer "), html[:500]
    assert html.index('id="split"') < html.index("In all: ")
