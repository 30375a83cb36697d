"""The network between the application and the server fails (tag @network)."""

from decimal import Decimal

import sqlalchemy as sa
from behave import given, when
from hamcrest import assert_that, equal_to

import failspec.harness.gherkin_types  # noqa: F401  (registers the parameter types)
from failspec.harness.faults.network import PacketLoss
from failspec.harness.scenario.application import skip_without
from failspec.ledger import Payment, port

#: Bytes of a reply that still get through before the connection is cut mid-result.
CUT_AFTER_BYTES = 1000


@given("the ledger also holds {count:d} small payments to dave")
def step_many_payments(context, count):
    payments = [Payment("dave", Decimal("1.00"), f"ref-{1000 + i}", "posted") for i in range(count)]
    context.audit.seed((), payments)
    context.audit.take_baseline()


@when("the network cuts every connection")
def step_reset_peer(context):
    context.network.proxy.reset_peer()


@given("the network will cut the connection in the middle of the next reply")
def step_cut_mid_reply(context):
    context.network.proxy.limit_data(CUT_AFTER_BYTES, "downstream")


@given(
    "the network will lose the reply to the next commit, and recover while the ledger waits to retry"
)
def step_lose_commit_reply(context):
    step_lose_commit_reply_for_good(context)
    context.app.during_next_wait = context.network.recover


@given("the network will lose the reply to the next commit")
def step_lose_commit_reply_for_good(context):
    if skip_without(context, port.BEFORE_COMMIT):
        return
    # The commit goes out; the first byte of its reply cuts the connection.
    proxy = context.network.proxy
    context.app.before_next_commit(lambda: proxy.limit_data(0, "downstream"))


@given("the network will recover while the ledger waits to retry")
def step_recover_on_wait(context):
    context.app.during_next_wait = context.network.recover


@when("the network recovers")
def step_recover(context):
    context.network.recover()


@given("the network delays every reply by {seconds:Seconds} seconds")
def step_latency(context, seconds):
    context.network.proxy.latency(seconds * 1000, direction="downstream")


@when("the network to the database goes silent")
def step_silent(context):
    reason = PacketLoss.unavailable()
    if reason is not None:
        context.scenario.skip(f"a silent network needs real packet loss: {reason}")
        return
    context.network.go_silent()


@when("the network to the database accepts connections but never answers")
def step_proxy_silent(context):
    context.network.accept_but_never_answer()


@given(
    "the application gives up on a request the network has not acknowledged after {seconds:Seconds} seconds"
)
def step_tcp_user_timeout(context, seconds):
    context.app.connect_args["tcp_user_timeout"] = round(seconds * 1000)


@given("the server gives up any statement of the application after {seconds:Seconds} seconds")
def step_statement_timeout(context, seconds):
    context.app.server_settings["statement_timeout"] = f"{round(seconds * 1000)}ms"


@when("the application runs a report the server needs {seconds:Seconds} seconds for")
def step_report(context, seconds):
    context.outcome = context.app.run_report(seconds)


@when("{name:Session} starts an export of {megabytes:d} MB of ledger data")
def step_export(context, name, megabytes):
    session = context.sessions[name]

    def export():
        rows = session.conn.execute(
            sa.text("SELECT repeat('x', 1000) FROM generate_series(1, :n)"), {"n": megabytes * 1000}
        ).all()
        return len(rows)

    state = context.sessions.perform(
        name,
        f"export {megabytes} MB",
        export,
        busy=lambda: context.sessions.running_statement(name),
    )
    assert_that(state, equal_to("busy"), f"{name} running its export")


@when("the network stalls for {seconds:Seconds} seconds")
def step_stall(context, seconds):
    context.network.stall(seconds * context.settings.timeout_scale)
