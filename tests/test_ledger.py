"""The ledger against a real server: operations, idempotency, imports, the fingerprint."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
import sqlalchemy as sa

from failspec.harness.guards import books
from failspec.harness.scenario.workspace import Run
from failspec.ledger import (
    SAMPLE_ACCOUNTS,
    SAMPLE_PAYMENTS,
    Ledger,
    Payment,
    ReferenceConflict,
    RetryPolicy,
    Transfer,
    UnknownAccount,
)

pytestmark = pytest.mark.server


@pytest.fixture
def ledger(server):
    run = Run(server, prepare=Ledger.create_tables)
    workspace = run.workspace("test_ledger")
    engine = workspace.engine()
    with engine.begin() as conn:
        Ledger.open_accounts(conn, SAMPLE_ACCOUNTS)
        Ledger.seed(conn, SAMPLE_PAYMENTS)
    yield Ledger(engine, retry=RetryPolicy(sleep=lambda s: None, rng=random.Random(0)))
    run.retire(workspace)
    run.close()


def state(ledger):
    with ledger.engine.connect() as conn:
        schema = conn.exec_driver_sql("SELECT current_schema()").scalar_one()
        return books.fingerprint(conn, schema), Ledger.balances(conn)


def test_seeding_credits_the_sample_accounts(ledger):
    fingerprint, balances = state(ledger)
    assert balances["alice"] == Decimal("100.00") and balances["dave"] == 0
    assert fingerprint.count == 3 and fingerprint.total == Decimal("425.75")


def test_a_repeated_payment_is_applied_once(ledger):
    payment = Payment("dave", Decimal("40.00"), "ref-1")
    first, second = ledger.pay(payment), ledger.pay(payment)
    assert not first.already_applied and second.already_applied
    assert first.transaction_id == second.transaction_id
    assert state(ledger)[1]["dave"] == Decimal("40.00")


def test_a_reference_reused_for_another_operation_is_refused(ledger):
    ledger.pay(Payment("dave", Decimal("40.00"), "ref-1"))
    before = state(ledger)
    with pytest.raises(ReferenceConflict):
        ledger.transfer(Transfer("alice", "bob", Decimal("40.00"), "ref-1"))
    assert state(ledger) == before


def test_a_transfer_to_an_unknown_account_undoes_its_first_leg(ledger):
    before = state(ledger)
    with pytest.raises(UnknownAccount):
        ledger.transfer(Transfer("alice", "nobody", Decimal("10.00"), "ref-2"))
    assert state(ledger) == before


def test_the_fingerprint_sees_a_one_cent_change(ledger):
    before = state(ledger)[0]
    with ledger.engine.begin() as conn:
        conn.execute(sa.text("UPDATE accounts SET balance = balance + 0.01 WHERE name = 'bob'"))
    after = state(ledger)[0]
    assert after != before and after.count == before.count


def test_an_import_row_by_row_keeps_valid_rows_and_explains_the_rest(ledger):
    report = ledger.import_payments(
        [
            Payment("dave", Decimal("1.00"), "ref-a"),
            Payment("dave", Decimal("-1.00"), "ref-b"),
            Payment(None, Decimal("1.00"), "ref-c"),
        ],
        per_row=True,
    )
    assert report.imported == ["ref-a"]
    assert [(r.reference, r.condition) for r in report.rejected] == [
        ("ref-b", "check_violation"),
        ("ref-c", "not_null_violation"),
    ]
