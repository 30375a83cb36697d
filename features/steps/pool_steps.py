"""The application's connection pool: its limits, and connections it must give back."""

import threading
import time

import sqlalchemy as sa
from behave import given, then, when
from hamcrest import assert_that, equal_to, is_not, less_than_or_equal_to, none

import failspec.harness.gherkin_types  # noqa: F401  (registers the parameter types)
from failspec.harness.matchers import succeeds
from failspec.harness.waiting import until
from failspec.ledger import Ledger


@given(
    "the application uses a pool of {size:d} connections and {overflow:d} more when busy, waiting at most {seconds:Seconds} seconds for one"
)
def step_pool_limits(context, size, overflow, seconds):
    context.app.use_pool(pool_size=size, max_overflow=overflow, pool_timeout=seconds)


@given("the application's pool replaces connections older than {seconds:Seconds} seconds")
def step_pool_recycle(context, seconds):
    context.app.use_pool(pool_size=1, pool_recycle=seconds)
    context.recycle_age = seconds


@given("the application holds {count:d} connections from its pool")
def step_hold(context, count):
    context.app.hold_connections(count)


@when("the application checks out one more connection")
def step_check_out(context):
    context.outcome = context.app.check_out_one()


@when("the application returns one of the connections it holds")
def step_return_one(context):
    context.app.return_one()


@then("the pool would give up on it after {seconds:Seconds} seconds")
def step_pool_timeout_is(context, seconds):
    # QueuePool.timeout(): the pool_timeout it was built with (SQLAlchemy's default is 30 s).
    assert_that(context.app.engine.pool.timeout(), equal_to(seconds))


@when("that connection has been idle for {seconds:Seconds} seconds")
def step_idle_for(context, seconds):
    since = context.app.idle_since
    until(lambda: time.monotonic() - since >= seconds, timeout=seconds + 5, what="idling")


@when("that connection has become older than the pool allows")
def step_grown_old(context):
    since = time.monotonic()  # the idle connection was opened before this step
    until(lambda: time.monotonic() - since > context.recycle_age, timeout=5, what="aging")


@when(
    "{name:Session} runs a report through the application's pool that the server needs {seconds:Seconds} seconds for"
)
def step_slow_report(context, name, seconds):
    pool = context.app.engine.pool
    context.pool_events = _pool_events(context.app.engine)

    def report():
        with context.app.engine.connect() as conn:
            return conn.execute(sa.text("SELECT pg_sleep(:s)"), {"s": seconds}).scalar()

    state = context.sessions.perform(
        name, f"run a {seconds} s report", report, busy=lambda: pool.checkedout() > 0
    )
    assert_that(state, equal_to("busy"), f"{name} holding a pooled connection")


@when("{name:Session} reads the ledger through the application's pool")
def step_session_read_pool(context, name):
    def read():
        with context.app.engine.connect() as conn:
            return Ledger.payments(conn)

    sessions = context.sessions
    sessions.perform(
        name, "read the ledger through the pool", read, busy=lambda: sessions.waits_for_pool(name)
    )


@then("{name:Session} is waiting for a connection from the pool")
def step_waits_for_pool(context, name):
    assert_that(context.sessions.waits_for_pool(name), equal_to(True), f"{name} waits for the pool")


def _pool_events(engine):
    """(event, when, session) for each checkout and checkin of the pool, from now on."""
    events = []

    def record(kind):
        def listener(*_):
            session = threading.current_thread().name.split("-")[-1].split("_")[0]
            events.append((kind, time.monotonic(), session))

        return listener

    sa.event.listen(engine.pool, "checkout", record("checkout"))
    sa.event.listen(engine.pool, "checkin", record("checkin"))
    return events


@then("{name:Session} got its connection only once {other:Session} had given its back")
def step_waited_for_return(context, name, other):
    asked = context.sessions[name].current.started
    context.sessions.finish(name)
    context.sessions.finish(other)
    events = context.pool_events
    given_back = next(t for kind, t, who in events if kind == "checkin" and who == other)
    got = next(t for kind, t, who in events if kind == "checkout" and who == name)
    assert_that(asked, less_than_or_equal_to(given_back), f"{name} asked before {other} gave back")
    assert_that(given_back, less_than_or_equal_to(got), f"{name} got it after {other} gave back")


@when("the application checks out a connection, begins a transaction on it and forgets it")
def step_leak(context):
    context.app.leak_a_transaction()
    context.guards.leave(context.app.clean_up_forgotten)  # the leak guard must see it first


@then("it was served by the pool's idle connection")
def step_idle_reused(context):
    assert_that(context.outcome, succeeds())
    assert_that(context.outcome.notes["backend_pid"], equal_to(context.app.idle_pid))


@then("it was served by a new connection instead of the pool's idle one")
def step_idle_replaced(context):
    assert_that(context.outcome, succeeds())
    assert_that(context.app.idle_pid, is_not(none()))
    assert_that(context.outcome.notes["backend_pid"], is_not(equal_to(context.app.idle_pid)))
