"""The mutant runner's pure parts (bench/mutation_score.py), without running the spec:
the patch header, the catalogue, red scenarios from behave's JUnit, the verdicts, the score.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location(
    "mutation_score", ROOT / "bench" / "mutation_score.py"
)
assert _spec is not None and _spec.loader is not None
ms = importlib.util.module_from_spec(_spec)
sys.modules["mutation_score"] = ms  # dataclasses look their module up while being built
_spec.loader.exec_module(ms)

DIFF = """diff --git a/src/x.py b/src/x.py
--- a/src/x.py
+++ b/src/x.py
@@ -1 +1 @@
-a = 1
+a = 2
"""


def patch(tmp_path: Path, name: str, header: str) -> Path:
    path = tmp_path / f"{name}.patch"
    path.write_text(header + "\n" + DIFF)
    return path


# -- the header and the catalogue -----------------------------------------------------------


def test_the_header_is_the_key_lines_before_the_diff():
    text = "Why: a reason: with a colon\nKind: retry\n\n" + DIFF + "Kind: not-the-header\n"
    assert ms.parse_header(text) == {"why": "a reason: with a colon", "kind": "retry"}


def test_a_mutant_reads_its_name_why_kind_and_equivalence(tmp_path):
    path = patch(tmp_path, "07-no-jitter", "Why: w\nKind: orm\nEquivalent: cannot be seen")
    mutant = ms.read_mutant(path)
    assert (mutant.name, mutant.why, mutant.kind) == ("07-no-jitter", "w", "orm")
    assert mutant.equivalent == "cannot be seen"
    assert ms.read_mutant(patch(tmp_path, "08-x", "Why: w\nKind: orm")).equivalent is None


@pytest.mark.parametrize(
    ("header", "complaint"),
    [
        ("Kind: retry", "no 'Why:' line"),
        ("Why: w", "no 'Kind:' line"),
        ("Why: w\nKind: network", "kind 'network' is not one of"),
    ],
)
def test_a_header_without_why_or_a_known_kind_is_refused(tmp_path, header, complaint):
    with pytest.raises(ms.CatalogueError, match=complaint):
        ms.read_mutant(patch(tmp_path, "01-bad", header))


def test_a_patch_without_a_diff_is_refused(tmp_path):
    path = tmp_path / "01-empty.patch"
    path.write_text("Why: w\nKind: retry\n")
    with pytest.raises(ms.CatalogueError, match="no 'diff --git'"):
        ms.read_mutant(path)


def test_mutants_are_chosen_by_full_name_short_name_or_file_name(tmp_path):
    for name in ("01-no-cap", "02-no-jitter", "03-waits-all-zero"):
        patch(tmp_path, name, "Why: w\nKind: retry")
    mutants = ms.catalogue(tmp_path)
    chosen = ms.select(mutants, ["no-jitter", "03-waits-all-zero.patch", "02-no-jitter"])
    assert [m.name for m in chosen] == ["02-no-jitter", "03-waits-all-zero"]
    with pytest.raises(ms.CatalogueError, match="no mutant named 'jitter'"):
        ms.select(mutants, ["jitter"])


def test_the_projects_catalogue_reads_and_every_patch_applies_to_the_tree():
    mutants = ms.catalogue()
    assert len(mutants) >= 34
    assert {m.kind for m in mutants} == set(ms.KINDS)
    for mutant in mutants:
        done = subprocess.run(
            ["git", "apply", "--check", str(mutant.path)], cwd=ROOT, capture_output=True, text=True
        )
        assert done.returncode == 0, f"{mutant.name} is stale: {done.stderr}"


# -- what a run said ---------------------------------------------------------------------------

JUNIT = """<testsuite name="operations.retries.Retries" tests="4" errors="1" failures="1">
<testcase classname="operations.retries.Retries" name="Green one" status="passed" time="0.1"/>
<testcase classname="operations.retries.Retries" name="Red one -- @1.2 " status="failed">
  <failure type="AssertionError" message="Expected: 3 but: was 4">trace</failure>
</testcase>
<testcase classname="operations.retries.Retries" name="Guarded one" status="hook_error">
  <error type="AssertionError" message="money conservation">trace</error>
</testcase>
<testcase classname="operations.retries.Retries" name="Skipped one" status="skipped">
  <skipped/>
</testcase>
</testsuite>
"""


def test_red_scenarios_are_the_failed_and_errored_test_cases_not_the_skipped(tmp_path):
    (tmp_path / "TESTS-operations.retries.xml").write_text(JUNIT)
    (tmp_path / "TESTS-pool.exhaustion.xml").write_text(
        '<testsuite name="p" tests="1"><testcase classname="p" name="Fine" status="passed"/>'
        "</testsuite>"
    )
    assert ms.red_scenarios(tmp_path) == [
        ms.Red("operations.retries", "Red one -- @1.2", "failure"),
        ms.Red("operations.retries", "Guarded one", "error"),
    ]


def test_a_test_case_red_only_by_its_status_is_red(tmp_path):
    (tmp_path / "TESTS-a.xml").write_text(
        '<testsuite name="a"><testcase classname="a" name="Hooked" status="hook_error"/>'
        "</testsuite>"
    )
    assert ms.red_scenarios(tmp_path) == [ms.Red("a", "Hooked", "error")]


def test_rerun_locations_skip_comments_and_blank_lines():
    text = (
        "# -- RERUN: 2 failing scenarios during last test run.\nf/a.feature:12\n\nf/b.feature:3\n"
    )
    assert ms.rerun_locations(text) == ["f/a.feature:12", "f/b.feature:3"]


def run(returncode=0, red=(), timed_out=False):
    return ms.RunResult(returncode, list(red), [], 1.0, timed_out)


RED = ms.Red("f", "s", "failure")


@pytest.mark.parametrize(
    ("first", "confirm", "equivalent", "expected"),
    [
        (None, None, False, "stale"),
        (run(), None, False, "survived"),
        (run(), None, True, "equivalent"),
        (run(1, [RED]), run(1, [RED]), False, "killed"),
        (run(1, [RED]), run(1, [RED]), True, "killed"),
        (run(1, [RED]), run(), False, "flaky"),
        # behave said red, JUnit names nothing (a run that failed before any scenario)
        (run(1), run(1), False, "killed"),
        # JUnit red with exit 0 still counts as red
        (run(0, [RED]), run(0, [RED]), False, "killed"),
        (run(timed_out=True), None, False, "killed"),
    ],
)
def test_the_verdict_comes_from_the_run_and_its_confirmation(first, confirm, equivalent, expected):
    assert ms.verdict(first, confirm, equivalent) == expected


def test_a_red_run_says_why_even_when_junit_names_no_scenario():
    assert run(1).describe() == ["(behave exited 1; JUnit names no red scenario)"]
    assert run(1, [RED]).describe() == ["f: s"]
    assert "did not finish" in run(timed_out=True).describe()[0]


def outcome(verdict: str) -> object:
    return ms.Outcome("m", "retry", "w", verdict, 1.0)


def test_the_score_is_killed_over_judged_non_equivalent_mutants():
    verdicts = ["killed"] * 3 + ["survived", "flaky", "equivalent", "stale"]
    totals = ms.summary([outcome(v) for v in verdicts])
    assert totals == {
        "killed": 3, "survived": 1, "equivalent": 1, "flaky": 1, "stale": 1, "score": 0.6,
    }  # fmt: skip
    assert ms.summary([outcome("equivalent")])["score"] is None


def test_a_mutant_line_names_verdict_seconds_and_the_first_red_scenarios():
    done = ms.Outcome("07-x", "retry", "w", "killed", 12.3, red=["a: 1", "b: 2", "c: 3"])
    assert ms.line(done).split()[:4] == ["07-x", "killed", "12.3", "s"]
    assert ms.line(done).endswith("a: 1; b: 2 (+1 more)")
    stale = ms.Outcome("08-y", "orm", "w", "stale", 0.1, error="the patch does not apply: no")
    assert ms.line(stale).endswith("the patch does not apply: no")


def test_the_mutants_slowest_in_the_last_report_go_first_and_unknown_ones_before_all(tmp_path):
    mutants = [ms.Mutant(n, tmp_path / f"{n}.patch", "w", "retry") for n in ("a", "b", "c", "d")]
    report = tmp_path / "last.json"
    report.write_text('{"mutants": [{"name": "a", "seconds": 20}, {"name": "b", "seconds": 90},'
                      ' {"name": "d", "seconds": 30}]}')  # fmt: skip
    assert [m.name for m in ms.slowest_first(mutants, report)] == ["c", "b", "d", "a"]
    assert [m.name for m in ms.slowest_first(mutants, tmp_path / "none.json")] == list("abcd")
