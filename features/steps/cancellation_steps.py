"""Cancelling a request while it runs: by the application, by an administrator, or by a
client that goes away without a word (its process killed).

``context.cancelled`` keeps, for each session whose request was cancelled, the server
process it ran on then; ``context.worker`` is the worker process of the last scenario
that has one, ``context.worker_settings`` the server settings its connection asks for.
"""

from behave import given, then, use_fixture, when
from hamcrest import assert_that, equal_to, greater_than_or_equal_to, less_than_or_equal_to

import failspec.harness.gherkin_types  # noqa: F401  (registers the parameter types)
from failspec import drivers
from failspec.harness.concurrency.cancellation import (
    Worker,
    cancel_as_administrator,
    has_setting,
    is_sleeping,
    run_report,
    work_of,
)
from failspec.harness.scenario.fixtures import held
from failspec.ledger import Payment, RetryPolicy

#: The server setting (PostgreSQL 14 and later) that has it check a running statement's
#: client ("Connections and Authentication").
CHECK_INTERVAL = "client_connection_check_interval"
#: How long after its report ends a server that did not check its client may take to
#: notice it is gone and end the session (s, scaled): it notices when it sends the result.
NOTICES_AFTER_REPORT = 1.0


def _start(context, name, text, fn):
    pid = lambda: context.sessions[name].pid  # noqa: E731  (known once it has connected)
    busy = lambda: is_sleeping(context.workspace.run.admin, pid())  # noqa: E731
    state = context.sessions.perform(name, text, fn, busy=busy)
    assert_that(state, equal_to("busy"), f"{name} under way on the server")


def _work(context, name):
    """What the server shows the session's process doing (None: no such process)."""
    return work_of(context.workspace.run.admin, context.sessions[name].pid)[0]


def _cancelled(context, name):
    context.cancelled = {**getattr(context, "cancelled", {}), name: context.sessions[name].pid}


# -- a request under way ---------------------------------------------------------------


@when("{name:Session} starts a report the server needs {seconds:Seconds} seconds for")
def step_start_report(context, name, seconds):
    session = context.sessions[name]
    _start(context, name, f"run a {seconds} s report", lambda: run_report(session.conn, seconds))


@when(
    "{name:Session} starts paying {amount:Money} to {account:Account} with reference {reference:Reference}"
)
def step_start_paying(context, name, amount, account, reference):
    ledger = context.app.ledger_for(
        context.sessions[name].engine, RetryPolicy(sleep=lambda _: None)
    )
    payment = Payment(account, amount, reference)
    pay = context.workspace.acknowledging(f"pay {payment}", lambda: ledger.pay(payment))
    _start(context, name, f"pay {payment}", pay)


# -- the cancel, from either side ------------------------------------------------------


@when("the application cancels {name:Session}'s report")
@when("the application cancels {name:Session}'s payment")
@when("the application cancels {name:Session}'s wait for the account")
def step_application_cancels(context, name):
    _cancelled(context, name)
    context.sessions[name].cancel()


@when("an administrator cancels {name:Session}'s report")
@when("an administrator cancels {name:Session}'s payment")
@when("an administrator cancels {name:Session}'s wait for the account")
def step_administrator_cancels(context, name):
    _cancelled(context, name)
    pid = context.sessions[name].pid
    sent = cancel_as_administrator(context.workspace.run.admin, pid)
    assert_that(sent, equal_to(True), f"pg_cancel_backend({pid}) found {name}'s server process")


# -- what the server does after it -----------------------------------------------------


@then("the server is no longer running {name:Session}'s report")
@then("the server is no longer running {name:Session}'s payment")
def step_not_running(context, name):
    work = _work(context, name)
    shown = work.describe() if work else f"{name}'s server process has ended"
    assert_that(work is not None and work.running, equal_to(False), shown)


@then("{name:Session} no longer waits for any lock")
def step_waits_for_nothing(context, name):
    work = _work(context, name)
    assert_that(work and work.locks_awaited, equal_to(0), work and work.describe())
    assert_that(context.sessions.blockers(name), equal_to([]), f"{name} waits for")


@then("{name:Session} is still connected to the same server process")
def step_same_process(context, name):
    connection = context.sessions[name].dbapi_connection
    is_open = drivers.is_open(connection)
    seen = {"open": is_open, "server process": drivers.backend_pid(connection) if is_open else None}
    expected = {"open": True, "server process": context.cancelled[name]}
    assert_that(seen, equal_to(expected), f"{name}'s connection")
    assert_that(_work(context, name) is not None, equal_to(True), "the server has that process")


# -- a client that goes away without cancelling ----------------------------------------


@given(
    "the server checks every {seconds:Seconds} seconds that the client of a running statement is still there"
)
def step_check_interval(context, seconds):
    if not has_setting(context.workspace.run.admin, CHECK_INTERVAL):
        context.scenario.skip(
            f"PostgreSQL {context.server.version} has no {CHECK_INTERVAL} (14 and later)"
        )
        return
    context.worker_settings = {
        CHECK_INTERVAL: f"{round(context.settings.seconds(seconds) * 1000)}ms"
    }


@when("a worker of the application starts a report the server needs {seconds:Seconds} seconds for")
@when("a worker of the application starts a report the server needs {seconds:Seconds} second for")
def step_worker_report(context, seconds):
    worker = Worker(
        context.workspace, getattr(context, "worker_settings", {}), context.sessions.timeout
    )
    context.worker = use_fixture(held, context, worker)
    context.worker.start_report(seconds)


@when("the worker's process is killed")
def step_kill_worker(context):
    context.worker.kill()


@then(
    "the server goes on with the report to its end, {seconds:Seconds} second after it began, and only then ends the worker's session"
)
def step_runs_to_its_end(context, seconds):
    worker = context.worker
    _, ended = worker.server_process_end(
        timeout=seconds + context.settings.seconds(NOTICES_AFTER_REPORT)
    )
    ran = (ended - worker.report.query_start).total_seconds()
    assert_that(
        ran,
        greater_than_or_equal_to(seconds),
        "the report's time on the server until its session ended (s)",
    )


@then("the server ends the worker's session within {limit:Seconds} seconds of its going away")
def step_ends_within(context, limit):
    worker, limit = context.worker, context.settings.seconds(limit)
    ended, _ = worker.server_process_end(
        timeout=limit + context.settings.seconds(NOTICES_AFTER_REPORT)
    )
    assert_that(
        ended - worker.killed_at,
        less_than_or_equal_to(limit),
        "from the worker's end to its session's (s)",
    )
