"""Faults that heal themselves: a fault nothing else bounds (a paused server, packet loss,
a proxy that carries nothing) is put right by itself after a while, so a regression fails
its scenario instead of hanging the run; the scenario (or its cleanup) may put it right
first."""

from __future__ import annotations

import threading
from collections.abc import Callable

from failspec.harness import waiting

#: How long a fault that nothing else bounds lasts at most (s).
HEAL_AFTER = 10.0


class Healer:
    """One fault's deadline. :meth:`arm` has ``heal`` run once, on a thread of its own,
    ``seconds`` from now, unless :meth:`cancel` calls it off first (a fault armed again
    gets a new deadline). ``lock`` is the fault's to hold while it heals, since the
    healer's thread and the scenario may both heal it at once."""

    def __init__(self) -> None:
        self._timer: threading.Timer | None = None
        self.lock = threading.Lock()

    def arm(self, heal: Callable[[], object], seconds: float = HEAL_AFTER) -> None:
        self.cancel()
        self._timer = waiting.after(seconds, heal)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
