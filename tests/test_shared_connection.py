"""One checkout of the run's admin engine shared by the guards: pinged once, replaced once
broken."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from failspec.harness.scenario.workspace import Run, SharedConnection

pytestmark = pytest.mark.server


def test_reads_in_a_row_share_one_checkout_and_give_it_back(run: Run) -> None:
    checkouts = []
    sa.event.listen(run.admin, "checkout", lambda *_: checkouts.append(1))
    shared = SharedConnection(run.admin)
    pids = {shared().exec_driver_sql("SELECT pg_backend_pid()").scalar() for _ in range(3)}
    assert (len(pids), len(checkouts), run.admin.pool.checkedout()) == (1, 1, 1)
    shared.close()
    assert run.admin.pool.checkedout() == 0


def test_a_connection_the_server_ended_is_replaced_at_the_next_read(run: Run) -> None:
    # SQLAlchemy refuses to reuse a Connection a disconnect invalidated (PendingRollbackError);
    # a fresh checkout, as each read used to make, reads again.
    shared = SharedConnection(run.admin)
    first = shared().exec_driver_sql("SELECT pg_backend_pid()").scalar()
    with run.admin.connect() as other:
        other.exec_driver_sql(f"SELECT pg_terminate_backend({first}, 5000)")
    with pytest.raises(sa.exc.OperationalError):
        shared().exec_driver_sql("SELECT 1")
    second = shared().exec_driver_sql("SELECT pg_backend_pid()").scalar()
    assert second != first
    shared.close()
    assert run.admin.pool.checkedout() == 0
