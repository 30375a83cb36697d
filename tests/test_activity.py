"""What the server shows of a named connection's process (failspec.harness.activity)."""

from __future__ import annotations

from failspec.harness.activity import Backend


def backend(state, wait_type, wait):
    return Backend(1, state, wait_type, wait, None, "SELECT 1")


def test_a_process_waits_on_an_event_only_while_it_runs_a_statement():
    assert backend("active", "Lock", "transactionid").waits_on("Lock")
    assert backend("active", "Lock", "transactionid").waits_on("Lock", "transactionid")
    assert not backend("active", "Lock", "transactionid").waits_on("Lock", "tuple")
    assert not backend("active", "Client", "ClientRead").waits_on("Lock")
    assert not backend("idle", "Client", "ClientRead").waits_on("Client", "ClientRead")
