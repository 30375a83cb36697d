"""Queries the application gets wrong, and what its connection does afterwards."""

from behave import given, when
from hamcrest import assert_that, is_not

import failspec.harness.gherkin_types  # noqa: F401  (registers the parameter types)
from failspec.harness.matchers import succeeds
from failspec.ledger import Ledger


@given("the application is connected to the ledger")
def step_connected(context):
    assert_that(context.app.session.connect(), succeeds())


@when("the application updates every payment with {mistake:Mistake}")
def step_update_with_mistake(context, mistake):
    context.outcome = context.app.session.run_alone(mistake.sql, _execute(mistake.sql))


@given("the application has tried to update every payment with {mistake:Mistake}")
def step_tried_mistake(context, mistake):
    step_update_with_mistake(context, mistake)
    assert_that(context.outcome, is_not(succeeds()))


@when(
    "the application sets its lock timeout to {seconds:Seconds} seconds, sending the value apart from the statement"
)
def step_set_with_parameter(context, seconds):
    value = f"{seconds:g}s"
    set_it = _execute("SET LOCAL lock_timeout = %(value)s", {"value": value})
    context.outcome = context.app.session.run_alone(f"set lock_timeout to {value}", set_it)


@when("the application reads the ledger on the same connection")
def step_read_same_connection(context):
    session = context.app.session
    context.outcome = session.run_alone("read the ledger", Ledger.payments)
    context.outcome.notes["backend_pid"] = session.current_backend_pid()


def _execute(sql, parameters=None):
    def run(conn):
        return conn.exec_driver_sql(sql, parameters).rowcount

    return run
