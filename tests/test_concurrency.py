"""The concurrent-session driver: finished, blocked, paused, stuck — told by the server."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from failspec.harness.concurrency.interleaving import Gate, Interleaving, Stuck
from failspec.harness.scenario.workspace import Run, Workspace
from failspec.harness.waiting import until

pytestmark = pytest.mark.server


@pytest.fixture
def workspace(run: Run) -> Iterator[Workspace]:
    ws = run.workspace("concurrency test")
    with run.admin.connect() as conn:
        conn.execute(sa.text(f"CREATE TABLE {ws.schema}.t (id int PRIMARY KEY, v int)"))
        conn.execute(sa.text(f"INSERT INTO {ws.schema}.t VALUES (1, 10)"))
    yield ws
    ws.close()


@pytest.fixture
def sessions(workspace: Workspace) -> Iterator[Interleaving]:
    interleaving = Interleaving(workspace, timeout=1.0)
    yield interleaving
    interleaving.close()


def _update(sessions: Interleaving, name: str) -> object:
    session = sessions[name]
    return lambda: session.conn.exec_driver_sql("UPDATE t SET v = v + 1 WHERE id = 1").rowcount


def _commit(sessions: Interleaving, name: str) -> object:
    session = sessions[name]
    return lambda: session.conn.commit()


def test_an_action_that_takes_no_lock_finishes(sessions: Interleaving) -> None:
    assert sessions.perform("T1", "update", _update(sessions, "T1")) == "finished"
    assert sessions.finish("T1").value == 1


def test_an_action_waiting_for_a_lock_returns_blocked_and_names_the_holder(
    sessions: Interleaving,
) -> None:
    sessions.perform("T1", "update", _update(sessions, "T1"))
    assert sessions.perform("T2", "update", _update(sessions, "T2")) == "blocked"
    assert sessions.blockers("T2") == ["T1"]
    assert not sessions["T2"].current.done
    sessions.perform("T1", "commit", _commit(sessions, "T1"))
    assert sessions.finish("T2").value == 1
    assert sessions["T2"].current.waited_for == ["T1"]


def test_a_session_that_would_hang_fails_at_the_deadline_naming_what_it_waits_for(
    sessions: Interleaving,
) -> None:
    sessions.perform("T1", "update", _update(sessions, "T1"))
    sessions.perform("T2", "update", _update(sessions, "T2"))
    with pytest.raises(Stuck) as stuck:
        sessions.finish("T2")
    message = str(stuck.value)
    assert "T2 is stuck: 'update'" in message
    assert "Lock/" in message  # the server's wait event
    assert "blocked by T1" in message


def test_a_paused_operation_returns_paused_and_goes_on_when_resumed(
    sessions: Interleaving,
) -> None:
    session = sessions["T1"]
    gate = Gate(session, "in the middle", timeout=1.0)
    session.gates["in the middle"] = gate

    def two_halves() -> str:
        gate(None)
        return "done"

    assert sessions.perform("T1", "two halves", two_halves) == "paused"
    assert sessions.resume("T1", "in the middle") == "finished"
    assert sessions.finish("T1").value == "done"


def test_close_cancels_a_waiting_session_and_leaves_no_thread_or_connection(
    sessions: Interleaving, workspace: Workspace
) -> None:
    sessions.perform("T1", "update", _update(sessions, "T1"))
    sessions.perform("T2", "update", _update(sessions, "T2"))
    sessions.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("failspec-T")]
    workspace.dispose_engines()
    # A closed connection's server process exits on its own shortly after (the leak guard
    # gives it a grace for that): it must go, not be gone at the very moment of the close.
    until(lambda: not workspace.open_backends(), timeout=5.0, what="the sessions' servers exiting")


def test_a_failed_action_is_captured_not_raised(sessions: Interleaving) -> None:
    session = sessions["T1"]
    fn = lambda: session.conn.exec_driver_sql("SELECT 1/0").scalar()  # noqa: E731
    assert sessions.perform("T1", "divide", fn) == "finished"
    assert sessions.finish("T1").condition == "division_by_zero"


def test_close_fails_a_paused_operation_instead_of_letting_it_go_on(
    sessions: Interleaving, workspace: Workspace
) -> None:
    # T1 pauses; if it went on, its update would wait for the lock T2 (closed later) holds.
    t1, t2 = sessions["T1"], sessions["T2"]
    gate = Gate(t1, "in the middle", timeout=5.0)
    t1.gates["in the middle"] = gate
    sessions.perform("T2", "lock", lambda: t2.conn.exec_driver_sql("SELECT * FROM t FOR UPDATE"))

    def update_after_pause() -> int:
        gate(None)
        return t1.conn.exec_driver_sql("UPDATE t SET v = 0").rowcount

    assert sessions.perform("T1", "update after a pause", update_after_pause) == "paused"
    action = t1.current
    sessions.close()
    assert action.done
    assert "closed while paused" in str(action.future.exception())
    with workspace.run.admin.connect() as conn:
        value = conn.execute(sa.text(f"SELECT v FROM {workspace.schema}.t")).scalar_one()
    assert value == 10  # the update never ran
