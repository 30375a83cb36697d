"""The books: money conservation and the fingerprint, read in one statement."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
import sqlalchemy as sa

from failspec.harness.guards.books import ZERO, Account, Books, Fingerprint, read_books
from failspec.harness.scenario.workspace import Run, Workspace
from failspec.ledger import Ledger, Payment, Transfer

D = Decimal
NOTHING = Fingerprint(0, ZERO, "")


def books(*accounts: Account) -> Books:
    return Books(NOTHING, accounts)


def test_a_balance_that_is_opening_plus_in_minus_out_balances() -> None:
    dave = Account("dave", D("25.00"), paid=D("40.00"), received=D("5.00"), sent=D("30.00"))
    assert books(dave).imbalances({"dave": D("10.00")}) == []


def test_a_balance_off_by_one_cent_is_named_with_its_records() -> None:
    bob = Account("bob", D("250.50"), paid=D("250.51"), received=ZERO, sent=ZERO)
    assert books(bob).imbalances({"bob": ZERO}) == [
        "bob holds 250.50, but its records give 250.51 (opening 0.00 + payments 250.51 "
        "+ transfers in 0.00 - transfers out 0.00)"
    ]


def test_an_account_the_harness_did_not_open_starts_at_zero() -> None:
    assert books(Account("zoe", D("1.00"), ZERO, ZERO, ZERO)).imbalances({}) != []


def test_an_account_that_has_gone_is_reported() -> None:
    assert books().imbalances({"erin": D("20.00")}) == ["the account erin (opening 20.00) has gone"]


def test_accounts_a_committed_session_wrote_directly_are_left_to_the_scenario() -> None:
    dave = Account("dave", D("11.00"), ZERO, ZERO, ZERO)
    opening = {"dave": D("10.00"), "erin": D("20.00")}
    assert books(dave).imbalances(opening, written_directly={"dave", "erin"}) == []


@pytest.fixture
def workspace(server) -> Iterator[Workspace]:
    run = Run(server, prepare=Ledger.create_tables)
    workspace = run.workspace("test_books")
    with workspace.observe() as conn:
        Ledger.open_accounts(conn, ["alice", "bob", "carol"])
        conn.commit()
    yield workspace
    run.retire(workspace)
    run.close()


def read(workspace: Workspace) -> Books:
    with workspace.run.admin.connect() as conn:
        return read_books(conn, workspace.schema)


def test_the_books_add_up_payments_and_transfers_per_account(workspace: Workspace) -> None:
    ledger = Ledger(workspace.engine())
    ledger.pay(Payment("alice", D("100.00"), "ref-1"))
    ledger.transfer(Transfer("alice", "bob", D("30.00"), "ref-2"))
    ledger.transfer(Transfer("bob", "alice", D("5.00"), "ref-3"))
    accounts = {a.name: a for a in read(workspace).accounts}
    assert accounts["alice"] == Account("alice", D("75.00"), D("100.00"), D("5.00"), D("30.00"))
    assert accounts["bob"] == Account("bob", D("25.00"), ZERO, D("30.00"), D("5.00"))
    assert accounts["carol"] == Account("carol", ZERO, ZERO, ZERO, ZERO)
    assert read(workspace).imbalances(dict.fromkeys(accounts, ZERO)) == []


def test_a_balance_changed_without_a_record_unbalances_the_books(workspace: Workspace) -> None:
    with workspace.engine().begin() as conn:
        conn.execute(sa.text("UPDATE accounts SET balance = balance + 1 WHERE name = 'carol'"))
    found = read(workspace).imbalances(dict.fromkeys(["alice", "bob", "carol"], ZERO))
    assert found == [
        "carol holds 1.00, but its records give 0.00 (opening 0.00 + payments 0.00 "
        "+ transfers in 0.00 - transfers out 0.00)"
    ]


def test_the_fingerprint_sees_a_status_change_and_counts_operations(workspace: Workspace) -> None:
    Ledger(workspace.engine()).pay(Payment("alice", D("1.00"), "ref-1"))
    before = read(workspace).fingerprint
    with workspace.engine().begin() as conn:
        conn.execute(sa.text("UPDATE transactions SET status = 'posted'"))
    after = read(workspace).fingerprint
    assert (before.count, before.total) == (after.count, after.total) == (1, D("1.00"))
    assert before.checksum != after.checksum
