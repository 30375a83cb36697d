"""Connecting, the application's pool, and connections the server ends."""

from behave import given, use_fixture, when
from hamcrest import assert_that

import failspec.harness.gherkin_types  # noqa: F401  (registers the parameter types)
from failspec.harness.faults import network
from failspec.harness.matchers import fails_with
from failspec.harness.scenario.application import OtherClients
from failspec.harness.scenario.fixtures import held


@when("the application connects with {problem:ConnectionProblem}")
def step_connect_with(context, problem):
    context.outcome = context.app.connect_once(**problem)


@when("the application connects to an address where nothing listens")
def step_connect_refused(context):
    _connect_to(context, network.refusing())


@when("the application connects to an address that accepts but never answers")
def step_connect_silent(context):
    _connect_to(context, network.silent())


def _connect_to(context, address):
    use_fixture(held, context, address)
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


@given("the server has ended that connection")
@when("the server ends that connection")
def step_server_ends(context):
    context.app.end_connection()


@when("the application reads the ledger through the pool")
def step_read_through_pool(context):
    context.outcome = context.app.read_through_pool()


@given(
    "the server ends a transaction of the application left idle for more than {seconds:Seconds} seconds"
)
def step_idle_timeout(context, seconds):
    timeout = f"{round(seconds * context.settings.timeout_scale * 1000)}ms"
    context.app.server_settings["idle_in_transaction_session_timeout"] = timeout


@given("the application has left the transaction idle until the server ended its session")
@when("the application leaves the transaction idle until the server ends its session")
def step_leave_idle(context):
    context.app.leave_transaction_until_ended(timeout=2 * context.settings.timeout_scale)


@given("other clients hold every connection the server has left")
def step_fill_slots(context):
    others = OtherClients(context.workspace)
    use_fixture(held, context, others, others.release)
    context.other_clients = others
    others.take_every_slot()
    assert_that(others.refusal, fails_with("too_many_connections"))


@when("the application opens one more connection")
def step_one_more(context):
    context.outcome = context.app.connect_once()


@given("the application has been refused one more connection")
def step_refused_one_more(context):
    assert_that(context.app.connect_once(), fails_with("too_many_connections"))


@given("the other clients have let their connections go")
def step_release_slots(context):
    context.other_clients.release()


@when("an administrator ends {name:Session}'s session")
def step_admin_ends(context, name):
    pid = context.sessions[name].pid
    assert context.workspace.terminate(pid), f"{name}'s server process {pid} was not there"
