"""Connecting, the application's pool, and connections the server ends."""

from behave import given, when

import failspec.harness.gherkin_types  # noqa: F401  (registers the parameter types)
from failspec.harness import network

PROBLEMS = {
    "a wrong password": {"password": "not-the-password"},
    "a user that does not exist": {"user": "nobody_at_all"},
    "a database that does not exist": {"database": "no_such_ledger"},
}


@when("the application connects with {problem}")
def step_connect_with(context, problem):
    context.outcome = context.app.connect_once(**PROBLEMS[problem])


@when("the application connects to an address where nothing listens")
def step_connect_refused(context):
    _connect_to(context, network.refusing())


@when("the application connects to an address that accepts but never answers")
def step_connect_silent(context):
    _connect_to(context, network.silent())


def _connect_to(context, address):
    context.add_cleanup(address.close)
    context.outcome = context.app.connect_once(host=address.host, port=address.port)


@given("the application's connect timeout is {limit:d} seconds")
def step_connect_timeout(context, limit):
    context.app.connect_timeout = limit


@given("the application uses a pool that tests each connection before handing it out")
def step_pool_pre_ping(context):
    context.app.use_pool(pool_size=1, pool_pre_ping=True)


@given("the application uses a pool that hands out connections untested")
def step_pool_untested(context):
    context.app.use_pool(pool_size=1, pool_pre_ping=False)


@given("the pool holds one idle connection")
def step_idle_connection(context):
    context.app.idle_connection_in_pool()


@when("the server ends that connection")
def step_server_ends(context):
    context.app.end_connection()


@when("the application reads the ledger through the pool")
@when("the application reads the ledger through the pool again")
def step_read_through_pool(context):
    context.outcome = context.app.read_through_pool()
