"""Replication faults a scenario inflicts on the run's cluster, and what each one did to
a payment: the cells of the replication matrix.

The verbs act on the cluster (``servers.replication.Cluster``): cut a standby off from
the primary, pause its replay, make the primary wait for it (``synchronous_standby_names``),
crash the primary and promote the standby, bring the old primary back as a standby. A
payment can be made in the background (:meth:`Failover.start`) so that a COMMIT waiting
for a standby that is gone is seen waiting (``pg_stat_activity``'s ``SyncRep`` wait
event, docs: "Wait Events of Type IPC") before the failure falls.

Expected outcomes come from the PostgreSQL documentation: "Synchronous Replication"
(26.2.8) and the ``synchronous_commit`` setting (19.5.1): ``off`` and ``local`` do not
wait for a standby, ``remote_write`` waits until it has written the commit record to its
operating system, ``on`` until it has flushed it to durable storage, ``remote_apply``
until it has replayed it, so it is visible to queries there.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from failspec.harness import waiting
from failspec.harness.faults.healing import Healer
from failspec.harness.faults.proxy import FaultProxy
from failspec.harness.outcomes import Outcome, capture
from failspec.harness.servers.replication import Cluster

#: The synchronous_commit levels, weakest first (docs: 19.5.1, synchronous_commit).
LEVELS = ("off", "local", "remote_write", "on", "remote_apply")
#: The failures of the matrix, as the feature names them.
FAILURES = (
    "primary crash + promotion",
    "standby cut off + promotion",
    "network partition + promotion",
)
#: The ``application_name`` of a report run on the standby.
REPORT_APP = "failspec:report"
#: The standby a scenario means by "the standby".
STANDBY = "standby1"


@dataclass
class Cell:
    """What one payment met under one level and one failure."""

    #: Whether the application was told the payment was applied.
    acknowledged: bool
    #: Whether the COMMIT was still waiting when the failure fell.
    waited: bool
    #: What the application was told: "applied", or the condition of its error.
    told: str
    #: Whether the new primary holds the payment after the promotion.
    survived: bool


class ReplicationMatrix:
    """The run's cells, by level and failure (the last measurement of a cell wins)."""

    def __init__(self) -> None:
        self.cells: dict[str, dict[str, Cell]] = {}

    def record(self, level: str, failure: str, cell: Cell) -> None:
        """Keep ``cell`` as what ``failure`` did at ``level``."""
        self.cells.setdefault(level, {})[failure] = cell

    def as_json(self) -> dict[str, dict[str, dict[str, Any]]]:
        """{level: {failure: cell}}, in :data:`LEVELS` and :data:`FAILURES` order."""
        return {
            level: {f: asdict(row[f]) for f in FAILURES if f in row}
            for level in LEVELS
            if (row := self.cells.get(level))
        }

    def write(self, path: Path) -> None:
        """Write :meth:`as_json` to ``path`` (reports/replication-matrix.json)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_json(), indent=2) + "\n")


class Failover:
    """One scenario's replication faults on ``cluster``; ``application_name`` names the
    application's connections (to find its COMMIT waiting); ``timeout``: seconds any one
    wait here may take."""

    def __init__(self, cluster: Cluster, application_name: str, timeout: float) -> None:
        self.cluster = cluster
        self.application_name = application_name
        self.timeout = timeout
        self.level: str | None = None
        self.failure: str | None = None
        self._thread: threading.Thread | None = None
        self._outcome: Outcome | None = None
        #: Whether the background operation was waiting for a standby when it was seen.
        self.waited = False
        #: The acknowledged references the old primary held just before it crashed.
        self.on_old_primary: set[str] = set()
        self._settled = False
        self._paused = False
        self._cut = False
        self._partitioned = False
        self._standby_stopped = False
        #: The relay a partitioned standby streams through (embedded: the harness's
        #: fault proxy between the standby and the primary's TCP port).
        self._relay: FaultProxy | None = None
        self._report: threading.Thread | None = None
        self._report_outcome: list[Outcome] = []
        #: A cut-off standby reconnects, a paused replay resumes, by itself after
        #: ``healing.HEAL_AFTER`` seconds, so a regression fails its scenario instead of
        #: waiting for ever (a COMMIT waiting for the standby then completes).
        self._healer = Healer()

    def settle(self) -> None:
        """Before the scenario's first fault, once: let the standby replay everything the
        primary has so far (the scenario's opening ledger, written before any fault), so
        what a failure loses is only what the scenario does after."""
        if not self._settled:
            self.cluster.catch_up(STANDBY)
            self._settled = True

    # -- the cluster's state -----------------------------------------------------------

    def require_confirmation(self) -> None:
        """The primary waits for the standby to confirm each commit (it is named in
        ``synchronous_standby_names``), at the level each session's synchronous_commit
        says."""
        self.settle()
        self.cluster.require_synchronous(STANDBY)

    def cut_off(self) -> None:
        """Cut the standby off from the primary once it has everything so far."""
        self.settle()
        self.cluster.catch_up(STANDBY)
        self.cluster.cut(STANDBY)
        self._cut = True
        self._healer.arm(self._heal)
        self.failure = "standby cut off + promotion"

    def partition(self) -> None:
        """Partition the network between the primary and the standby once the standby
        has everything so far: from then on nothing travels between them, and the
        connection between them stays open, as when a link or a firewall silently drops
        the traffic. Neither server notices before its own timeout
        (``wal_sender_timeout``, ``wal_receiver_timeout``: 60 s by default, docs 19.6), so
        the primary still lists the standby as streaming in ``pg_stat_replication``.

        Embedded: the standby is made to stream through a relay of the harness (the fault
        proxy) that then carries nothing either way, its kernel still acknowledging.
        Docker: the standby's container leaves the cluster's network (it is unreachable
        from the application too until the partition heals). Healed after
        ``healing.HEAL_AFTER`` seconds, or before a promotion."""
        self.settle()
        self.cluster.catch_up(STANDBY)
        if self.cluster.topology.isolates:
            self.cluster.isolate(STANDBY)
        else:
            primary = self.cluster.primary.endpoint
            self._relay = FaultProxy((primary.host, primary.port)).start()
            self.cluster.stream_via(STANDBY, *self._relay.address)
            self._relay.timeout()
        self._partitioned = True
        self._healer.arm(self._heal)
        self.failure = "network partition + promotion"

    def primary_lists_standby_streaming(self) -> bool:
        """Whether the primary's ``pg_stat_replication`` shows the standby streaming."""
        return self.cluster.streams_to(STANDBY)

    def stop_standby(self) -> None:
        """Stop every process of the standby where it stands (SIGSTOP; docker's pause),
        once it has everything so far. Resumed after ``healing.HEAL_AFTER`` seconds."""
        self.settle()
        self.cluster.catch_up(STANDBY)
        self.cluster.pause(STANDBY)
        self._standby_stopped = True
        self._healer.arm(self._heal)

    def resume_standby(self) -> None:
        """Let the stopped standby run again."""
        self._healer.cancel()
        with self._healer.lock:
            self._standby_stopped = False
            self.cluster.resume(STANDBY)

    def pause_replay(self) -> None:
        """Pause the standby's replay once it has replayed everything so far."""
        self.settle()
        self.cluster.catch_up(STANDBY)
        self.cluster.pause_replay(STANDBY)
        self._paused = True
        self._healer.arm(self._heal)

    def delay_apply(self, seconds: float) -> None:
        """The standby applies each commit it receives ``seconds`` late
        (``recovery_min_apply_delay``; docs: a COMMIT at ``remote_apply`` waits for it)."""
        self.settle()
        self.cluster.set_on(STANDBY, "recovery_min_apply_delay", f"{round(seconds * 1000)}ms")

    def crash_and_promote(self, schema: str, references: list[str]) -> None:
        """Crash the primary (no shutdown) and promote the standby, as a failover
        manager would; the standby replays what it received first. Before the crash, the
        harness notes which of ``references`` (in ``schema``) the old primary held
        (:attr:`on_old_primary`), so a payment "lost by the promotion" is told apart from
        one that was never committed. Raises ``AssertionError`` if the old primary still
        accepts connections after the crash."""
        self.settle()
        self._healer.cancel()  # the standby becomes the primary: nothing to heal
        self._cut = self._paused = False
        self.failure = self.failure or "primary crash + promotion"
        old = self.cluster.primary_name
        if references:
            with self.cluster.control(old) as conn:
                self.on_old_primary = set(
                    conn.execute(
                        sa.text(
                            f"SELECT client_ref FROM {schema}.transactions "
                            "WHERE client_ref = ANY(:refs)"
                        ),
                        {"refs": references},
                    ).scalars()
                )
        self.cluster.crash(old)
        refused = self.cluster.member(old).refusal()
        assert refused is not None, f"the old primary ({old}) still accepts connections"
        if self._partitioned:
            # A failover manager promotes a standby it can reach: the partition heals,
            # and what the old primary had sent into it is gone with the old primary
            # (docker: its container and network namespace; embedded: the relay drops
            # what it held, rather than deliver it as a healed link would to a live peer).
            with self._healer.lock:
                self._partitioned = False
                if self._relay is not None:
                    self._relay.close()
                    self._relay = None
                else:
                    self.cluster.reconnect_network(STANDBY)
        self._heal()
        self.cluster.promote(STANDBY)

    # -- a payment in the background ---------------------------------------------------

    def _heal(self) -> None:
        with self._healer.lock, contextlib.suppress(Exception):
            if self._standby_stopped:
                self._standby_stopped = False
                self.cluster.resume(STANDBY)
            if self._partitioned:
                self._partitioned = False
                if self._relay is not None:
                    self._relay.restore()
                else:
                    self.cluster.reconnect_network(STANDBY)
            if self._cut:
                self._cut = False
                self.cluster.reconnect(STANDBY)
            if self._paused:
                self._paused = False
                self.cluster.resume_replay(STANDBY)

    def start(
        self, action: str, operation: Callable[[], Any], told: Callable[[str, Any], None]
    ) -> None:
        """Run ``operation`` in a thread; return once it has finished or its COMMIT waits
        for the standby (``wait_event = 'SyncRep'``) on the primary. ``told(action,
        result)`` is called, in that thread, the moment the operation succeeds (what the
        application was told, for the durability guard)."""
        outcome: list[Outcome] = []

        def run() -> None:
            done = capture(action, operation)
            if done.succeeded:
                told(action, done.value)
            outcome.append(done)

        self._thread = threading.Thread(target=run, name="failspec-payment", daemon=True)
        self._thread.start()
        self._result = outcome

        def settled() -> bool:
            if outcome:
                return True
            self.waited = self._waiting_for_standby()
            return self.waited

        waiting.until(settled, timeout=self.timeout, what=f"{action} finishing or waiting")

    def cancel_wait(self) -> None:
        """Cancel the application's COMMIT waiting for the standby, as an administrator
        would (``pg_cancel_backend``). PostgreSQL then ends the wait with a WARNING, "the
        transaction has already committed locally, but might not have been replicated",
        and COMMIT succeeds (docs: "Synchronous Replication")."""
        assert self.waited, "no COMMIT of the application was seen waiting for the standby"
        cancelled = self._cancel_waits()
        assert cancelled == 1, f"{cancelled} waiting COMMITs cancelled, not 1"

    def end_waiting_session(self) -> None:
        """End the session of the application's COMMIT waiting for the standby, as an
        administrator would (``pg_terminate_backend``): PostgreSQL sends the WARNING
        "canceling the wait for synchronous replication and terminating connection due to
        administrator command" (same DETAIL: committed locally) and closes the
        connection (src/backend/replication/syncrep.c)."""
        assert self.waited, "no COMMIT of the application was seen waiting for the standby"
        ended = self._signal_waits("pg_terminate_backend")
        assert ended == 1, f"{ended} waiting sessions ended, not 1"

    def _cancel_waits(self) -> int:
        return self._signal_waits("pg_cancel_backend")

    def _signal_waits(self, function: str) -> int:
        with self.cluster.control(self.cluster.primary_name) as conn:
            return int(
                conn.execute(
                    sa.text(
                        f"SELECT count(*) FILTER (WHERE {function}(pid)) "
                        "FROM pg_stat_activity WHERE application_name = :a "
                        "AND wait_event = 'SyncRep'"
                    ),
                    {"a": self.application_name},
                ).scalar_one()
            )

    def _waiting_for_standby(self) -> bool:
        with self.cluster.control(self.cluster.primary_name) as conn:
            return bool(
                conn.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = :a "
                        "AND wait_event = 'SyncRep'"
                    ),
                    {"a": self.application_name},
                ).scalar()
            )

    def commit_waiting(self) -> bool:
        """Whether the background operation is still running and its COMMIT waits for
        the standby now (``wait_event = 'SyncRep'`` on the primary)."""
        thread = self._thread
        return thread is not None and thread.is_alive() and self._waiting_for_standby()

    def finish(self) -> Outcome:
        """The background operation's outcome, once it has ended (within the timeout)."""
        thread = self._thread
        assert thread is not None, "no operation was started in the background"
        waiting.until(lambda: not thread.is_alive(), timeout=self.timeout, what="the operation")
        self._thread = None
        return self._result[0]

    def close(self) -> None:
        """Undo what would hold the scenario's end: every COMMIT of the application still
        waiting for the standby is cancelled (a thread waiting for one then ends), a paused replay
        resumed. The cluster itself is rebuilt for the next scenario (it was touched)."""
        self._healer.cancel()
        # A COMMIT the application gave up on (its deadline) still waits on the server.
        with contextlib.suppress(Exception):
            self._cancel_waits()
        thread = self._thread
        if thread is not None and thread.is_alive():
            waiting.until(lambda: not thread.is_alive(), timeout=self.timeout,
                          what="the application's payment to end")  # fmt: skip
        if STANDBY in self.cluster.members:
            self._paused = self._paused and STANDBY in self.cluster.standby_names()
            self._cut = False  # the cluster is rebuilt: a cut-off standby is not waited for
            self._heal()  # a stopped standby runs, a partition heals, replay resumes
        report = self._report
        if report is not None and report.is_alive():
            waiting.until(lambda: not report.is_alive(), timeout=self.timeout,
                          what="the report on the standby to end")  # fmt: skip
        if self._relay is not None:
            self._relay.close()
            self._relay = None

    # -- reading on the standby ------------------------------------------------------------

    def limit_replay_wait(self, seconds: float) -> None:
        """Replay on the standby waits at most ``seconds`` for queries in its way before
        it cancels them (``max_standby_streaming_delay``; docs 26.4.2 "Handling Query
        Conflicts")."""
        self.settle()
        self.cluster.set_on(STANDBY, "max_standby_streaming_delay", f"{round(seconds * 1000)}ms")

    def send_feedback(self) -> None:
        """The standby tells the primary the oldest snapshot its queries use
        (``hot_standby_feedback``), so VACUUM on the primary keeps the row versions they
        may read (docs 26.4.2). Returns once the primary holds it (the standby's slot in
        ``pg_replication_slots`` has an ``xmin``: through a slot the feedback goes there,
        not to ``pg_stat_replication.backend_xmin``)."""
        self.settle()
        self.cluster.set_on(STANDBY, "hot_standby_feedback", "on")
        waiting.until(
            lambda: self.cluster.primary_holds_feedback(STANDBY), timeout=self.timeout,
            what="the primary holding the standby's oldest snapshot",
        )  # fmt: skip

    def start_report(self, schema: str, sql: str, seconds: float) -> None:
        """Run ``sql`` on the standby in a thread, in ``schema``, padded to take at least
        ``seconds`` (``pg_sleep`` in the same statement, so the statement holds its
        snapshot that long); return once the standby shows it in that sleep
        (``pg_stat_activity``'s ``wait_event = 'PgSleep'``: its snapshot is taken; the
        connection's own first queries, SQLAlchemy's dialect set-up and the ``SET``, are
        active too, but never sleep). :meth:`report` gives its outcome."""
        self.settle()
        member = self.cluster.member(STANDBY)
        statement = sa.text(f"SELECT * FROM ({sql}) AS report, pg_sleep(:s)")
        outcome: list[Outcome] = []

        def read() -> list[Any]:
            engine = member.engine(
                poolclass=sa.pool.NullPool, connect_args={"application_name": REPORT_APP}
            )
            try:
                with engine.connect() as conn:
                    conn.execute(sa.text(f"SET search_path TO {schema}"))
                    return [row[:-1] for row in conn.execute(statement, {"s": seconds}).all()]
            finally:
                engine.dispose()

        def run() -> None:
            outcome.append(capture("the report on the standby", read))

        self._report_outcome = outcome
        self._report = threading.Thread(target=run, name="failspec-report", daemon=True)
        self._report.start()

        def running() -> bool:
            return bool(outcome) or bool(
                self.cluster._scalar(
                    STANDBY,
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = :a "
                    "AND wait_event = 'PgSleep'",
                    a=REPORT_APP,
                )
            )

        waiting.until(running, timeout=self.timeout, what="the report running on the standby")

    def report(self) -> Outcome:
        """The report's outcome, once it has ended (within the timeout)."""
        thread = self._report
        assert thread is not None, "no report was started on the standby"
        waiting.until(lambda: not thread.is_alive(), timeout=self.timeout, what="the report")
        return self._report_outcome[0]

    def vacuum(self, schema: str, table: str) -> None:
        """``VACUUM`` ``table`` of ``schema`` on the primary: it removes the row versions
        no snapshot it knows of can see, and writes their removal to the WAL, which the
        standby replays (docs 26.4.2: "cleanup records")."""
        with self.cluster.control(self.cluster.primary_name) as conn:
            conn.execute(sa.text(f"VACUUM {schema}.{table}"))

    def reads_on_standby(self, schema: str, sql: str, **params: Any) -> list[Any]:
        """Rows ``sql`` returns on the standby, in the scenario's schema."""
        with self.cluster.control(STANDBY) as conn:
            conn.execute(sa.text(f"SET search_path TO {schema}"))
            return list(conn.execute(sa.text(sql), params).all())

    def cell(self, outcome: Outcome, survived: bool) -> Cell:
        """The matrix's cell for the payment whose ``outcome`` the application saw, and
        whether the new primary holds it (``survived``)."""
        return Cell(
            acknowledged=outcome.succeeded,
            waited=self.waited,
            told="applied" if outcome.succeeded else (outcome.condition or "error"),
            survived=survived,
        )
