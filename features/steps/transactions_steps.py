"""The application's transactions: batches, explicit begin/commit/rollback, failures inside."""

from decimal import Decimal

import sqlalchemy as sa
from behave import given, then, when
from hamcrest import assert_that, equal_to, has_item, is_not

import failspec.harness.gherkin_types  # noqa: F401  (registers the parameter types)
from failspec.harness.matchers import fails_with, reports_connection_invalidated, succeeds
from failspec.harness.outcomes import capture
from failspec.ledger import Ledger, Payment, Rejection

BATCH_ACCOUNTS = ("dave", "erin", "frank", "grace")


@when(
    "the application records a batch of {count:d} payments whose {position:Position} one has a negative amount"
)
def step_batch_with_negative(context, count, position):
    index = position % count
    context.batch = [
        Payment(BATCH_ACCOUNTS[i], Decimal("-5.00") if i == index else Decimal("40.00"),
                f"ref-{101 + i}")
        for i in range(count)
    ]  # fmt: skip
    _record_batch(context)


@when("the application records this batch in one transaction:")
def step_batch_table(context):
    context.batch = [
        Payment(row["account"], Decimal(row["amount"]), row["reference"]) for row in context.table
    ]
    _record_batch(context)


def _record_batch(context):
    batch = context.batch
    context.outcome = capture("record a batch", lambda: context.app.ledger.record_all(batch))


@given("the application has begun a transaction")
def step_begun(context):
    assert_that(context.app.session.begin(), succeeds())


@given(
    "the application has recorded a payment of {amount:Money} for {account:Account} in that transaction"
)
def step_recorded_in_tx(context, amount, account):
    assert_that(_record_in_tx(context, Payment(account, amount, f"ref-{account}")), succeeds())


@when(
    "the application records a payment of {amount:Money} for {account:Account} in that transaction"
)
def step_record_in_tx(context, amount, account):
    context.outcome = _record_in_tx(context, Payment(account, amount, f"ref-{account}"))


@given("a payment reusing the reference {reference:Reference} has failed in that transaction")
def step_failed_in_tx(context, reference):
    outcome = _record_in_tx(context, Payment("mallory", Decimal("1.00"), reference))
    assert_that(outcome, is_not(succeeds()))


def _record_in_tx(context, payment):
    ledger = context.app.statements
    return context.app.session.run(f"record {payment}", lambda conn: ledger.record(conn, payment))


@given("the application has marked every payment reversed in that transaction")
def step_mark_all(context):
    ledger = context.app.statements
    outcome = context.app.session.run(
        "mark all reversed", lambda conn: ledger.set_status_of_all(conn, "reversed")
    )
    assert_that(outcome, succeeds())


@given("the application has removed the payment {reference:Reference} in that transaction")
def step_remove(context, reference):
    ledger = context.app.statements
    outcome = context.app.session.run(f"remove {reference}", lambda c: ledger.remove(c, reference))
    assert_that(outcome, succeeds())


@when("the application rolls the transaction back")
def step_roll_back(context):
    context.outcome = context.app.session.rollback()


@given("the application has rolled the transaction back")
def step_rolled_back(context):
    assert_that(context.app.session.rollback(), succeeds())


@when("the application commits the transaction")
def step_commit(context):
    context.outcome = context.app.session.commit()


@given("the application's commit of that transaction has failed because the connection was lost")
def step_commit_lost(context):
    assert_that(context.app.session.commit(), reports_connection_invalidated())


@when("the application records a payment of {amount:Money} for {account:Account} on its own")
def step_record_alone(context, amount, account):
    ledger = context.app.statements
    payment = Payment(account, amount, f"ref-{account}")
    context.outcome = context.app.session.run_alone(
        f"record {payment}", lambda conn: ledger.record(conn, payment)
    )


# -- Failures named in the integrity feature: each is attempted and its outcome captured;
#    had one succeeded, the fingerprint would show it.


def _attempt(context, payment):
    ledger = context.app.statements
    context.outcome = context.app.session.run_alone(
        f"record {payment}", lambda conn: ledger.record(conn, payment)
    )


@when("a payment with a negative amount is attempted")
def step_attempt_negative(context):
    _attempt(context, Payment("dave", Decimal("-40.00"), "ref-201"))


@when("a payment with no account is attempted")
def step_attempt_no_account(context):
    _attempt(context, Payment(None, Decimal("40.00"), "ref-202"))


@when("a payment with an unknown status is attempted")
def step_attempt_unknown_status(context):
    _attempt(context, Payment("dave", Decimal("40.00"), "ref-203", "approved-ish"))


@when("a payment reusing a committed reference is attempted")
def step_attempt_duplicate(context):
    _attempt(context, Payment("dave", Decimal("40.00"), "ref-001"))


@when("a query dividing every amount by zero is attempted")
def step_attempt_division(context):
    context.outcome = context.app.session.run_alone(
        "divide by zero",
        lambda conn: conn.execute(sa.text("UPDATE transactions SET amount = amount / 0")),
    )


@when("a transaction that changed every payment is rolled back")
def step_changed_then_rolled_back(context):
    step_begun(context)
    step_mark_all(context)
    outcome = context.app.session.run(
        "add to every amount",
        lambda conn: conn.execute(sa.text("UPDATE transactions SET amount = amount + 1")),
    )
    assert_that(outcome, succeeds())
    context.outcome = context.app.session.rollback()


@when("a transaction is cut off by the server before it commits")
def step_cut_off(context):
    step_begun(context)
    step_mark_all(context)
    context.app.end_connection()
    context.outcome = context.app.session.commit()


# -- savepoints and imports


@given(
    "a payment of {amount:Money} for {account:Account} under a savepoint has failed with {condition:Condition}"
)
def step_failed_under_savepoint(context, amount, account, condition):
    payment = Payment(account, amount, f"ref-{account}")
    outcome = context.app.session.run(
        f"record {payment} under a savepoint",
        lambda conn: Ledger.record_under_savepoint(conn, payment),
    )
    assert_that(outcome, fails_with(condition))


@given("the application has set a savepoint")
def step_savepoint(context):
    assert_that(context.app.session.savepoint(), succeeds())


@when("the application releases the savepoint")
def step_release(context):
    context.outcome = context.app.session.release_savepoint()


@when("the application rolls back to the savepoint")
def step_rollback_to_savepoint(context):
    context.outcome = context.app.session.rollback_to_savepoint()


def _rows(context):
    """The table's payments, kept as the scenario's batch."""
    context.batch = [
        Payment(r["account"], Decimal(r["amount"]), r["reference"]) for r in context.table
    ]
    return context.batch


@when("the application imports these payments all or nothing:")
def step_import_all(context):
    rows = _rows(context)
    context.outcome = capture(
        "import all or nothing", lambda: context.app.ledger.import_payments(rows, per_row=False)
    )


@when("the application imports these payments row by row:")
def step_import_rows(context):
    rows = _rows(context)
    context.outcome = capture(
        "import row by row", lambda: context.app.ledger.import_payments(rows, per_row=True)
    )


@then("the failure says it was row {number:d} ({reference:Reference})")
def step_failure_row(context, number, reference):
    notes = getattr(context.outcome.error, "__notes__", [])
    assert_that(notes, has_item(f"row {number} ({reference}) of the import"))


@then("the import took {references:References}")
def step_import_took(context, references):
    assert_that(context.outcome.value.imported, equal_to(references))


@then("the import refused these rows:")
def step_import_refused(context):
    expected = [Rejection(r["reference"], r["condition"], r["reason"]) for r in context.table]
    assert_that(context.outcome.value.rejected, equal_to(expected))
