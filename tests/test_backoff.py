"""The checks on recorded waits: grouping by failure, limits, averages, and the exact
chance that a right policy fails the average test."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest

from failspec.harness.scenario import backoff

LIMITS = {1: 0.02, 2: 0.04, 3: 0.08}


def test_waits_are_grouped_by_the_failure_they_followed():
    groups = backoff.by_failure([[0.01, 0.03], [0.02], [0.0, 0.01, 0.05]])

    assert groups == {1: [0.01, 0.02, 0.0], 2: [0.03, 0.01], 3: [0.05]}


def test_waits_outside_zero_and_their_limit_are_named():
    groups = {1: [0.0, 0.02, 0.021], 2: [-0.001], 4: [0.1]}

    found = backoff.beyond_limits(groups, LIMITS)

    assert found == [
        "0.0210 s after failure 1 (limit 0.02 s)",
        "-0.0010 s after failure 2 (limit 0.04 s)",
        "1 wait(s) after failure 4, which has no limit",
    ]


def test_means_are_fractions_of_each_failure_limit():
    means = backoff.mean_fractions({1: [0.01, 0.03], 3: [0.08]}, LIMITS)

    assert means == pytest.approx({1: 1.0, 3: 1.0})


@pytest.mark.parametrize(
    ("n", "x", "expected"), [(1, "0.3", "0.3"), (2, "1", "0.5"), (3, "1", "1/6")]
)
def test_the_irwin_hall_distribution_is_exact(n, x, expected):
    assert backoff.irwin_hall_cdf(Fraction(x), n) == Fraction(expected)


def test_the_chance_that_40_right_draws_average_outside_03_07_is_below_1e_5():
    chance = backoff.false_alarm(40, 0.3, 0.7)

    assert 7.0e-6 < chance < 8.0e-6  # 3.7e-6 on each side; a normal approximation says 1.2e-5


def test_a_narrow_band_is_a_likely_false_alarm():
    assert backoff.false_alarm(40, 0.45, 0.55) > 0.2


def test_full_jitter_draws_pass_and_fixed_or_halved_draws_do_not():
    rng = random.Random(7)
    right = {n: [rng.uniform(0, limit) for _ in range(40)] for n, limit in LIMITS.items()}
    always_the_limit = {n: [limit] * 40 for n, limit in LIMITS.items()}
    half_the_base = {
        n: [rng.uniform(0, limit / 2) for _ in range(40)] for n, limit in LIMITS.items()
    }

    def within(groups):
        return all(0.3 <= m <= 0.7 for m in backoff.mean_fractions(groups, LIMITS).values())

    assert within(right)
    assert not within(always_the_limit)
    assert not within(half_the_base)
