"""The ledger's committed state: seeding it, fingerprinting it, looking for payments."""

from decimal import Decimal

import sqlalchemy as sa
from behave import given, then, when
from hamcrest import assert_that, equal_to, has_item, is_not

import failspec.harness.gherkin_types  # noqa: F401  (registers the parameter types)
from failspec.harness.outcomes import capture
from failspec.ledger import Payment, Transfer


@given("the ledger holds these payments:")
def step_seed(context):
    """Opens the accounts the table names, in its order, and records its payments, committed:

    | account | amount | reference | status  |
    | alice   | 100.00 | ref-001   | posted  |
    """
    payments = [
        Payment(r["account"], Decimal(r["amount"]), r["reference"], r["status"])
        for r in context.table
    ]
    context.audit.seed(dict.fromkeys(p.account for p in payments), payments)
    context.audit.take_baseline()


@given("the ledger also holds the empty accounts {accounts:Accounts}")
def step_seed_empty(context, accounts):
    context.audit.seed(accounts, ())
    context.audit.take_baseline()


@given("the ledger also holds pending payments of {amount:Money} for {accounts:Accounts}")
def step_seed_pending(context, amount, accounts):
    payments = [
        Payment(account, amount, f"ref-{11 + i:03d}", "pending")
        for i, account in enumerate(accounts)
    ]
    context.audit.seed((), payments)
    context.audit.take_baseline()


@then("the committed ledger is unchanged")
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


@then("the payments for {accounts:Accounts} are pending")
def step_pending(context, accounts):
    statuses = {p.account: p.status for p in context.audit.payments() if p.account in accounts}
    assert_that(statuses, equal_to(dict.fromkeys(accounts, "pending")))


@then("none of the batch's payments is in the ledger")
def step_batch_absent(context):
    def key(p):
        return (p.account, p.amount, p.reference)

    committed = {key(p) for p in context.audit.payments()}
    assert_that(committed.intersection(key(p) for p in context.batch), equal_to(set()))


@then("every payment of the {what:Batch} is in the ledger once, in its order")
def step_batch_present(context, what):
    """The payments the batch or import was given, committed, each once, in their order."""
    refs = {p.reference for p in context.batch}
    committed = [(p.account, p.amount, p.reference) for p in context.audit.payments()]
    batch = [(p.account, p.amount, p.reference) for p in context.batch]
    assert_that([c for c in committed if c[2] in refs], equal_to(batch))


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


@when(
    "{amount:Money} is added to the balance of {account:Account} with no record of it, and committed"
)
def step_add_unrecorded(context, amount, account):
    context.outcome = _update_committed(
        context, "UPDATE accounts SET balance = balance + :d WHERE name = :a", d=amount, a=account
    )


@when(
    "a transfer of {amount:Money} from {source:Account} to {target:Account} is recorded with only its debit applied, and committed"
)
def step_one_legged_transfer(context, amount, source, target):
    context.outcome = _update_committed(
        context,
        "WITH debit AS (UPDATE accounts SET balance = balance - :d WHERE name = :s RETURNING 1) "
        "INSERT INTO transactions (kind, account, counterparty, amount, client_ref) "
        "SELECT 'transfer', :s, :t, :d, 'ref-899' FROM debit",
        d=amount, s=source, t=target,
    )  # fmt: skip


@then("the books balance: {expected:Balances}")
def step_books_balance(context, expected):
    audit = context.audit
    books = audit.books()
    assert_that(books.imbalances(audit.opening), equal_to([]), "where the books do not balance")
    held = {a.name: a.balance for a in books.accounts if a.name in expected}
    assert_that(held, equal_to(expected))


@then(
    "the books do not balance for {account:Account}: it holds {held:Money}, but its records give {recorded:Money}"
)
def step_books_unbalanced(context, account, held, recorded):
    audit = context.audit
    (found,) = [a for a in audit.books().accounts if a.name == account]
    assert_that((found.balance, found.expected(audit.opening[account])), equal_to((held, recorded)))


@then("no balance has changed")
def step_balances_unchanged(context):
    assert_that(context.audit.balances(), equal_to(context.audit.baseline_balances))


@then("the balance of {account:Account} is {amount:Money}")
def step_balance_is(context, account, amount):
    assert_that(context.audit.balances()[account], equal_to(amount))


@then("the total of all balances is unchanged")
def step_total_unchanged(context):
    assert_that(context.audit.fingerprint().total, equal_to(context.audit.baseline.total))


@then("exactly one operation has the reference {reference:Reference}")
def step_one_operation(context, reference):
    assert_that(context.audit.operations_with(reference), equal_to(1))


# -- attempts that break a rule of the ledger, each in a transaction of its own


@when("the application attempts {attempt:RuleBreach}")
def step_attempt(context, attempt):
    phrase, kind, args = attempt
    ledger = context.app.statements
    if kind == "record":
        account, amount, reference = args
        payment = Payment(account, Decimal(amount), reference)
        work = lambda conn: ledger.record(conn, payment)  # noqa: E731
    else:
        source, target, amount, reference = args
        transfer = Transfer(source, target, Decimal(amount), reference)
        work = lambda conn: ledger.move(conn, transfer)  # noqa: E731
    context.outcome = context.app.session.run_alone(phrase, work)
