"""The ledger's committed state: seeding it, fingerprinting it, looking for payments."""

from decimal import Decimal

import sqlalchemy as sa
from behave import given, then, when
from hamcrest import assert_that, equal_to, has_item, is_not

import failspec.harness.gherkin_types  # noqa: F401  (registers the parameter types)
from failspec.harness.outcomes import capture
from failspec.ledger import SAMPLE_PAYMENTS


@given("the ledger holds the sample payments")
def step_seed(context):
    context.audit.seed(SAMPLE_PAYMENTS)
    context.audit.take_baseline()


@then("the committed ledger is unchanged")
@then("the ledger's fingerprint is unchanged")
def step_unchanged(context):
    context.audit.assert_unchanged()


@then("the ledger's fingerprint has changed")
def step_changed(context):
    assert_that(context.audit.fingerprint(), is_not(equal_to(context.audit.baseline)))


@then("no payment for {account:Account} is in the ledger")
def step_no_payment_for(context, account):
    accounts = [p.account for p in context.audit.payments()]
    assert_that(accounts, is_not(has_item(account)))


@then("a payment of {amount:Money} for {account:Account} is in the ledger")
def step_payment_present(context, amount, account):
    payments = [(p.account, p.amount) for p in context.audit.payments()]
    assert_that(payments, has_item((account, amount)))


@then("none of the batch's payments is in the ledger")
def step_batch_absent(context):
    def key(p):
        return (p.account, p.amount, p.reference)

    committed = {key(p) for p in context.audit.payments()}
    assert_that(committed.intersection(key(p) for p in context.batch), equal_to(set()))


@when("one cent is added to the payment {reference:Reference} and committed")
def step_add_cent(context, reference):
    context.outcome = _update_committed(
        context, "UPDATE transactions SET amount = amount + :d WHERE client_ref = :r",
        d=Decimal("0.01"), r=reference,
    )  # fmt: skip


@when("the payment {reference:Reference} is marked posted and committed")
def step_mark_posted(context, reference):
    context.outcome = _update_committed(
        context, "UPDATE transactions SET status = 'posted' WHERE client_ref = :r", r=reference
    )


def _update_committed(context, sql, **params):
    def update():
        with context.app.engine.begin() as conn:
            assert conn.execute(sa.text(sql), params).rowcount == 1

    return capture("update a committed payment", update)
