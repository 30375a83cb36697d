"""Faults injected inside the server: counted exactly, slow once, timed to a retry's wait."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
import sqlalchemy as sa

from failspec.harness.faults import server as server_faults
from failspec.harness.scenario.application import Application
from failspec.harness.scenario.workspace import Run, Workspace
from failspec.harness.servers import Server
from failspec.ledger import Ledger, Payment

pytestmark = pytest.mark.server


@pytest.fixture
def workspace(server: Server) -> Iterator[Workspace]:
    run = Run(server, prepare=Ledger.create_tables)
    workspace = run.workspace("faults")
    with workspace.observe() as conn:
        Ledger.open_accounts(conn, ["dave"])
        conn.commit()
    yield workspace
    workspace.close()
    run.close()


def pay(engine: sa.Engine, reference: str) -> None:
    with engine.begin() as conn:
        Ledger.record(conn, Payment("dave", Decimal("1.00"), reference))


def test_the_server_counts_every_attempt_whether_it_failed_or_not(workspace):
    server_faults.arm_insert_failures(workspace, "serialization_failure", 2)
    engine = workspace.engine()
    for reference in ("ref-1", "ref-2"):
        with pytest.raises(sa.exc.OperationalError, match="injected serialization_failure"):
            pay(engine, reference)
    pay(engine, "ref-3")

    assert server_faults.insert_attempts(workspace) == 3


def test_only_the_first_insert_is_slow_and_a_statement_timeout_cancels_it(workspace):
    server_faults.arm_slow_inserts(workspace, seconds=5.0, times=1)
    options = f"{workspace.connect_args()['options']} -c statement_timeout=100ms"
    engine = workspace.engine(connect_args={"options": options})
    started = time.monotonic()
    with pytest.raises(sa.exc.OperationalError) as cancelled:
        pay(engine, "ref-1")

    assert cancelled.value.orig.pgcode == "57014"  # query_canceled
    assert time.monotonic() - started < 4.0
    pay(engine, "ref-2")  # the second attempt is not slowed
    assert server_faults.insert_attempts(workspace) == 2


def test_an_action_timed_to_the_second_wait_runs_then_and_only_once(workspace):
    app = Application(workspace)
    seen: list[int] = []
    server_faults.during_wait(app, 2, lambda: seen.append(len(app.waits)))
    for delay in (0.01, 0.02, 0.03):
        app._wait(delay)

    assert seen == [2]
