"""The server itself fails: it crashes, restarts, or freezes (tag @server-control)."""

from behave import given, then, when

import failspec.harness.gherkin_types  # noqa: F401  (registers the parameter types)
from failspec.harness.scenario.application import skip_without
from failspec.harness.waiting import until
from failspec.ledger import port


@given("the server has crashed and been restarted")
@when("the server crashes and is restarted")
def step_crash_restart(context):
    context.server_faults.crash()
    context.server_faults.restart()


@given(
    "the server will crash just before the next operation commits, and be restarted while the ledger waits to retry"
)
def step_crash_before_commit(context):
    if skip_without(context, port.BEFORE_COMMIT):
        return
    faults = context.server_faults
    context.app.before_next_commit(faults.crash)
    context.app.during_next_wait = faults.restart


@given("the server is paused, and will resume while the ledger waits to retry")
def step_paused_until_retry(context):
    context.server_faults.pause()
    context.app.during_next_wait = context.server_faults.resume


@when("the server is paused")
def step_pause(context):
    context.server_faults.pause()


@when("the server resumes")
def step_resume(context):
    context.server_faults.resume()


@then('the server\'s log gives the reason "{text}"')
def step_log_says(context, text):
    server = context.server
    if not server.has_log:
        context.scenario.skip(f"the {server.backend} backend cannot read the server's log")
        return
    until(
        lambda: text in server.log_tail(200),
        timeout=2 * context.settings.timeout_scale, what=f"the server logging {text!r}",
    )  # fmt: skip
