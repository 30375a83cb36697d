"""The ledger's operations: payments and transfers, idempotent and retried."""

from behave import given, then, when
from hamcrest import assert_that, empty, equal_to, greater_than, has_length, less_than

import failspec.harness.gherkin_types  # noqa: F401  (registers the parameter types)
from failspec.conditions import condition_of
from failspec.harness.faults import server as server_faults
from failspec.harness.matchers import fails_with, succeeds
from failspec.harness.outcomes import Outcome, capture
from failspec.harness.scenario import backoff
from failspec.harness.scenario.application import skip_without
from failspec.ledger import Payment, Transfer, port


def _operation(context, action, fn):
    """Run one ledger operation; its outcome notes the waits the application recorded
    before its retries (``notes["waits"]``, in s): a count the policy does not keep."""
    waits = context.app.waits
    before = len(waits)
    outcome = capture(action, fn)
    outcome.notes["waits"] = waits[before:]
    if outcome.succeeded:
        context.workspace.acknowledge(action, outcome.value)
    return outcome


def _pay(context, amount, account, reference):
    payment = Payment(account, amount, reference)
    context.outcome = _operation(context, f"pay {payment}", lambda: context.app.ledger.pay(payment))


def _transfer(context, amount, source, target, reference):
    transfer = Transfer(source, target, amount, reference)
    context.outcome = _operation(
        context, f"transfer {transfer}", lambda: context.app.ledger.transfer(transfer)
    )


def _made_attempts(outcome, attempts):
    """``attempts`` attempts by both counts: the ledger's own and the application's waits
    (N attempts wait N-1 times)."""
    if outcome.error is None:
        counted = outcome.value.attempts
    else:
        counted = getattr(outcome.error, "failspec_attempts", None)
    assert_that(counted, equal_to(attempts), f"attempts the ledger counted ({outcome.action})")
    waits = outcome.notes.get("waits")
    assert waits is not None, f"{outcome.action}: not an operation whose waits were recorded"
    assert_that(waits, has_length(attempts - 1), f"waits before retries ({outcome.action})")


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
    if skip_without(context, port.BETWEEN_LEGS):
        return
    context.app.lose_connection_between_transfer_legs()


@given("the next {times:d} attempts to record an operation fail with {failure:InjectedFailure}")
def step_arm_failures(context, times, failure):
    server_faults.arm_insert_failures(context.workspace, failure, times)


@given("every attempt to record an operation fails with {failure:InjectedFailure}")
def step_arm_every_failure(context, failure):
    server_faults.arm_insert_failures(context.workspace, failure, server_faults.EVERY_TIME)


@given("the application tries each operation up to {attempts:d} times")
def step_attempts(context, attempts):
    context.app.retry.attempts = attempts


@when("the application makes {count:d} payments of {amount:Money} to {account:Account}")
def step_many_payments(context, count, amount, account):
    payments = [Payment(account, amount, f"ref-{9000 + n}") for n in range(count)]
    outcomes = [
        _operation(context, f"pay {p}", lambda p=p: context.app.ledger.pay(p)) for p in payments
    ]
    context.outcome = Outcome(f"make {count} payments", value=outcomes)


@then("it succeeds, reporting the operation as already applied")
def step_already_applied(context):
    assert_that(context.outcome, succeeds())
    assert_that(context.outcome.value.already_applied, equal_to(True))


@then("it succeeds, reporting the operation as applied now")
def step_applied_now(context):
    assert_that(context.outcome, succeeds())
    assert_that(context.outcome.value.already_applied, equal_to(False))


@then("it succeeds after {attempts:d} attempts, reporting the operation as already applied")
def step_already_applied_after(context, attempts):
    step_already_applied(context)
    _made_attempts(context.outcome, attempts)


@then("it succeeds after {attempts:d} attempts")
def step_succeeds_after(context, attempts):
    assert_that(context.outcome, succeeds())
    _made_attempts(context.outcome, attempts)
    assert_that(context.outcome.value.already_applied, equal_to(False))


@then("its first attempt failed with {condition:Condition}")
def step_first_attempt_failed(context, condition):
    judged = [condition_of(e) for e in context.app.judged]
    assert_that(judged[:1], equal_to([condition]), f"the failures the retry judged: {judged}")


@then("it fails with {condition:Condition} after {attempts:d} attempt")
@then("it fails with {condition:Condition} after {attempts:d} attempts")
def step_fails_after(context, condition, attempts):
    assert_that(context.outcome, fails_with(condition))
    _made_attempts(context.outcome, attempts)


@then("each of them fails with {condition:Condition} after {attempts:d} attempts")
def step_each_fails_after(context, condition, attempts):
    for outcome in context.outcome.value:
        assert_that(outcome, fails_with(condition))
        _made_attempts(outcome, attempts)


@then("the server was asked to record it {times:d} times")
def step_server_attempts(context, times):
    assert_that(server_faults.insert_attempts(context.workspace), equal_to(times), "inserts begun")


def _waits_by_failure(context):
    return backoff.by_failure([o.notes["waits"] for o in context.outcome.value])


@then("each wait lies between zero and the limit for the failure it follows")
def step_waits_within(context):
    #: The limit (s) after each failure, as the scenario states it; the steps below use it.
    context.wait_limits = {int(row["failure"]): float(row["limit (s)"]) for row in context.table}
    groups = _waits_by_failure(context)
    assert_that(
        sorted(groups), equal_to(sorted(context.wait_limits)), "failures followed by a wait"
    )
    beyond = backoff.beyond_limits(groups, context.wait_limits)
    assert_that(beyond, empty(), "waits beyond the limit for the failure they follow")


@then("on average the waits after each failure come to between {low:g} and {high:g} of its limit")
def step_waits_average(context, low, high):
    groups = _waits_by_failure(context)
    # The band must be wide enough whatever the seed: a right policy strays out of it for
    # some failure with probability below 1e-4 (exactly 4.5e-5 for 40 waits in 0.3-0.7).
    alarm = sum(backoff.false_alarm(len(w), low, high) for w in groups.values())
    assert_that(alarm, less_than(1e-4), "chance that a right policy fails this check")
    means = backoff.mean_fractions(groups, context.wait_limits)
    outside = {n: round(m, 3) for n, m in means.items() if not low <= m <= high}
    assert_that(outside, equal_to({}), "failures whose waits average outside the band")


@then("the waits after each failure are not all the same")
def step_waits_vary(context):
    distinct = {n: len(set(w)) for n, w in _waits_by_failure(context).items()}
    assert_that(min(distinct.values()), greater_than(1), f"distinct waits by failure {distinct}")
