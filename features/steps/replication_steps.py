"""Replication and failover: a primary, its standby, a promotion (``context.failover``)."""

from behave import given, then, when
from hamcrest import assert_that, contains_string, empty, equal_to, is_not

import failspec.harness.gherkin_types  # noqa: F401  (registers the parameter types)
from failspec.harness.faults.replication import STANDBY
from failspec.harness.matchers import fails_with
from failspec.harness.outcomes import capture
from failspec.ledger import Payment


@given("the standby is cut off from the primary")
def step_cut_off(context):
    context.failover.cut_off()


@given("the standby has stopped replaying what it receives")
def step_replay_paused(context):
    context.failover.pause_replay()


@given("the standby applies what it receives {seconds:Seconds} seconds late")
def step_apply_delay(context, seconds):
    context.failover.delay_apply(seconds)


@given("the primary waits for the standby to confirm each commit")
def step_synchronous(context):
    context.failover.require_confirmation()


@given("the application commits with synchronous_commit {level:SyncLevel}")
def step_level(context, level):
    context.app.server_settings["synchronous_commit"] = level
    context.failover.level = level


@given("the application connects {how:ConnectionString}")
def step_connects(context, how):
    attrs, both = how
    names = (context.cluster.primary_name, STANDBY) if both else (context.cluster.primary_name,)
    context.app.url = context.cluster.url(*names, target_session_attrs=attrs)


@given(
    "the application is paying {amount:Money} to {account:Account} with reference {reference:Reference}"
)
@when(
    "the application is paying {amount:Money} to {account:Account} with reference {reference:Reference}"
)
def step_paying(context, amount, account, reference):
    payment = Payment(account, amount, reference)
    context.failover.start(
        f"pay {payment}", lambda: context.app.ledger.pay(payment), context.workspace.acknowledge
    )


@when("the primary crashes and the standby is promoted")
@given("the primary has crashed and the standby has been promoted")
def step_failover(context):
    context.failover.crash_and_promote(context.workspace.schema, context.workspace.references())


@given("the old primary has come back as a standby of the new one")
def step_rejoin(context):
    context.cluster.rejoin("primary")


@then("the application was told it was applied")
def step_told_applied(context):
    context.outcome = context.failover.finish()
    assert_that(context.outcome.error, equal_to(None), context.outcome.action)


@then("the application was not told it was applied")
def step_not_told(context):
    context.outcome = context.failover.finish()
    assert_that(context.outcome.error, is_not(equal_to(None)), context.outcome.action)
    assert_that(context.failover.waited, equal_to(True), "its COMMIT waited for the standby")


@then("the new primary {holds:Holds} the payment {reference:Reference}")
def step_new_primary_holds(context, holds, reference):
    found = context.audit.operations_with(reference) == 1
    context.replication_matrix.record(
        context.failover.level,
        context.failover.failure,
        context.failover.cell(context.outcome, found),
    )
    assert_that(found, equal_to(holds), f"the payment {reference} on the new primary")


@then("the standby shows no payment for {account:Account}")
def step_standby_lacks(context, account):
    rows = context.failover.reads_on_standby(
        context.workspace.schema, "SELECT amount FROM transactions WHERE account = :a", a=account
    )
    assert_that(rows, empty(), f"payments for {account} on the standby")


@then("the standby shows a payment of {amount:Money} for {account:Account}")
def step_standby_has(context, amount, account):
    rows = context.failover.reads_on_standby(
        context.workspace.schema, "SELECT amount FROM transactions WHERE account = :a", a=account
    )
    assert_that(
        [row[0] for row in rows], equal_to([amount]), f"payments for {account} on the standby"
    )


@when(
    "the application pays {amount:Money} to {account:Account} with reference {reference:Reference} on the standby"
)
def step_pay_on_standby(context, amount, account, reference):
    context.failover.settle()  # the standby has the scenario's ledger
    context.app.url = context.cluster.url(STANDBY)
    payment = Payment(account, amount, reference)
    context.outcome = capture(
        f"pay {payment} on the standby", lambda: context.app.ledger.pay(payment)
    )


@when("an administrator cancels the payment's wait for the standby")
def step_cancel_wait(context):
    context.failover.cancel_wait()


@when("an administrator ends the session of the payment waiting for the standby")
def step_terminate_wait(context):
    context.failover.end_waiting_session()


@then("the application is told the payment is in doubt ({condition:Condition})")
def step_payment_fails(context, condition):
    context.outcome = context.failover.finish()
    assert_that(context.outcome, fails_with(condition))


@then(
    "the server applies a statement timeout of {seconds:Seconds} seconds to the application's statements"
)
def step_statement_timeout_in_force(context, seconds):
    shown = context.app.show("statement_timeout")
    assert_that(shown, equal_to(f"{round(seconds * 1000)}ms"), "statement_timeout in force")


@given(
    "the application has paid {amount:Money} to {account:Account} with reference {reference:Reference}, and was told it is in doubt once its wait was cancelled"
)
def step_paid_in_doubt(context, amount, account, reference):
    step_paying(context, amount, account, reference)
    step_cancel_wait(context)
    step_payment_fails(context, "transaction_resolution_unknown")


@given("the network between the primary and the standby is partitioned")
def step_partitioned(context):
    context.failover.partition()


@then("the payment's COMMIT waits for the standby")
def step_commit_waits(context):
    assert_that(context.failover.commit_waiting(), equal_to(True), "the COMMIT waiting now")


@then("the payment's COMMIT waited for the standby")
def step_commit_waited(context):
    assert_that(context.failover.waited, equal_to(True), "the COMMIT seen waiting (SyncRep)")


@then("the standby has been promoted and is the primary the ledger is read from")
def step_promoted(context):
    assert_that(context.cluster.primary_name, equal_to(STANDBY), "the primary of the moment")
    assert_that(context.cluster.in_recovery(STANDBY), equal_to(False), "the standby in recovery")


@then("the primary still lists the standby as streaming")
def step_still_streaming(context):
    assert_that(
        context.failover.primary_lists_standby_streaming(), equal_to(True),
        "the standby streaming in the primary's pg_stat_replication",
    )  # fmt: skip


@given("the standby's processes are stopped")
def step_standby_stopped(context):
    context.failover.stop_standby()


@when("the standby's processes continue")
def step_standby_continues(context):
    context.failover.resume_standby()


@given("the application connects through an address that follows the primary, as a virtual IP does")
def step_virtual_ip(context):
    context.app.url = context.network.url()


@given("the primary will crash and the standby be promoted while the ledger waits to retry")
def step_failover_on_wait(context):
    before = context.app.during_next_wait

    def fail_over() -> None:
        if before is not None:
            before()
        context.failover.crash_and_promote(context.workspace.schema, [])

    context.app.during_next_wait = fail_over


@given("the standby cancels queries in the way of its replay after {seconds:Seconds} seconds")
def step_replay_wait(context, seconds):
    context.failover.limit_replay_wait(seconds)


@given("the standby tells the primary which row versions its queries still read")
def step_feedback(context):
    context.failover.send_feedback()


@given("a report on the standby is adding up the balances, taking {seconds:Seconds} seconds")
def step_report(context, seconds):
    context.failover.start_report(
        context.workspace.schema, "SELECT sum(balance) AS total FROM accounts", seconds
    )


@when("the primary vacuums the accounts")
def step_vacuum(context):
    context.failover.vacuum(context.workspace.schema, "accounts")


@then("the report fails with {condition:Condition}, cancelled by a conflict with recovery")
def step_report_cancelled(context, condition):
    context.outcome = context.failover.report()
    assert_that(context.outcome, fails_with(condition))
    # The message PostgreSQL gives (src/backend/tcop/postgres.c).
    assert_that(str(context.outcome.error), contains_string("conflict with recovery"))


@then("the report shows balances adding up to {amount:Money}")
def step_report_total(context, amount):
    context.outcome = context.failover.report()
    assert_that(context.outcome.error, equal_to(None), "the report on the standby")
    assert_that(context.outcome.rows, equal_to([(amount,)]), "the report's total")


@given(
    "the application connects to both servers, reaching the primary through the network, asking for one that accepts writes"
)
def step_connects_via_network(context):
    primary = context.cluster.primary_name
    context.app.url = context.cluster.url(
        primary, STANDBY, target_session_attrs="read-write",
        via={primary: (context.network.proxy.host, context.network.proxy.port)},
    )  # fmt: skip
