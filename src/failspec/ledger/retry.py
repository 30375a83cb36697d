"""The ledger's retry policy for transient failures.

PostgreSQL's documentation asks applications to retry a transaction that failed with
``serialization_failure`` or ``deadlock_detected`` ("Serialization Failure Handling"):
the transaction did nothing and may succeed when run again. A connection lost before
the commit is transient in the same way. Everything else — a constraint violation, a
syntax error — fails the same way every time, and is never retried.

A retried operation must be idempotent: the ledger's operations carry a client
reference, so a retry after an unknown outcome finds the first attempt's work instead
of applying it twice. A request that ran out of its deadline (``deadline_exceeded``) is
retried too: its connection was closed, so its transaction committed only if its COMMIT
had been sent, and the error then says the outcome is unknown; the retry, with a deadline
of its own, finds the work by its reference instead of applying it again.

An outcome in doubt is never transient, whatever else the error says: ``NotReplicated``
(``transaction_resolution_unknown``: COMMIT returned on the primary, but its synchronous
standby never confirmed it) — also when the layer threw its connection away and says so
(``connection_invalidated``, as it must after an administrator ended the session while
COMMIT waited for the standby). A retry on that primary would find the payment by its
reference and report it applied, which is the very claim in doubt. A deadline-exceeded
COMMIT (``outcome_unknown``) is different and stays transient: its connection is closed, so
the server has either committed the transaction or rolled it back, for good, and the
retry's lookup by reference tells which.

Delays grow exponentially with *full jitter* (a uniform draw between 0 and the capped
exponential), so clients that failed together do not retry together.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import sqlalchemy.exc

from failspec import drivers
from failspec.conditions import condition_of, note

T = TypeVar("T")

#: Failures after which the same transaction, run again, may succeed.
TRANSIENT_CONDITIONS = frozenset(
    {
        "serialization_failure",
        "deadlock_detected",
        "connection_lost",
        "admin_shutdown",
        "connection_refused",  # the server is restarting
        "cannot_connect_now",
    }
)

#: The request deadline ran out (failspec.ledger.deadline), also while connecting, where
#: the driver reports no lost connection: its connection is closed, nothing is left open.
TRANSIENT_CONDITIONS |= {"deadline_exceeded"}


#: Outcomes in doubt: never retried, whatever the error's other attributes say (see the
#: module's docstring).
IN_DOUBT_CONDITIONS = frozenset({"transaction_resolution_unknown"})


def is_transient(error: BaseException) -> bool:
    """Whether running the same transaction again may succeed: False for an outcome in
    doubt (:data:`IN_DOUBT_CONDITIONS`, e.g. ``NotReplicated``) even with
    ``connection_invalidated`` set; True for any other error after which the connection
    was thrown away, and for :data:`TRANSIENT_CONDITIONS`."""
    if condition_of(error) in IN_DOUBT_CONDITIONS:
        return False
    if getattr(error, "connection_invalidated", False):
        return True
    if isinstance(error, (sqlalchemy.exc.DBAPIError, *drivers.driver_errors())):
        return condition_of(error) in TRANSIENT_CONDITIONS
    return False


@dataclass
class RetryPolicy:
    """Bounded attempts with capped exponential backoff and full jitter."""

    attempts: int = 3
    base_delay: float = 0.02
    max_delay: float = 0.5
    #: The backoff wait; injected so tests can see the delays without waiting them out.
    sleep: Callable[[float], None] = time.sleep  # backoff with jitter, not synchronisation
    rng: random.Random = field(default_factory=random.Random)
    transient: Callable[[BaseException], bool] = is_transient

    def delay_limit(self, failed_attempts: int) -> float:
        """The longest pause after the ``failed_attempts``-th failure: doubling, capped."""
        return min(self.max_delay, self.base_delay * 2 ** (failed_attempts - 1))

    def delay(self, failed_attempts: int) -> float:
        """The pause after the ``failed_attempts``-th failure: a uniform draw below the limit."""
        return self.rng.uniform(0, self.delay_limit(failed_attempts))

    def run(self, operation: Callable[[int], T]) -> T:
        """Call ``operation(attempt)`` until it succeeds, a failure is not transient, or
        the attempts run out; then the caller gets the last failure itself, with a
        note saying how many attempts were made."""
        for attempt in range(1, self.attempts + 1):
            try:
                return operation(attempt)
            except Exception as error:
                transient = self.transient(error)  # judged once per failure
                if not transient or attempt == self.attempts:
                    if transient:
                        note(error, f"gave up after {attempt} attempts (all transient failures)")
                    error.failspec_attempts = attempt  # type: ignore[attr-defined]
                    raise
                self.sleep(self.delay(attempt))  # backoff with jitter between attempts
        raise AssertionError("unreachable: the last attempt returns or raises")
