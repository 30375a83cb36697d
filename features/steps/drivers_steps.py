"""Outcomes the specification states per driver where psycopg2 and psycopg differ; each
is recorded in the driver matrix (failspec.harness.driver_matrix)."""

from behave import then
from hamcrest import assert_that, equal_to

import failspec.harness.gherkin_types  # noqa: F401  (registers the parameter types)
from failspec.harness.driver_matrix import PerDriver, observed
from failspec.harness.matchers import fails_with


@then("{name:Session} fails with {expected:PerDriver}")
def step_session_fails_per_driver(context, name, expected):
    """Then T2 fails with connection_lost on psycopg2, admin_shutdown on psycopg"""
    outcome = context.sessions.finish(name)
    where = str(context.scenario.location)
    context.driver_matrix.record(context.scenario.name, expected, observed(outcome), where)
    assert_that(outcome, fails_with(expected.expected))


@then("it fails with {expected:PerDriver}")
def step_fails_per_driver(context, expected):
    """Then it fails with connection_lost on psycopg2, admin_shutdown on psycopg"""
    where = str(context.scenario.location)
    context.driver_matrix.record(context.scenario.name, expected, observed(context.outcome), where)
    assert_that(context.outcome, fails_with(expected.expected))


@then("on psycopg2 it succeeds; on psycopg it fails with {condition:Condition}")
def step_succeeds_on_psycopg2_only(context, condition):
    """Then on psycopg2 it succeeds; on psycopg it fails with syntax_error"""
    expected = PerDriver({"psycopg2": "succeeded", "psycopg": condition})
    seen = observed(context.outcome)
    context.driver_matrix.record(
        context.scenario.name, expected, seen, str(context.scenario.location)
    )
    assert_that(seen["condition"], equal_to(expected.expected), context.outcome.describe())
