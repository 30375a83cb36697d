"""The feature files themselves: what CI and readers rely on."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from behave.parser import parse_file

FEATURES = sorted((Path(__file__).resolve().parent.parent / "features").glob("*.feature"))


def scenarios(feature):
    for scenario in feature.walk_scenarios():
        if hasattr(scenario, "scenarios"):  # an outline: each example row is a scenario
            yield from scenario.scenarios
        else:
            yield scenario


@pytest.mark.parametrize("path", FEATURES, ids=lambda p: p.name)
def test_junit_testcase_names_are_unique_within_a_feature(path):
    # JUnit names a testcase by the scenario's name alone (not its Rule): equal names collide.
    names = Counter(s.name for s in scenarios(parse_file(str(path))))
    assert [name for name, count in names.items() if count > 1] == []


@pytest.mark.parametrize("path", FEATURES, ids=lambda p: p.name)
def test_no_work_in_progress_reaches_main(path):
    feature = parse_file(str(path))
    tags = set(feature.tags) | {t for s in scenarios(feature) for t in s.effective_tags}
    assert "wip" not in tags


def test_feature_files_are_named_area_dot_topic():
    assert FEATURES
    for path in FEATURES:
        assert len(path.name.split(".")) == 3, path.name


def test_the_specification_has_at_least_25_scenarios():
    assert sum(len(list(scenarios(parse_file(str(p))))) for p in FEATURES) >= 25
