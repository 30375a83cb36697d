"""The specification's typed parameters: a misspelt phrase is an undefined step at dry-run.

Each sentence below is run through ``behave --dry-run`` against the real step modules of
features/steps, once as the specification spells it and once misspelt: the first must be
defined, the second undefined (what scripts/check_steps.py then reports, before any server
starts). A phrase looked up in a table at run time would pass the dry-run and fail later.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from failspec.harness import gherkin_types

ROOT = Path(__file__).resolve().parent.parent

#: (as the specification spells it, misspelt)
SENTENCES = [
    (
        "When the application connects with a wrong password",
        "When the application connects with a wrong pasword",
    ),
    (
        "When the application attempts a payment of zero",
        "When the application attempts a payment of nothing",
    ),
    (
        "Given the next 2 attempts to record an operation fail with a lost connection",
        "Given the next 2 attempts to record an operation fail with a lost conection",
    ),
    (
        "Given every attempt to record an operation fails with serialization_failure",
        "Given every attempt to record an operation fails with serialisation_failure",
    ),
    (
        "When the application records a batch of 3 payments whose last one has a negative amount",
        "When the application records a batch of 3 payments whose thrid one has a negative amount",
    ),
    ("Then it fails with unique_violation", "Then it fails with unique_violaton"),
    (
        "Then the payment fails, its wait ended by the connect timeout",
        "Then the payment fails, its wait ended by the conect timeout",
    ),
    (
        "Then lost update (P4) is allowed at read committed: nothing prevents it",
        "Then lost update (P4) is allowed at read comitted: nothing prevents it",
    ),
    ("When the application updates every payment with a division by zero",
     "When the application updates every payment with a divison by zero"),
]  # fmt: skip


def undefined_steps(tmp_path: Path, sentences: list[str]) -> list[str]:
    """The sentences behave's dry-run finds no step for, run against features/steps."""
    (tmp_path / "steps").symlink_to(ROOT / "features" / "steps")
    lines = "\n".join(f"    {s}" for s in sentences)
    (tmp_path / "phrases.feature").write_text(f"Feature: phrases\n  Scenario: all\n{lines}\n")
    done = subprocess.run(
        [sys.executable, "-m", "behave", "--dry-run", "-f", "steps.usage", "--no-summary",
         "--no-junit", "-D", "backend=embedded", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "UNUSED" in done.stdout or "UNDEFINED" in done.stdout, done.stdout + done.stderr
    _, _, undefined = done.stdout.partition("UNDEFINED STEPS")
    return [s for s in sentences if f"{s}  " in undefined or undefined.rstrip().endswith(s)]


def test_a_misspelt_phrase_is_an_undefined_step_at_dry_run(tmp_path):
    right = [r for r, _ in SENTENCES]
    wrong = [w for _, w in SENTENCES]
    assert undefined_steps(tmp_path, right + wrong) == wrong


@pytest.mark.parametrize(
    "name", ["ConnectionProblem", "RuleBreach", "Position", "Phase", "Bound", "Anomaly"]
)
def test_the_phrases_of_a_choice_are_listed_for_the_catalogue(name):
    assert gherkin_types.CHOICES[name]
    catalogue = (ROOT / "docs" / "steps-catalog.md").read_text(encoding="utf-8")
    assert f"- `{name}`: " + ", ".join(f"`{p}`" for p in gherkin_types.CHOICES[name]) in catalogue
