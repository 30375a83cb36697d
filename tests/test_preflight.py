"""Before the run: a feature file that does not parse, or a step module that does not
load, ends the run with one line and a JUnit error (behave would write no JUnit)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from behave.step_registry import registry

from failspec import preflight
from failspec.report import junit

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def features(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of the specification's features (and pyproject, for behave's settings)."""
    shutil.copytree(ROOT / "features", tmp_path / "features")
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    monkeypatch.chdir(tmp_path)
    # behave's step registry is one per process: each test starts from what it held.
    saved = {keyword: list(steps) for keyword, steps in registry.steps.items()}
    yield tmp_path / "features"
    registry.steps.clear()
    registry.steps.update(saved)


def run(features: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str | None]:
    directory = features.parent / "junit"
    code = preflight.main(["--junit-directory", str(directory), str(features)])
    return code, capsys.readouterr().err, junit.read_setup_error(directory)


def test_the_specification_as_it_is_can_start(features, capsys):
    assert run(features, capsys) == (0, "", None)


def test_a_feature_file_that_does_not_parse_is_one_line_and_a_junit_error(features, capsys):
    (features / "zz.broken.feature").write_text(
        "Feature: broken\n  Scenario: one\n    Given a step\n   Whan a typo\n"
    )
    code, err, junit_error = run(features, capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("failspec: cannot run: ParserError: ")
    assert 'at line 4: "Whan a typo"' in err and "zz.broken.feature" in err
    assert junit_error is not None and "ParserError" in junit_error


def test_a_step_module_that_fails_to_import_is_one_line_and_a_junit_error(features, capsys):
    (features / "steps" / "zz_steps.py").write_text("import a_module_that_is_not_there\n")
    code, err, junit_error = run(features, capsys)
    assert (code, err) == (
        2,
        "failspec: cannot run: ModuleNotFoundError: No module named 'a_module_that_is_not_there'\n",
    )
    assert junit_error is not None and "a_module_that_is_not_there" in junit_error


def test_a_step_defined_twice_is_one_line_and_a_junit_error(features, capsys):
    (features / "steps" / "zz_steps.py").write_text(
        "from behave import given\n\n\n"
        '@given("the ledger holds these payments:")\ndef again(context):\n    pass\n'
    )
    code, err, junit_error = run(features, capsys)
    assert code == 2 and err.startswith("failspec: cannot run: AmbiguousStep: ")
    assert junit_error is not None and "AmbiguousStep" in junit_error
