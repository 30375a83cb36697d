"""Faults the server itself inflicts, armed per scenario and counted exactly.

``arm_insert_failures`` makes the next *n* inserts into the ledger's ``transactions``
table fail inside the server, with a real PostgreSQL error (``serialization_failure``,
``deadlock_detected``…) or by ending the connection (as an administrator's
``pg_terminate_backend`` would). The count lives in a sequence, which a rollback does
not undo, so exactly *n* attempts fail however the application retries.

Everything lives in the scenario's schema and goes with it.

``ServerFaults`` crashes, restarts, pauses and resumes the server itself, and leaves it
running when the scenario ends.
"""

from __future__ import annotations

import threading

import sqlalchemy as sa

from failspec.harness import waiting
from failspec.harness.servers import Server
from failspec.harness.workspace import Workspace

#: Faults that nothing else bounds (a paused server, packet loss, a silent proxy) heal
#: themselves after this long (s), so a regression fails its scenario instead of hanging.
HEAL_AFTER = 10.0

#: The failure that ends the connection instead of raising an error.
LOST_CONNECTION = "lost_connection"

_INSTALL = [
    "CREATE SEQUENCE IF NOT EXISTS failspec_fault_calls",
    "CREATE TABLE IF NOT EXISTS failspec_fault (failure text NOT NULL, times int NOT NULL)",
    f"""
    CREATE OR REPLACE FUNCTION failspec_fault_fire() RETURNS trigger
    LANGUAGE plpgsql AS $$
    DECLARE armed record;
    BEGIN
      SELECT * INTO armed FROM failspec_fault LIMIT 1;
      IF FOUND AND nextval('failspec_fault_calls') <= armed.times THEN
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


def arm_insert_failures(workspace: Workspace, failure: str, times: int) -> None:
    """The next ``times`` inserts into ``transactions`` fail with ``failure`` (a PostgreSQL
    condition name, or LOST_CONNECTION)."""
    with workspace.observe() as conn:
        for statement in _INSTALL:
            conn.execute(sa.text(statement))
        conn.execute(sa.text("DELETE FROM failspec_fault"))
        conn.execute(
            sa.text("INSERT INTO failspec_fault VALUES (:failure, :times)"),
            {"failure": failure, "times": times},
        )
        conn.execute(sa.text("SELECT setval('failspec_fault_calls', 1, false)"))
        conn.commit()


class ServerFaults:
    """Crash, restart, pause and resume the run's server for one scenario, and put it back
    (running, not paused) when the scenario ends, whatever happened in it."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.down = False
        self.paused = False
        self.log: list[str] = []
        self._healer: threading.Timer | None = None
        self._lock = threading.Lock()

    def crash(self) -> None:
        self.down = True
        self.server.crash()
        self.log.append("server crashed")

    def restart(self) -> None:
        self.server.restart()
        self.down = False
        self.log.append("server restarted")

    def pause(self) -> None:
        """Freeze the server; it resumes by itself after ``HEAL_AFTER`` seconds, so a
        request that nothing else bounds fails its scenario instead of hanging the run."""
        self.paused = True
        self.server.pause()
        self.log.append("server paused")
        self._healer = waiting.after(HEAL_AFTER, self.resume)

    def resume(self) -> None:
        with self._lock:
            if self._healer is not None:
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
