"""The application's ORM session and the ledger's unit of work."""

from decimal import Decimal

import sqlalchemy as sa
from behave import given, then, when
from hamcrest import assert_that, equal_to

import failspec.harness.gherkin_types  # noqa: F401  (registers the parameter types)
from failspec.harness.matchers import fails_with, succeeds
from failspec.harness.outcomes import capture
from failspec.harness.scenario.application import skip_without
from failspec.ledger import port
from failspec.ledger.orm import Account, Operation


def _operation(amount: Decimal, account: str) -> Operation:
    return Operation(account=account, amount=amount, client_ref=f"ref-{account}")


@given(
    "the application's session has failed to write a payment of {amount:Money} for {account:Account}"
)
def step_failed_flush(context, amount, account):
    orm = context.app.orm
    orm.add(_operation(amount, account))
    assert_that(capture("flush", orm.flush), fails_with("check_violation"))


@when("the application reads the ledger through its session")
def step_orm_read(context):
    orm = context.app.orm
    context.outcome = capture(
        "read through the session", lambda: list(orm.scalars(sa.select(Operation)))
    )


@given("the application has rolled its session back")
def step_orm_rollback(context):
    assert_that(capture("rollback", context.app.orm.rollback), succeeds())


@when(
    "the application writes a payment of {amount:Money} for {account:Account} through its session"
)
def step_orm_write(context, amount, account):
    orm = context.app.orm

    def write():
        orm.add(_operation(amount, account))
        orm.execute(
            sa.text("UPDATE accounts SET balance = balance + :a WHERE name = :n"),
            {"a": amount, "n": account},
        )
        orm.commit()

    context.outcome = capture("write through the session", write)


@given("the application's session has begun a transaction")
def step_orm_begun(context):
    assert_that(capture("begin", context.app.orm.begin), succeeds())


@when("the application begins a transaction on its session again")
def step_orm_begin_again(context):
    context.outcome = capture("begin again", context.app.orm.begin)


@when("the application begins another transaction on the same connection")
def step_begin_again(context):
    context.outcome = context.app.session.begin()


def _write_payment(unit, amount: Decimal, account: str) -> None:
    """A payment as an ORM application writes one: the operation, and its account credited."""
    unit.add(_operation(amount, account))
    unit.get(Account, account).balance += amount


@given(
    "the application has started a unit of work that writes a payment of {amount:Money} for {account:Account}"
)
def step_unit_started(context, amount, account):
    if skip_without(context, port.UNIT_OF_WORK):
        return
    unit = context.app.start_unit_of_work()
    _write_payment(unit, amount, account)
    unit.flush()


@when("the unit of work also writes a payment of {amount:Money} for {account:Account} and commits")
def step_unit_writes_and_commits(context, amount, account):
    context.outcome = context.app.end_unit_of_work(
        f"write a payment of {amount} for {account} and commit",
        lambda unit: _write_payment(unit, amount, account),
    )


@when("the application's own code fails before the unit of work ends")
def step_unit_abandoned(context):
    context.outcome = context.app.abandon_unit_of_work()


@when("the unit of work commits")
def step_unit_commits(context):
    context.outcome = context.app.finish_unit_of_work()


@then("it reads the amounts exactly: {expected:Balances}")
def step_exact_amounts(context, expected):
    assert_that(context.outcome, succeeds())
    read = {op.account: op.amount for op in context.outcome.rows}
    kinds = {account: type(amount).__name__ for account, amount in read.items()}
    assert_that(kinds, equal_to(dict.fromkeys(read, "Decimal")), "the types of the amounts read")
    assert_that({a: read.get(a) for a in expected}, equal_to(expected))
