"""What the waits an application recorded before its retries say about its backoff.

A scenario states the limit of the wait after each failure (capped exponential backoff)
and that each wait is a uniform draw below it (*full jitter*: "sleep = random_between(0,
min(cap, base * 2 ** attempt))", AWS Architecture Blog, "Exponential Backoff And
Jitter"). These helpers compare the waits actually recorded with those statements; they
never read the policy under test.

The average test: a uniform draw below a limit L has mean L/2 and standard deviation
L/sqrt(12). The mean of n such draws, as a fraction of L, follows the Irwin-Hall
distribution divided by n; :func:`false_alarm` computes exactly how often a right policy
would stray outside a band around 1/2, so a scenario can show its band is wide enough
for *any* seed of the random generator, not only the one it runs with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction
from math import comb, factorial


def by_failure(waits_per_operation: Sequence[Sequence[float]]) -> dict[int, list[float]]:
    """The waits (s) grouped by the failure they followed: ``1`` holds each operation's
    wait after its first failure, ``2`` after its second, and so on."""
    groups: dict[int, list[float]] = {}
    for waits in waits_per_operation:
        for number, wait in enumerate(waits, start=1):
            groups.setdefault(number, []).append(wait)
    return groups


def beyond_limits(groups: Mapping[int, Sequence[float]], limits: Mapping[int, float]) -> list[str]:
    """Each wait below zero or above the limit (s) for the failure it followed, described;
    waits after a failure that has no limit are described too."""
    found = []
    for number, waits in sorted(groups.items()):
        limit = limits.get(number)
        if limit is None:
            found.append(f"{len(waits)} wait(s) after failure {number}, which has no limit")
            continue
        found += [
            f"{wait:.4f} s after failure {number} (limit {limit} s)"
            for wait in waits
            if not 0 <= wait <= limit
        ]
    return found


def mean_fractions(
    groups: Mapping[int, Sequence[float]], limits: Mapping[int, float]
) -> dict[int, float]:
    """For each failure, the mean of the waits after it as a fraction of its limit."""
    return {n: sum(waits) / len(waits) / limits[n] for n, waits in sorted(groups.items())}


def irwin_hall_cdf(x: Fraction, n: int) -> Fraction:
    """P(U1 + … + Un <= x) for independent uniform draws on [0, 1], exactly."""
    if x <= 0:
        return Fraction(0)
    if x >= n:
        return Fraction(1)
    total = sum((-1) ** k * comb(n, k) * (x - k) ** n for k in range(int(x) + 1))
    return total / factorial(n)


def false_alarm(draws: int, low: float, high: float) -> float:
    """The probability that the mean of ``draws`` uniform draws below a limit, as a
    fraction of it, falls outside ``[low, high]``: how often a right policy would fail
    the average test for one failure number."""
    below = irwin_hall_cdf(Fraction(low).limit_denominator(1000) * draws, draws)
    above = 1 - irwin_hall_cdf(Fraction(high).limit_denominator(1000) * draws, draws)
    return float(below + above)
