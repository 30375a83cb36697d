"""The retry policy, without a server: which failures are retried, how long it waits."""

from __future__ import annotations

import random

import psycopg2
import pytest
import sqlalchemy.exc

from failspec.ledger import NotReplicated
from failspec.ledger.retry import RetryPolicy, is_transient
from tests.test_outcomes import wrapped


def lost() -> sqlalchemy.exc.DBAPIError:
    error = wrapped("server closed the connection unexpectedly")
    error.connection_invalidated = True
    return error


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (wrapped("could not serialize access", "40001"), True),
        (wrapped("deadlock detected", "40P01"), True),
        (lost(), True),
        (wrapped("violates check constraint", "23514"), False),
        (wrapped("duplicate key", "23505"), False),
        (wrapped("syntax error", "42601"), False),
        (ValueError("a bug"), False),
    ],
)
def test_only_failures_that_may_not_repeat_are_transient(error, transient):
    assert is_transient(error) is transient


def policy(**kwargs) -> tuple[RetryPolicy, list[float]]:
    waits: list[float] = []
    return RetryPolicy(sleep=waits.append, rng=random.Random(1), **kwargs), waits


def failing(errors):
    calls = []

    def operation(attempt):
        calls.append(attempt)
        if errors:
            raise errors.pop(0)
        return "done"

    return operation, calls


def test_transient_failures_are_retried_until_success():
    retry, waits = policy(attempts=3)
    operation, calls = failing([wrapped("x", "40001"), wrapped("x", "40P01")])
    assert retry.run(operation) == "done"
    assert calls == [1, 2, 3]
    assert len(waits) == 2


def test_a_non_transient_failure_is_raised_at_once():
    retry, waits = policy(attempts=5)
    error = wrapped("violates check constraint", "23514")
    operation, calls = failing([error])
    with pytest.raises(sqlalchemy.exc.DBAPIError) as caught:
        retry.run(operation)
    assert caught.value is error
    assert calls == [1] and waits == []
    assert caught.value.failspec_attempts == 1


def test_when_attempts_run_out_the_last_failure_is_raised_with_a_note():
    retry, waits = policy(attempts=3)
    errors = [wrapped(f"try {n}", "40001") for n in range(3)]
    last = errors[-1]
    operation, calls = failing(errors)
    assert calls == []
    with pytest.raises(sqlalchemy.exc.DBAPIError) as caught:
        retry.run(operation)
    assert caught.value is last
    assert caught.value.failspec_attempts == 3 and calls == [1, 2, 3]
    assert "gave up after 3 attempts" in "".join(getattr(last, "__notes__", []))
    assert len(waits) == 2


def test_waits_are_full_jitter_below_a_doubling_capped_limit():
    retry, _ = policy(base_delay=0.1, max_delay=0.3)
    assert [retry.delay_limit(n) for n in (1, 2, 3, 4)] == [0.1, 0.2, 0.3, 0.3]
    draws = [retry.delay(2) for _ in range(200)]
    assert all(0 <= d <= 0.2 for d in draws)
    assert len(set(draws)) > 150  # random, not a fixed step


def test_a_psycopg2_error_without_sqlalchemy_is_judged_too():
    class Serialization(psycopg2.Error):
        pgcode = "40001"

    assert is_transient(Serialization())


def not_replicated_thrown_away() -> NotReplicated:
    """What a layer on the driver alone raises when an administrator ends the session while
    COMMIT waits for the synchronous standby: in doubt, and its connection thrown away."""
    error = NotReplicated("committed locally, but might not have been replicated")
    error.connection_invalidated = True  # type: ignore[attr-defined]
    return error


def test_an_outcome_in_doubt_is_never_transient_even_with_its_connection_thrown_away():
    assert not is_transient(NotReplicated("committed locally, but might not have been replicated"))
    assert not is_transient(not_replicated_thrown_away())


def test_an_outcome_in_doubt_is_tried_once_and_reaches_the_caller():
    retry, waits = policy(attempts=3)
    error = not_replicated_thrown_away()
    operation, calls = failing([error, wrapped("x", "40001")])
    with pytest.raises(NotReplicated) as caught:
        retry.run(operation)
    assert caught.value is error and calls == [1] and waits == []
    assert caught.value.failspec_attempts == 1


def test_each_failure_is_judged_once_also_the_last():
    retry, _ = policy(attempts=3)
    judged: list[BaseException] = []
    retry.transient = lambda error: judged.append(error) or is_transient(error)
    errors = [wrapped(f"try {n}", "40001") for n in range(3)]
    operation, _ = failing(list(errors))
    with pytest.raises(sqlalchemy.exc.DBAPIError):
        retry.run(operation)
    assert judged == errors
