"""Generated workloads: many random transactions at once, their history checked for cycles.

``context.generated`` (set by the Given-steps here) holds the scenario's workload, its run
and what the checker found; the run's matrix of them is ``context.generated_matrix``.
"""

from behave import given, then, when
from hamcrest import assert_that, equal_to

import failspec.harness.gherkin_types  # noqa: F401  (registers the parameter types)
from failspec.harness.concurrency.generated import BANK_SKEW, Generated
from failspec.ledger import RetryPolicy

#: Where a "never" is checked that the run did not see: the rest of the suite's checks.
INTERNAL = ["internal", "incompatible-order"]


def _generated(context, workload):
    transactions = context.settings.workload_transactions
    context.generated = Generated(context.generated_matrix, workload, transactions)


@given("generated transactions that read shared lists and append to them")
def step_list_append(context):
    _generated(context, "list-append")


@given("the ledger holds only {accounts:Accounts} with {amount:Money} each")
def step_accounts_each(context, accounts, amount):
    context.audit.open_accounts(dict.fromkeys(accounts, amount))


@given("generated transactions that transfer money between them or read every balance")
def step_bank(context):
    _generated(context, "bank")


@when("{sessions:d} sessions run them at the same time at {level:Level}")
def step_run(context, sessions, level):
    generated, scale = context.generated, context.settings.timeout_scale
    if generated.workload == "bank":
        ledger_for = lambda engine: context.app.ledger_for(engine, RetryPolicy(attempts=1))  # noqa: E731
        generated.bank(context.workspace, level, sessions, scale, ledger_for, context.audit.opening)
    else:
        generated.list_append(context.workspace, level, sessions, scale)
    print(f"failspec: generated workload: {generated.where()}", flush=True)


@then("the history shows no {kinds:Cycles}")
def step_never(context, kinds):
    found = context.generated.never(kinds)
    assert_that(found, equal_to([]), f"found in {context.generated.where()}")


@then("every transaction saw its own appends, and all reads of a list agree on one order")
def step_internal(context):
    found = context.generated.never(INTERNAL)
    assert_that(found, equal_to([]), f"found in {context.generated.where()}")


@then("the report says whether {kinds:Cycles} appeared, and in how many transactions")
def step_allowed(context, kinds):
    for line in context.generated.allowed(kinds):
        print(f"failspec: {line}", flush=True)


@then("every read of all balances totals {total:Money}")
def step_one_total(context, total):
    assert_that(sum(context.audit.opening.values()), equal_to(total), "the accounts' total")
    found = context.generated.never([BANK_SKEW])
    assert_that(found, equal_to([]), f"found in {context.generated.where()}")


@then("the report says whether a read of all balances saw a total other than {total:Money}")
def step_other_total(context, total):
    assert_that(sum(context.audit.opening.values()), equal_to(total), "the accounts' total")
    for line in context.generated.allowed([BANK_SKEW]):
        print(f"failspec: {line}", flush=True)
