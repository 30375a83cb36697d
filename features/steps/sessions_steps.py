"""Concurrent sessions (T1, T2, …): one action per step, "is waiting for", outcomes, verdicts.

Each When-step starts one action in a session and returns once it has finished, is
waiting for a lock, or has paused where the scenario asked; Then-steps wait for what is
still running (with a deadline) and assert on its outcome.
"""

from behave import given, then, when
from hamcrest import (
    assert_that,
    empty,
    equal_to,
    greater_than_or_equal_to,
    has_length,
    is_,
)

import failspec.harness.gherkin_types  # noqa: F401  (registers the parameter types)
from failspec.harness.concurrency.interleaving import BEFORE_COMMIT, Gate
from failspec.harness.concurrency.isolation import Observation, judge
from failspec.harness.matchers import fails_with, succeeds
from failspec.harness.scenario.application import skip_without
from failspec.ledger import Ledger, Payment, RetryPolicy, Transfer, port

BETWEEN_LEGS = "between transfer legs"
BEFORE_RETRY = "before retrying"
#: A held session may wait several steps (each up to the session deadline) to go on.
GATE_HOLD = 5


def _act(context, name, text, fn):
    context.sessions.perform(name, text, fn)


def _teller(context, name):
    return context.history.teller(context.sessions[name])


def _conn(context, name):
    session = context.sessions[name]
    return lambda: session.conn


# -- the accounts and the sessions' settings -------------------------------------------


@given("the ledger holds only {a:Account} with {x:Money} and {b:Account} with {y:Money}")
def step_two_accounts(context, a, x, b, y):
    context.audit.open_accounts({a: x, b: y})
    context.initial_balances = context.audit.balances()


@given("{names:Sessions} begin transactions at {level:Level}")
def step_begin_at(context, names, level):
    for name in names:
        _act(context, name, f"begin at {level}", _teller(context, name).begin(level))
        assert_that(context.sessions.finish(name), succeeds())


@given("{name:Session} waits {seconds:Seconds} seconds on a lock before it checks for a deadlock")
def step_deadlock_timeout(context, name, seconds):
    context.sessions[name].configure(deadlock_timeout=_ms(context, seconds))


@given("{name:Session} gives up waiting for a lock after {seconds:Seconds} seconds")
def step_lock_timeout(context, name, seconds):
    context.sessions[name].configure(lock_timeout=_ms(context, seconds))


@given("{name:Session} gives up any statement after {seconds:Seconds} seconds")
def step_statement_timeout(context, name, seconds):
    context.sessions[name].configure(statement_timeout=_ms(context, seconds))


def _ms(context, seconds):
    return f"{round(seconds * context.settings.timeout_scale * 1000)}ms"


# -- one statement per step ------------------------------------------------------------


@when("{name:Session} reads the balance of {account:Account}")
def step_read(context, name, account):
    _act(context, name, f"read the balance of {account}", _teller(context, name).read(account))


@when("{name:Session} sees {account:Account} at {amount:Money}")
def step_sees(context, name, account, amount):
    """Reads the balance of ``account`` and states what the read saw, as Hermitage writes a
    transcript ("select ... where id = 1; -- T2. Still shows 1 => 10")."""
    step_read(context, name, account)
    _saw(context, name, amount, f"the balance of {account}")


@when("{name:Session} sees every balance: {balances:Balances}")
def step_sees_all(context, name, balances):
    _act(context, name, "read every balance", _teller(context, name).list("true", {}, "every"))
    _saw(context, name, balances, "every balance")


def _saw(context, name, expected, what):
    outcome = context.sessions.finish(name)
    assert_that(outcome, succeeds())
    seen = dict(outcome.rows or ()) if isinstance(expected, dict) else outcome.value
    assert_that(seen, equal_to(expected), f"what {name} saw of {what}")


@when("{name:Session} sets the balance of {account:Account} to {amount:Money}")
def step_set(context, name, account, amount):
    fn = _teller(context, name).set_balance(account, amount)
    _act(context, name, f"set the balance of {account} to {amount}", fn)


@when("{name:Session} sets the balance of {account:Account} to what it read plus {amount:Money}")
def step_read_modify_write(context, name, account, amount):
    history = context.history

    def read_plus():
        read = [e.value for e in history.of(name, "read") if e.account == account][-1]
        return read + amount

    fn = _teller(context, name).set_balance(account, read_plus)
    _act(context, name, f"set the balance of {account} to what it read plus {amount}", fn)


@when("{name:Session} adds {amount:Money} to every balance")
def step_add_all(context, name, amount):
    fn = _teller(context, name).update_where("true", {"d": amount}, "balance = balance + :d")
    _act(context, name, f"add {amount} to every balance", fn)


@when("{name:Session} sets the balance of the accounts holding {old:Money} to {new:Money}")
def step_set_where(context, name, old, new):
    fn = _teller(context, name).update_where("balance = :o", {"o": old, "n": new}, "balance = :n")
    _act(context, name, f"set the accounts holding {old} to {new}", fn)


@when("{name:Session} lists the accounts holding {amount:Money}")
def step_list_holding(context, name, amount):
    label = f"accounts holding {amount}"
    fn = _teller(context, name).list("balance = :v", {"v": amount}, label)
    _act(context, name, f"list the {label}", fn)


@when("{name:Session} lists the accounts holding {amount:Money} and finds {found:Found}")
def step_list_holding_finds(context, name, amount, found):
    step_list_holding(context, name, amount)
    _saw(context, name, found, f"the accounts holding {amount}")


@when(
    "{name:Session} lists the accounts whose balance is a multiple of {amount:Money} and finds {found:Found}"
)
def step_list_multiple_finds(context, name, amount, found):
    label = f"accounts whose balance is a multiple of {amount}"
    fn = _teller(context, name).list("balance % :m = 0", {"m": amount}, label)
    _act(context, name, f"list the {label}", fn)
    _saw(context, name, found, f"the {label}")


@when("{name:Session} opens the account {account:Account} with {amount:Money}")
def step_open(context, name, account, amount):
    fn = _teller(context, name).insert(account, amount)
    _act(context, name, f"open the account {account} with {amount}", fn)


@when("{name:Session} closes the accounts holding {amount:Money}")
def step_close(context, name, amount):
    label = f"accounts holding {amount}"
    fn = _teller(context, name).delete_where("balance = :v", {"v": amount}, label)
    _act(context, name, f"close the {label}", fn)


@when("{name:Session} commits")
def step_commit(context, name):
    _act(context, name, "commit", _teller(context, name).commit())


@when("{name:Session} rolls back")
def step_rollback(context, name):
    _act(context, name, "roll back", _teller(context, name).rollback())


# -- locks -----------------------------------------------------------------------------


@when("{name:Session} locks the account of {account:Account}")
def step_lock(context, name, account):
    conn = _conn(context, name)
    _act(context, name, f"lock {account}", lambda: Ledger.lock_account(conn(), account))


@when("{name:Session} locks the account of {account:Account} without waiting")
def step_lock_nowait(context, name, account):
    conn = _conn(context, name)
    fn = lambda: Ledger.lock_account(conn(), account, nowait=True)  # noqa: E731
    _act(context, name, f"lock {account} without waiting", fn)


@when("{name:Session} claims the next pending payment")
def step_claim(context, name):
    conn = _conn(context, name)
    fn = lambda: Ledger.claim_next_pending(conn(), skip_locked=False)  # noqa: E731
    _act(context, name, "claim the next pending payment", fn)


@when("{name:Session} claims the next pending payment that no one else holds")
def step_claim_skip(context, name):
    conn = _conn(context, name)
    fn = lambda: Ledger.claim_next_pending(conn(), skip_locked=True)  # noqa: E731
    _act(context, name, "claim the next pending payment, skipping held ones", fn)


# -- transfers by the ledger, in sessions ----------------------------------------------


@given("the ledger locks a transfer's source account first")
def step_naive_order(context):
    if skip_without(context, port.LOCK_ORDER):
        return
    context.lock_in_order = False


@given("the sessions' ledger does not retry")
def step_sessions_no_retry(context):
    context.session_attempts = 1


@given("{names:Sessions} pause their next transfer between its legs")
def step_pause_between(context, names):
    if skip_without(context, port.BETWEEN_LEGS):
        return
    for name in names:
        session = context.sessions[name]
        session.gates[BETWEEN_LEGS] = Gate(
            session, BETWEEN_LEGS, GATE_HOLD * context.sessions.timeout
        )


@given("{name:Session} pauses its next operation before it commits")
def step_pause_before_commit(context, name):
    if skip_without(context, port.BEFORE_COMMIT):
        return
    session = context.sessions[name]
    session.gates[BEFORE_COMMIT] = Gate(
        session, BEFORE_COMMIT, GATE_HOLD * context.sessions.timeout
    )


def _session_ledger(context, name):
    """The ledger as the session's own instance of the application runs it: its own pool
    of one, the application's ledger settings, the retry policy's defaults (waits not
    slept; the scenario may hold the session before a retry), and the points where the
    scenario pauses it."""
    session = context.sessions[name]
    retry_gate = session.gates.get(BEFORE_RETRY)
    retry = RetryPolicy(
        attempts=getattr(context, "session_attempts", RetryPolicy.attempts),
        # The wait before a retry is where the scenario may hold the session.
        sleep=(lambda _: retry_gate(None)) if retry_gate else (lambda _: None),
    )
    lock_in_order = getattr(context, "lock_in_order", None)
    return context.app.ledger_for(
        session.engine, retry, lock_in_order=lock_in_order,
        between_legs=session.gates.get(BETWEEN_LEGS), before_commit=session.gates.get(BEFORE_COMMIT),
    )  # fmt: skip


@when(
    "{name:Session} transfers {amount:Money} from {source:Account} to {target:Account} with reference {reference:Reference}"
)
def step_session_transfer(context, name, amount, source, target, reference):
    ledger, transfer = _session_ledger(context, name), Transfer(source, target, amount, reference)
    _act(
        context,
        name,
        f"transfer {transfer}",
        context.workspace.acknowledging(f"transfer {transfer}", lambda: ledger.transfer(transfer)),
    )


@when(
    "{name:Session} pays {amount:Money} to {account:Account} with reference {reference:Reference}"
)
def step_session_pay(context, name, amount, account, reference):
    ledger, payment = _session_ledger(context, name), Payment(account, amount, reference)
    _act(
        context, name, f"pay {payment}",
        context.workspace.acknowledging(f"pay {payment}", lambda: ledger.pay(payment)),
    )  # fmt: skip


@given(
    "{name:Session} has paid {amount:Money} to {account:Account} with reference {reference:Reference}"
)
def step_session_paid_before(context, name, amount, account, reference):
    step_session_pay(context, name, amount, account, reference)
    step_session_paid(context, name)


@given("{name:Session} waits to retry its transfer until told to")
def step_hold_retry(context, name):
    session = context.sessions[name]
    session.gates[BEFORE_RETRY] = Gate(session, BEFORE_RETRY, GATE_HOLD * context.sessions.timeout)


@when("{name:Session} continues its transfer")
@when("{name:Session} continues its payment")
def step_continue(context, name):
    gates = context.sessions[name].gates
    paused = [p for p in (BETWEEN_LEGS, BEFORE_COMMIT) if p in gates and gates[p].reached.is_set()]
    armed = [p for p in (BETWEEN_LEGS, BEFORE_COMMIT) if p in gates and not gates[p].used]
    context.sessions.resume(name, (paused or armed)[0])


@when("{name:Session} retries its transfer")
def step_retry(context, name):
    context.sessions.resume(name, BEFORE_RETRY)


@then("{name:Session} is waiting to retry its transfer")
def step_waiting_to_retry(context, name):
    paused = context.sessions.reaches(name, BEFORE_RETRY)
    assert_that(paused, equal_to(True), f"{name} paused {BEFORE_RETRY}")


# -- what the sessions see -------------------------------------------------------------


@then("{name:Session} is waiting for {other:Session}")
def step_waiting_for(context, name, other):
    assert_that(context.sessions.blockers(name), equal_to([other]), f"{name} waits for")


@then("{name:Session} completes")
def step_completes(context, name):
    assert_that(context.sessions.finish(name), succeeds())


@then("{name:Session} fails with {condition:Condition}")
def step_session_fails(context, name, condition):
    assert_that(context.sessions.finish(name), fails_with(condition))


@then("{name:Session} fails with {condition:Condition} after waiting {seconds:Seconds} seconds")
def step_fails_after(context, name, condition, seconds):
    outcome = context.sessions.finish(name)
    assert_that(outcome, fails_with(condition))
    assert_that(outcome.elapsed, greater_than_or_equal_to(seconds * context.settings.timeout_scale))


@then("{name:Session} fails with {condition:Condition} without waiting")
def step_fails_at_once(context, name, condition):
    assert_that(context.sessions.finish(name), fails_with(condition))
    assert_that(context.sessions[name].current.waited_for, is_(empty()), "it waited for")


@then("{names:Sessions} each hold a different payment")
def step_different_claims(context, names):
    claims = [context.sessions.finish(name).value for name in names]
    assert_that([c for c in claims if c is not None], has_length(len(names)), f"claims {claims}")
    assert_that(set(claims), has_length(len(names)), f"claims {claims}")


@then(
    "{a:Session} holds the payment {first:Reference} and {b:Session} holds the payment {second:Reference}"
)
def step_claims_are(context, a, first, b, second):
    claims = {name: context.sessions.finish(name).value for name in (a, b)}
    assert_that(claims, equal_to({a: first, b: second}))


@then("no session waited")
def step_no_wait(context):
    waits = {s.name: a.waited_for for s in context.sessions for a in s.actions if a.waited_for}
    assert_that(waits, equal_to({}))


@then(
    "exactly one of {a:Session} and {b:Session} fails with {condition:Condition}, and the other completes"
)
def step_one_victim(context, a, b, condition):
    outcomes = {name: context.sessions.finish(name) for name in (a, b)}
    failed = [name for name, o in outcomes.items() if o.condition == condition]
    assert_that(failed, has_length(1), f"sessions that failed with {condition}")
    (survivor,) = {a, b} - set(failed)
    assert_that(outcomes[survivor], succeeds())


@then("{name:Session}'s transfer succeeds after {attempts:d} attempts")
@then("{name:Session}'s transfer succeeds after {attempts:d} attempt")
@then("{name:Session}'s payment succeeds after {attempts:d} attempt")
def step_session_attempts(context, name, attempts):
    outcome = context.sessions.finish(name)
    assert_that(outcome, succeeds())
    assert_that(outcome.value.attempts, equal_to(attempts), f"{name}'s attempts")
    assert_that(outcome.value.already_applied, equal_to(False), f"{name}'s operation was new")


@then("{name:Session}'s payment succeeds")
def step_session_paid(context, name):
    outcome = context.sessions.finish(name)
    assert_that(outcome, succeeds())
    assert_that(outcome.value.already_applied, equal_to(False), f"{name}'s payment already applied")


@then("{name:Session}'s payment succeeds, reporting the operation as already applied")
@then("{name:Session}'s transfer succeeds, reporting the operation as already applied")
def step_session_applied_before(context, name):
    outcome = context.sessions.finish(name)
    assert_that(outcome, succeeds())
    assert_that(
        outcome.value.already_applied, equal_to(True), f"{name}'s operation already applied"
    )


@then("no session failed with {condition:Condition}")
def step_none_failed(context, condition):
    context.sessions.finish_all()
    failed = [s.name for s in context.sessions if s.failed_with(condition)]
    assert_that(failed, equal_to([]))


# -- isolation verdicts ----------------------------------------------------------------


@then("{anomaly:Anomaly} is {verdict:Verdict} at {level:Level}: {how:How}")
def step_verdict(context, anomaly, verdict, level, how):
    sessions = context.sessions
    sessions.finish_all()
    levels = {s.name: s.isolation for s in sessions}
    assert_that(levels, equal_to({s.name: level for s in sessions}), "isolation levels used")
    unexpected = [
        o.describe()
        for s in sessions
        for o in s.outcomes()
        if o.error is not None and o.condition not in EXPECTED_FAILURES
    ]
    assert_that(unexpected, equal_to([]), "failures no anomaly explains")
    observation = Observation(
        context.history, sessions, context.initial_balances, context.audit.balances()
    )
    observed = judge(anomaly, level, observation)
    context.matrix.record(observed)
    transcript = "\n".join(line for lines in sessions.transcripts().values() for line in lines)
    assert_that(str(observed), equal_to(f"{anomaly} is {verdict} at {level}: {how}"), transcript)


#: How a transaction may fail in an anomaly's interleaving: it was chosen to abort,
#: and then its remaining statements are refused until it ends.
EXPECTED_FAILURES = {"serialization_failure", "in_failed_sql_transaction"}
