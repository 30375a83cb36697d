"""Waiting for a condition with a deadline: the suite's only way to wait.

Nothing in the suite sleeps to let another process "get there": it polls a condition
that says it got there, and gives up with a clear message at a deadline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A condition did not hold within its deadline."""


def until(
    condition: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.005
) -> T:
    """Return the first truthy value of ``condition()`` (so never None: a condition may
    return None for "not yet"); raise WaitTimeout past ``timeout`` (s)."""
    end = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= end:
            raise WaitTimeout(f"{what} did not happen within {timeout:.2f} s")
        time.sleep(interval)  # the poll interval, not a guess at how long something takes


def after(seconds: float, action: Callable[[], object]) -> threading.Timer:
    """Run ``action`` once, ``seconds`` from now, on a daemon thread (cancel to call off).

    For faults that heal themselves: a deadline on a fault, never a wait for a result.
    """
    timer = threading.Timer(seconds, action)
    timer.daemon = True
    timer.start()
    return timer
