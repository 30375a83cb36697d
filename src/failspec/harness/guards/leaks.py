"""The leak guard: after every scenario, nothing of it may still hold the server.

The harness first closes what it opened for the scenario (its named sessions, the
application's sessions, the clients it simulated, the network proxy). Whatever is left
belongs to the data layer under specification, and is a leak:

* a pool of the scenario with connections still checked out (never returned);
* a server connection carrying the scenario's ``application_name`` once its pools are
  disposed (a connection made outside a pool and never closed), above all one still
  inside a transaction ("idle in transaction": its locks are held until it ends).

The run's own connections (``failspec:<run>:admin`` and ``…:observer``) carry other
names and are never counted.
"""

from __future__ import annotations

import contextlib

from sqlalchemy.engine import Connection

from failspec.harness.activity import backends_named
from failspec.harness.scenario.workspace import Workspace
from failspec.harness.waiting import WaitTimeout, until

#: How often the guard looks whether the closed connections' server processes have gone
#: (s). They usually go within 1 ms of the close (median 0.9 ms, p90 2.6 ms measured on
#: PostgreSQL 18.6 here), so a poll that still sees one waits little for the next.
POLL = 0.001


def find_leaks(workspace: Workspace, *, grace: float, conn: Connection | None = None) -> list[str]:
    """Dispose the scenario's pools and name whatever still holds the server.

    ``grace``: how long a closed connection's server process may take to exit (s).
    ``conn``: a connection of the run's admin engine to look on (default: one checked
    out for this call). Raises SQLAlchemy's ``DBAPIError`` when the server cannot answer.
    """
    found = [
        f"the pool of {name} still has {count} connection(s) checked out"
        for name, count in workspace.checked_out().items()
        if count
    ]
    workspace.dispose_engines()
    with contextlib.ExitStack() as own:
        # One checkout (one pre-ping) for every poll.
        admin = conn if conn is not None else own.enter_context(workspace.run.admin.connect())
        try:
            until(
                lambda: not workspace.open_backends(admin),
                timeout=grace, what="connections closing", interval=POLL,
            )  # fmt: skip
        except WaitTimeout:
            found.extend(_describe(workspace, admin))
    return found


def _describe(workspace: Workspace, conn: Connection) -> list[str]:
    leaks = []
    for backend in backends_named(conn, workspace.application_name):
        pid, state, query = backend.pid, backend.state, backend.query
        if state and state.startswith("idle in transaction"):
            age = backend.transaction_age
            seconds = age.total_seconds() if age is not None else 0.0
            leaks.append(
                f"a transaction left open for {seconds:.2f} s on server connection {pid} "
                f"({state}; last statement: {query!r})"
            )
        else:
            leaks.append(f"server connection {pid} still open ({state}; last: {query!r})")
    return leaks
