"""What the ledger's retries meet: the server down or shutting down, a lock another
session holds, and limits the application sets itself."""

import sqlalchemy as sa
from behave import given, use_fixture
from hamcrest import assert_that

import failspec.harness.gherkin_types  # noqa: F401  (registers the parameter types)
from failspec.harness.faults import server as server_faults
from failspec.harness.matchers import succeeds
from failspec.harness.scenario.application import skip_without
from failspec.harness.scenario.fixtures import held
from failspec.ledger import Ledger, port


@given(
    "the server will crash just before the next operation commits, and stay down until the ledger has waited twice"
)
def step_crash_until_second_wait(context):
    if skip_without(context, port.BEFORE_COMMIT):
        return
    server = context.server_faults
    context.app.before_next_commit(server.crash)

    def back_up():  # attempt 2 met the server down: it refuses connections until now
        server.expect_refusal("connection_refused")
        server.restart()

    server_faults.during_wait(context.app, 2, back_up)


@given("another client is connected to the server")
def step_other_client(context):
    engine = context.workspace.engine(label="another client", poolclass=sa.pool.NullPool)
    #: The connection of a client other than the application, held until it leaves.
    context.other_client = use_fixture(held, context, engine.connect(), what="another client")


@given("the server is shutting down, waiting for its clients to leave")
def step_smart_shutdown(context):
    context.server_faults.shut_down_smart()


@given(
    "the other client will leave while the ledger waits to retry, and the server will stop and start again"
)
def step_leave_and_restart(context):
    server = context.server_faults

    def leave_and_restart():  # attempt 1 met the shutdown: new connections refused until now
        server.expect_refusal("cannot_connect_now")
        context.other_client.close()
        server.restart()  # a fast shutdown ends the harness's own idle connections first

    context.app.during_next_wait = leave_and_restart


@given(
    "only the first attempt to record an operation is slow, taking the server {seconds:Seconds} seconds"
)
def step_slow_first_attempt(context, seconds):
    server_faults.arm_slow_inserts(
        context.workspace, seconds * context.settings.timeout_scale, times=1
    )


@given("the server gives up any lock wait of the application after {seconds:Seconds} seconds")
def step_lock_timeout(context, seconds):
    context.app.server_settings["lock_timeout"] = f"{round(seconds * 1000)}ms"


@given("{name:Session} has locked the account of {account:Account}")
def step_has_locked(context, name, account):
    session = context.sessions[name]
    context.sessions.perform(
        name, f"lock {account}", lambda: Ledger.lock_account(session.conn, account)
    )
    assert_that(context.sessions.finish(name), succeeds())
