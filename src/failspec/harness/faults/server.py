"""Faults the server itself inflicts, armed per scenario and counted exactly.

``arm_insert_failures`` makes the next *n* inserts into the ledger's ``transactions``
table fail inside the server, with a real PostgreSQL error (``serialization_failure``,
``deadlock_detected``…) or by ending the connection (as an administrator's
``pg_terminate_backend`` would); ``arm_slow_inserts`` makes them slow instead. The count
lives in a sequence, which a rollback does not undo, so exactly *n* attempts fail however
the application retries, and :func:`insert_attempts` says how many attempts the server
saw — a count the application under test does not keep.

Everything lives in the scenario's schema and goes with it.

``ServerFaults`` crashes, restarts, pauses, resumes and shuts down the server itself, and
leaves it running when the scenario ends. :func:`during_wait` times a fault to the
ledger's n-th wait before a retry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import sqlalchemy as sa

from failspec.harness.faults.healing import Healer
from failspec.harness.scenario.workspace import Workspace
from failspec.harness.servers import Server

if TYPE_CHECKING:
    from failspec.harness.scenario.application import Application


#: The failure that ends the connection instead of raising an error.
LOST_CONNECTION = "lost_connection"
#: Not a failure: the insert takes the server the armed number of seconds, then succeeds.
SLOW = "slow"

_INSTALL = [
    "CREATE SEQUENCE IF NOT EXISTS failspec_fault_calls",
    "CREATE TABLE IF NOT EXISTS failspec_fault (failure text NOT NULL, times int NOT NULL, "
    "seconds float8 NOT NULL DEFAULT 0)",
    f"""
    CREATE OR REPLACE FUNCTION failspec_fault_fire() RETURNS trigger
    LANGUAGE plpgsql AS $$
    DECLARE armed record;
    BEGIN
      SELECT * INTO armed FROM failspec_fault LIMIT 1;
      IF FOUND AND nextval('failspec_fault_calls') <= armed.times THEN
        IF armed.failure = '{SLOW}' THEN
          PERFORM pg_sleep(armed.seconds);  -- ended early by a statement or lock timeout
          RETURN NEW;
        END IF;
        IF armed.failure = '{LOST_CONNECTION}' THEN
          PERFORM pg_terminate_backend(pg_backend_pid());
          PERFORM pg_sleep(60);  -- interrupted at once by the termination just requested
        END IF;
        RAISE EXCEPTION 'failspec: injected %', armed.failure USING ERRCODE = armed.failure;
      END IF;
      RETURN NEW;
    END $$
    """,
    "DROP TRIGGER IF EXISTS failspec_fault ON transactions",
    "CREATE TRIGGER failspec_fault BEFORE INSERT ON transactions "
    "FOR EACH ROW EXECUTE FUNCTION failspec_fault_fire()",
]


#: More attempts than any scenario makes: "every attempt fails".
EVERY_TIME = 2**31 - 1


def arm_insert_failures(workspace: Workspace, failure: str, times: int) -> None:
    """The next ``times`` inserts into ``transactions`` fail with ``failure`` (a PostgreSQL
    condition name, raised with its SQLSTATE inside the server, or LOST_CONNECTION); pass
    EVERY_TIME for all of them. Resets the count of :func:`insert_attempts`."""
    _arm(workspace, failure, times, 0.0)


def arm_slow_inserts(workspace: Workspace, seconds: float, times: int = 1) -> None:
    """The next ``times`` inserts into ``transactions`` take the server ``seconds`` (s)
    longer (``pg_sleep``, which a statement timeout cancels); later ones are not slowed.
    Resets the count of :func:`insert_attempts`."""
    _arm(workspace, SLOW, times, seconds)


def _arm(workspace: Workspace, failure: str, times: int, seconds: float) -> None:
    with workspace.observe() as conn:
        for statement in _INSTALL:
            conn.execute(sa.text(statement))
        conn.execute(sa.text("DELETE FROM failspec_fault"))
        conn.execute(
            sa.text("INSERT INTO failspec_fault VALUES (:failure, :times, :seconds)"),
            {"failure": failure, "times": times, "seconds": seconds},
        )
        conn.execute(sa.text("SELECT setval('failspec_fault_calls', 1, false)"))
        conn.commit()


def insert_attempts(workspace: Workspace) -> int:
    """How many inserts into ``transactions`` the server began since a fault was armed
    (committed or not: the count is a sequence, which no rollback undoes)."""
    with workspace.observe() as conn:
        return conn.execute(
            sa.text(
                "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM failspec_fault_calls"
            )
        ).scalar_one()


def during_wait(app: Application, number: int, action: Callable[[], None]) -> None:
    """Run ``action`` once, while the application's ledger waits before a retry for the
    ``number``-th time (1 = the wait after the first failure). If the ledger never waits
    that often, ``action`` never runs."""
    if number <= 1:
        app.during_next_wait = action
        return
    app.during_next_wait = lambda: during_wait(app, number - 1, action)


class ServerFaults:
    """Crash, restart, pause and resume the run's server for one scenario, and put it back
    (running, not paused) when the scenario ends, whatever happened in it."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.down = False
        self.paused = False
        self.log: list[str] = []
        self._healer = Healer()

    def crash(self) -> None:
        self.down = True
        self.server.crash()
        self.log.append("server crashed")

    def restart(self) -> None:
        self.server.restart()
        self.down = False
        self.log.append("server restarted")

    def shut_down_smart(self) -> None:
        """Begin a smart shutdown: the server refuses new connections with
        ``cannot_connect_now`` ("the database system is shutting down") and lets the
        sessions already open go on; it stops once they have all ended. Returns once it
        refuses. :meth:`restart` (or the end of the scenario) starts it again."""
        self.down = True
        self.server.shut_down_smart()
        self.log.append("server shutting down (smart)")

    def expect_refusal(self, condition: str) -> None:
        """Assert that the server refuses a new connection now, with ``condition``
        (a condition name of :mod:`failspec.conditions`, e.g. ``connection_refused``)."""
        refusal = self.server.refusal()
        said = "accepted it" if refusal is None else f"refused it with {refusal}"
        assert refusal == condition, f"a new connection: the server {said}, not {condition}"
        self.log.append(f"server refused a new connection with {condition}")

    def pause(self) -> None:
        """Freeze the server; it resumes by itself after ``HEAL_AFTER`` seconds, so a
        request that nothing else bounds fails its scenario instead of hanging the run."""
        self.paused = True
        self.server.pause()
        self.log.append("server paused")
        self._healer.arm(self.resume)

    def resume(self) -> None:
        with self._healer.lock:
            self._healer.cancel()
            if not self.paused:
                return
            self.server.resume()
            self.paused = False
            self.log.append("server resumed")

    def close(self) -> None:
        if self.paused:
            self.resume()
        if self.down:
            self.restart()
