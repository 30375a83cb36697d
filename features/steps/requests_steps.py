"""The application's request deadline: how long it waits for the database in one request."""

from behave import given, then
from hamcrest import assert_that, equal_to, has_length, is_not

import failspec.harness.gherkin_types  # noqa: F401  (registers the parameter types)
from failspec.harness.matchers import fails_with
from failspec.harness.scenario.application import skip_without
from failspec.ledger import port
from failspec.ledger.deadline import is_deadline_exceeded, outcome_unknown


@given(
    "the application gives up on any request the database has not answered within {seconds:Seconds} seconds"
)
@given(
    "the application gives up on any request the database has not answered within {seconds:Seconds} second"
)
def step_request_deadline(context, seconds):
    if skip_without(context, port.DEADLINE):
        return
    context.app.request_deadline = seconds


@given(
    "the network will take in the next commit without answering, and recover while the ledger waits to retry"
)
def step_commit_unanswered_then_recover(context):
    step_commit_unanswered(context)
    context.app.during_next_wait = context.network.recover


@given("the network will take in the next commit without answering")
def step_commit_unanswered(context):
    if skip_without(context, port.BEFORE_COMMIT):
        return
    # Silent from just before COMMIT is sent: held, neither delivered nor refused.
    context.app.before_next_commit(context.network.accept_but_never_answer)


@then("it fails with {condition:Condition}, saying the payment may or may not have been applied")
def step_fails_outcome_unknown(context, condition):
    assert_that(context.outcome, fails_with(condition))
    assert_that(outcome_unknown(context.outcome.error), equal_to(True), "outcome reported unknown")


@then("the connection that ran out of time was thrown away at once, never given back to the pool")
def step_timed_out_connection_discarded(context):
    log = context.app.pool_log
    ran_out = [n for n, (_, _, error) in enumerate(log) if is_deadline_exceeded(error)]
    seen = "; ".join(f"{what} #{id(c) % 10000}: {error!r}" for what, c, error in log)
    assert_that(ran_out, has_length(1), f"discarded as the deadline ran out (the pool: {seen})")
    conn = log[ran_out[0]][1]
    assert_that(conn.closed, is_not(equal_to(0)), "the connection's closed flag")
    later = [what for n, (what, c, _) in enumerate(log) if c is conn and n > ran_out[0]]
    assert_that(later, has_length(0), "what the pool did with it after discarding it")
