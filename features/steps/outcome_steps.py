"""Then-steps on the captured outcome of the last action (``context.outcome``)."""

from behave import then
from hamcrest import (
    assert_that,
    contains_string,
    equal_to,
    greater_than_or_equal_to,
    has_item,
    is_not,
    less_than_or_equal_to,
)

import failspec.harness.gherkin_types  # noqa: F401  (registers the parameter types)
from failspec.harness.matchers import (
    fails_with,
    message_mentions,
    names_violated,
    reports_connection_invalidated,
    succeeds,
)


@then("it fails with {condition:Condition}")
def step_fails_with(context, condition):
    assert_that(context.outcome, fails_with(condition))


@then("it fails with {condition:Condition} naming {rule}")
def step_fails_naming(context, condition, rule):
    assert_that(context.outcome, fails_with(condition))
    assert_that(context.outcome, names_violated(rule))
    assert_that(context.outcome, message_mentions(rule))


@then("it succeeds")
def step_succeeds(context):
    assert_that(context.outcome, succeeds())


@then('the error message mentions "{text}"')
def step_message_mentions(context, text):
    assert_that(context.outcome, message_mentions(text))


@then('the error notes "{text}"')
def step_error_notes(context, text):
    notes = getattr(context.outcome.error, "__notes__", [])
    assert_that(notes, has_item(contains_string(text)), "the notes added to the error")


@then("it fails because the connection was lost")
def step_connection_lost(context):
    assert_that(context.outcome, reports_connection_invalidated())


@then("it fails within {limit:Seconds} second")
@then("it fails within {limit:Seconds} seconds")
def step_fails_within(context, limit):
    assert_that(context.outcome, is_not(succeeds()))
    assert_that(context.outcome.elapsed, less_than_or_equal_to(context.settings.seconds(limit)))


@then("it took at least {limit:Seconds} seconds")
def step_took_at_least(context, limit):
    assert_that(context.outcome.elapsed, greater_than_or_equal_to(limit))


@then("it reads {count:d} payments")
def step_reads(context, count):
    assert_that(context.outcome, succeeds())
    assert_that(len(context.outcome.rows), equal_to(count))


@then("it was served by the same server connection")
def step_same_connection(context):
    session = context.app.sessions[context.app.NAME]
    assert_that(context.outcome.notes["backend_pid"], equal_to(session.backend_pid))


@then("it was served by a new server connection")
def step_new_connection(context):
    assert_that(context.outcome, succeeds())
    assert_that(context.outcome.notes["backend_pid"], is_not(equal_to(context.app.ended_pid)))
