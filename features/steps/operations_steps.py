"""The ledger's operations: payments and transfers, idempotent and retried."""

from behave import given, then, when
from hamcrest import assert_that, equal_to, is_not, less_than_or_equal_to

import failspec.harness.gherkin_types  # noqa: F401  (registers the parameter types)
from failspec.harness import faults
from failspec.harness.matchers import fails_with, succeeds
from failspec.harness.outcomes import capture
from failspec.ledger import Payment, Transfer


def _pay(context, amount, account, reference):
    payment = Payment(account, amount, reference)
    context.outcome = capture(f"pay {payment}", lambda: context.app.ledger.pay(payment))


def _transfer(context, amount, source, target, reference):
    transfer = Transfer(source, target, amount, reference)
    context.outcome = capture(f"transfer {transfer}", lambda: context.app.ledger.transfer(transfer))


@when(
    "the application pays {amount:Money} to {account:Account} with reference {reference:Reference}"
)
def step_pay(context, amount, account, reference):
    _pay(context, amount, account, reference)


@given(
    "the application has paid {amount:Money} to {account:Account} with reference {reference:Reference}"
)
def step_paid(context, amount, account, reference):
    _pay(context, amount, account, reference)
    assert_that(context.outcome, succeeds())


@given(
    "the application has tried to pay {amount:Money} to {account:Account} with reference {reference:Reference} and lost the reply"
)
def step_paid_reply_lost(context, amount, account, reference):
    _pay(context, amount, account, reference)
    assert_that(context.outcome, fails_with("connection_lost"))


@when(
    "the application transfers {amount:Money} from {source:Account} to {target:Account} with reference {reference:Reference}"
)
def step_transfer(context, amount, source, target, reference):
    _transfer(context, amount, source, target, reference)


@given(
    "the application has transferred {amount:Money} from {source:Account} to {target:Account} with reference {reference:Reference}"
)
def step_transferred(context, amount, source, target, reference):
    _transfer(context, amount, source, target, reference)
    assert_that(context.outcome, succeeds())


@given("the application does not retry")
def step_no_retry(context):
    context.app.retry.attempts = 1


@given("the connection will be lost between the legs of the next transfer")
def step_lose_between_legs(context):
    context.app.lose_connection_between_transfer_legs()


@given("the reply to the next commit will be lost")
def step_lose_reply(context):
    context.app.lose_reply_to_next_commit()


FAILURES = {"a lost connection": faults.LOST_CONNECTION}


@given("the next {times:d} attempts to record an operation fail with {failure}")
def step_arm_failures(context, times, failure):
    faults.arm_insert_failures(context.workspace, FAILURES.get(failure, failure), times)


@then("it succeeds, reporting the operation as already applied")
def step_already_applied(context):
    assert_that(context.outcome, succeeds())
    assert_that(context.outcome.value.already_applied, equal_to(True))


@then("it succeeds after {attempts:d} attempts, reporting the operation as already applied")
def step_already_applied_after(context, attempts):
    step_already_applied(context)
    assert_that(context.outcome.value.attempts, equal_to(attempts))


@then("it succeeds after {attempts:d} attempts")
def step_succeeds_after(context, attempts):
    assert_that(context.outcome, succeeds())
    assert_that(context.outcome.value.attempts, equal_to(attempts))
    assert_that(context.outcome.value.already_applied, equal_to(False))


@then("it fails with {condition:Condition} after {attempts:d} attempt")
@then("it fails with {condition:Condition} after {attempts:d} attempts")
def step_fails_after(context, condition, attempts):
    assert_that(context.outcome, fails_with(condition))
    assert_that(getattr(context.outcome.error, "failspec_attempts", None), equal_to(attempts))


@then(
    "it waited twice, first at most {first:Seconds} seconds, then at most {second:Seconds} seconds"
)
def step_waits(context, first, second):
    waits = context.app.waits
    assert_that(len(waits), equal_to(2))
    assert_that(waits[0], less_than_or_equal_to(first))
    assert_that(waits[1], less_than_or_equal_to(second))
    # The limits stated are the policy's own; full jitter draws below them, not at them.
    policy = context.app.retry
    assert_that([policy.delay_limit(1), policy.delay_limit(2)], equal_to([first, second]))
    assert_that(waits, is_not(equal_to([first, second])))
