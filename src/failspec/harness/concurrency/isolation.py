"""Isolation anomalies: what concurrent transactions do to accounts, and what it means.

Sessions act on a small set of accounts, one statement per action, the way Hermitage's
tests do (github.com/ept/hermitage, postgres.md). Every action that reads or writes is
written to a :class:`History`. After the sessions finish, a *detector* looks at that
history and at the committed balances and decides, from what actually happened, whether
the anomaly occurred ("allowed") or not ("prevented"), and what prevented it: a writer
that waited, a transaction aborted with ``serialization_failure``, or a snapshot that hid
the change. The expected verdicts live in the feature file (from PostgreSQL's
documentation, chapter "Transaction Isolation", and the literature); they are never
consulted here.

The run gathers every verdict into a matrix: an anomaly is "allowed" at a level when any
of its scenarios at that level observed it, else "prevented".
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from failspec.harness.concurrency.interleaving import ConcurrentSession, Interleaving

LEVELS = ("read committed", "repeatable read", "serializable")
ALLOWED, PREVENTED = "allowed", "prevented"
#: How an anomaly was prevented (or not), as the specification words it.
BY_ABORT = "a transaction fails with serialization_failure"
BY_WAIT = "a writer waits for the other to finish"
BY_SNAPSHOT = "the snapshot hides the change"
NOTHING = "nothing prevents it"


@dataclass(frozen=True)
class Event:
    seq: int
    session: str
    kind: str  # read | list | write | insert | delete | commit_sent | commit | rollback
    #: The account read, written or inserted (a list's or delete's label); "" for the
    #: events of a transaction's end, which concern no account.
    account: str = ""
    value: Any = None
    #: The statement's parameters, where a detector needs them (e.g. a predicate's amount).
    detail: Any = None


class History:
    """Every read and write the sessions made, numbered in the order the sessions
    recorded them: a statement's event is added once its result is back, and
    ``commit_sent`` just before a COMMIT goes out. A statement that waited for a lock is
    therefore recorded after whatever released the lock was sent."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self._tellers: dict[str, Teller] = {}

    def teller(self, session: ConcurrentSession) -> Teller:
        """The session's statements on the accounts, recorded in this history."""
        if session.name not in self._tellers:
            self._tellers[session.name] = Teller(session, self)
        return self._tellers[session.name]

    def add(
        self, session: str, kind: str, account: str = "", value: Any = None,
        detail: Any = None,
    ) -> None:  # fmt: skip
        with self._lock:
            self.events.append(Event(next(self._seq), session, kind, account, value, detail))

    def of(self, session: str, kind: str | None = None) -> list[Event]:
        return [e for e in self.events if e.session == session and kind in (None, e.kind)]

    def committed(self, session: str) -> Event | None:
        """The session's successful commit, if it committed (a COMMIT of a failed
        transaction is a rollback, so it is not counted)."""
        commits = self.of(session, "commit")
        return commits[-1] if commits else None

    def written_directly(self) -> set[str]:
        """Accounts that sessions which committed set, opened or closed directly (outside
        the ledger's operations): the money-conservation guard leaves their balances to the
        scenario."""
        accounts: set[str] = set()
        for event in self.events:
            if self.committed(event.session) is None:
                continue
            if event.kind in ("write", "insert"):
                accounts.add(event.account)
            elif event.kind == "delete":
                accounts.update(event.value or ())
        return accounts


#: What a session runs on its thread for one action.
Step = Callable[[], Any]


class Teller:
    """One session's statements on the accounts; each records what it did in the history.

    Each method returns the function a session runs on its own thread.
    """

    def __init__(self, session: ConcurrentSession, history: History) -> None:
        self.session = session
        self.history = history
        self.failed = False  # a statement of the current transaction failed

    def _guarded(self, fn: Callable[[sa.Connection], Any]) -> Step:
        def run() -> Any:
            try:
                return fn(self.session.conn)
            except Exception:
                self.failed = True
                raise

        return run

    def begin(self, level: str) -> Step:
        if level not in LEVELS:
            raise ValueError(f"{level!r} is not one of {LEVELS}")

        def run(conn: sa.Connection) -> str:
            conn.begin()
            conn.exec_driver_sql(f"SET TRANSACTION ISOLATION LEVEL {level.upper()}")
            self.failed = False
            # SHOW takes no snapshot: the transaction's snapshot stays with its first query.
            self.session.isolation = conn.exec_driver_sql("SHOW transaction_isolation").scalar_one()
            return self.session.isolation

        return self._guarded(run)

    def read(self, account: str) -> Step:
        def run(conn: sa.Connection) -> Decimal | None:
            value = conn.execute(
                sa.text("SELECT balance FROM accounts WHERE name = :a"), {"a": account}
            ).scalar()
            self.history.add(self.session.name, "read", account, value)
            return value

        return self._guarded(run)

    def list(self, where: str, params: dict[str, Any], label: str) -> Step:
        def run(conn: sa.Connection) -> list[tuple[str, Decimal]]:
            rows = [
                (name, balance)
                for name, balance in conn.execute(
                    sa.text(f"SELECT name, balance FROM accounts WHERE {where} ORDER BY name"),
                    params,
                )
            ]
            self.history.add(self.session.name, "list", label, rows)
            for name, balance in rows:
                self.history.add(self.session.name, "read", name, balance)
            return rows

        return self._guarded(run)

    def set_balance(self, account: str, value: Decimal | Callable[[], Decimal]) -> Step:
        def run(conn: sa.Connection) -> int:
            amount = value() if callable(value) else value
            count = conn.execute(
                sa.text("UPDATE accounts SET balance = :v WHERE name = :a"),
                {"v": amount, "a": account},
            ).rowcount
            if count:
                self.history.add(self.session.name, "write", account, amount)
            return count

        return self._guarded(run)

    def update_where(self, where: str, params: dict[str, Any], set_: str) -> Step:
        def run(conn: sa.Connection) -> int:
            rows = conn.execute(
                sa.text(f"UPDATE accounts SET {set_} WHERE {where} RETURNING name, balance"),
                params,
            ).all()
            for name, balance in rows:
                self.history.add(self.session.name, "write", name, balance)
            return len(rows)

        return self._guarded(run)

    def insert(self, account: str, balance: Decimal) -> Step:
        def run(conn: sa.Connection) -> int:
            conn.execute(
                sa.text("INSERT INTO accounts (name, balance) VALUES (:a, :b)"),
                {"a": account, "b": balance},
            )
            self.history.add(self.session.name, "insert", account, balance)
            return 1

        return self._guarded(run)

    def delete_where(self, where: str, params: dict[str, Any], label: str) -> Step:
        def run(conn: sa.Connection) -> int:
            names = list(
                conn.execute(
                    sa.text(f"DELETE FROM accounts WHERE {where} RETURNING name"), params
                ).scalars()
            )
            self.history.add(self.session.name, "delete", label, names, detail=params)
            return len(names)

        return self._guarded(run)

    def commit(self) -> Step:
        def run(conn: sa.Connection) -> None:
            self.history.add(self.session.name, "commit_sent")
            conn.commit()
            # COMMIT of a transaction in which a statement failed rolls it back silently.
            self.history.add(self.session.name, "rollback" if self.failed else "commit")

        return self._guarded(run)

    def rollback(self) -> Step:
        def run(conn: sa.Connection) -> None:
            conn.rollback()
            self.history.add(self.session.name, "rollback")

        return self._guarded(run)


@dataclass
class Observation:
    """What the detectors look at: the history, the sessions, and the committed state."""

    history: History
    sessions: Interleaving
    initial: dict[str, Decimal]
    final: dict[str, Decimal]

    def committed(self, name: str) -> bool:
        return self.history.committed(name) is not None

    def reads(self, name: str, account: str | None = None) -> list[Event]:
        return [e for e in self.history.of(name, "read") if account in (None, e.account)]

    def lists(self, name: str) -> list[Event]:
        return self.history.of(name, "list")

    def writes(self, name: str) -> list[Event]:
        return self.history.of(name, "write")

    def uncommitted_values(self, writer: str) -> dict[str, set[Decimal]]:
        """Values ``writer`` wrote that never became committed state: every value of an
        aborted transaction, and all but the last write to an account of a committed one."""
        values: dict[str, set[Decimal]] = {}
        writes = self.writes(writer)
        for index, event in enumerate(writes):
            later = any(w.account == event.account for w in writes[index + 1 :])
            if later or not self.committed(writer):
                values.setdefault(event.account, set()).add(event.value)
        return values

    def read_from(self, reader: str, writer: str) -> bool:
        """Did ``reader`` see a value ``writer`` wrote, before ``writer`` committed?"""
        commit = self.history.committed(writer)
        written = {(w.account, w.value) for w in self.writes(writer)}
        return any(
            (r.account, r.value) in written and (commit is None or r.seq < commit.seq)
            for r in self.reads(reader)
        )

    def failed_with(self, condition: str) -> bool:
        return any(s.failed_with(condition) for s in self.sessions)

    def waited(self) -> bool:
        return any(a.waited_for for s in self.sessions for a in s.actions)


Detector = Callable[[Observation], bool]


def _dirty_write(o: Observation) -> bool:
    """G0: T2 overwrote a row T1 had written before T1 ended (its COMMIT or ROLLBACK was
    not yet sent), or the committed state mixes the two writers' values."""
    ends = [e.seq for e in o.history.of("T1") if e.kind in ("commit_sent", "rollback")]
    t1_end = ends[0] if ends else float("inf")
    overwrote = any(
        w1.account == w2.account and w1.seq < w2.seq < t1_end
        for w1 in o.writes("T1")
        for w2 in o.writes("T2")
    )
    return overwrote or _mixed_writers(o)


def _mixed_writers(o: Observation) -> bool:
    """The committed state mixes two writers' values: no serial order explains it."""
    writers = {}
    for account in {e.account for name in ("T1", "T2") for e in o.writes(name)}:
        writers[account] = {
            name
            for name in ("T1", "T2")
            if o.committed(name)
            and [w.value for w in o.writes(name) if w.account == account][-1:]
            == [o.final.get(account)]
        }
    return bool(writers) and not set.intersection(*writers.values())


def _dirty_read(o: Observation) -> bool:
    """G1a/G1b: T2 read a value of T1's that never became committed state."""
    dirty = o.uncommitted_values("T1")
    return any(r.value in dirty.get(r.account, set()) for r in o.reads("T2"))


def _circular_flow(o: Observation) -> bool:
    """G1c: each of T1 and T2 saw the other's write before it committed."""
    return o.read_from("T1", "T2") and o.read_from("T2", "T1")


def _observed_vanishes(o: Observation) -> bool:
    """OTV: having seen T1's effects, T3 later sees one of them undone by a transaction
    that had not committed (or by nothing at all)."""
    t1 = {(w.account, w.value) for w in o.writes("T1")}
    t2_commit = o.history.committed("T2")
    t2 = {(w.account, w.value) for w in o.writes("T2")}
    seen_t1 = False
    for read in o.reads("T3"):
        if (read.account, read.value) in t1:
            seen_t1 = True
            continue
        if not seen_t1:
            continue
        dirty = (read.account, read.value) in t2 and (t2_commit is None or read.seq < t2_commit.seq)
        vanished = read.value == o.initial.get(read.account)
        if dirty or vanished:
            return True
    return False


def _predicate_preceders(o: Observation) -> bool:
    """PMP: a later predicate read of T1 sees an account T2 inserted after T1's first one."""
    inserted = {e.account for e in o.history.of("T2", "insert")}
    lists = o.lists("T1")
    return len(lists) > 1 and any(name in inserted for name, _ in lists[-1].value)


def _write_predicate_preceders(o: Observation) -> bool:
    """PMP over a write predicate: T2 deleted the accounts holding an amount, succeeded,
    and then still sees an account holding that amount."""
    deletes = o.history.of("T2", "delete")
    lists = o.lists("T2")
    return bool(deletes) and bool(lists) and lists[-1].seq > deletes[-1].seq and lists[-1].value


def _lost_update(o: Observation) -> bool:
    """P4: both read-modify-writes committed, yet the balance holds only one increment."""
    if not (o.committed("T1") and o.committed("T2")):
        return False
    account = o.writes("T1")[0].account
    start = o.initial[account]
    increments = [o.writes(n)[-1].value - o.reads(n, account)[0].value for n in ("T1", "T2")]
    return o.final[account] != start + sum(increments)


def _read_skew(o: Observation) -> bool:
    """G-single: T1 committed having seen an account at two balances, or a total of
    balances that no committed state ever had (T2's change keeps the total)."""
    if not o.committed("T1"):
        return False  # reads of a transaction that did not commit prove nothing
    seen: dict[str, set[Decimal]] = {}
    for read in o.reads("T1"):
        seen.setdefault(read.account, set()).add(read.value)
    if any(len(values) > 1 for values in seen.values()):
        return True
    if set(seen) == set(o.initial):
        return sum(v for values in seen.values() for v in values) != sum(o.initial.values())
    return False


def _write_after_skewed_read(o: Observation) -> bool:
    """G-single over a write predicate: T1, which read the balances as they were before
    T2, deleted by a predicate and committed, and the delete did not match what its own
    view held (it matched T2's committed rows instead)."""
    deletes = o.history.of("T1", "delete")
    if not deletes or not o.committed("T1"):
        return False
    amount = deletes[-1].detail["v"]
    in_view = {name for name, balance in o.initial.items() if balance == amount}
    return set(deletes[-1].value) != in_view


def _write_skew(o: Observation) -> bool:
    """G2-item: T1 and T2 each read, at its old value, the account the other changed,
    and both committed (each must come before the other: a cycle)."""

    def read_old_value_of_others_write(reader: str, writer: str) -> bool:
        written = {w.account for w in o.writes(writer)}
        return any(
            r.account in written and r.value == o.initial.get(r.account) for r in o.reads(reader)
        )

    return (
        o.committed("T1")
        and o.committed("T2")
        and read_old_value_of_others_write("T1", "T2")
        and read_old_value_of_others_write("T2", "T1")
    )


def _predicate_cycle(o: Observation) -> bool:
    """G2: T1 and T2 each searched, each missed the account the other then opened, and
    both committed."""

    def missed(searcher: str, opener: str) -> bool:
        opened = {e.account for e in o.history.of(opener, "insert")}
        found = {name for event in o.lists(searcher) for name, _ in event.value}
        return bool(opened) and bool(o.lists(searcher)) and not opened & found

    return o.committed("T1") and o.committed("T2") and missed("T1", "T2") and missed("T2", "T1")


def _read_only_anomaly(o: Observation) -> bool:
    """G2 with three transactions: T3 saw T2's change and committed, and T1 — which read
    before T2 wrote, so must come before T2 — still wrote and committed after T3 read."""
    t2 = {(w.account, w.value) for w in o.writes("T2")}
    t3_saw_t2 = any((r.account, r.value) in t2 for r in o.reads("T3"))
    return t3_saw_t2 and o.committed("T3") and bool(o.writes("T1")) and o.committed("T1")


def _saw_old_values(o: Observation) -> str | None:
    """G1c's cause when prevented: each read the row the other changed at its old value
    (the snapshot hid the change), whatever happened to them afterwards."""
    for reader, writer in (("T1", "T2"), ("T2", "T1")):
        written = {w.account for w in o.writes(writer)}
        reads = [r for r in o.reads(reader) if r.account in written]
        if not reads or any(r.value != o.initial.get(r.account) for r in reads):
            return None
    return BY_SNAPSHOT


@dataclass(frozen=True)
class Anomaly:
    id: str
    detector: Detector
    #: What prevented it, where the general rule (an abort, else a wait, else the
    #: snapshot) would name something that happened for another reason.
    cause: Callable[[Observation], str | None] | None = None


#: The anomalies a scenario may name, as the specification words them.
ANOMALIES: dict[str, Anomaly] = {
    "dirty write (G0)": Anomaly("G0", _dirty_write),
    "aborted read (G1a)": Anomaly("G1a", _dirty_read),
    "intermediate read (G1b)": Anomaly("G1b", _dirty_read),
    "circular information flow (G1c)": Anomaly("G1c", _circular_flow, _saw_old_values),
    "observed transaction vanishes (OTV)": Anomaly("OTV", _observed_vanishes),
    "predicate-many-preceders (PMP)": Anomaly("PMP", _predicate_preceders),
    "predicate-many-preceders over a write predicate (PMP)": Anomaly(
        "PMP", _write_predicate_preceders
    ),
    "lost update (P4)": Anomaly("P4", _lost_update),
    "read skew (G-single)": Anomaly("G-single", _read_skew),
    "read skew over predicates (G-single)": Anomaly("G-single", _read_skew),
    "read skew over a write predicate (G-single)": Anomaly("G-single", _write_after_skewed_read),
    "write skew (G2-item)": Anomaly("G2-item", _write_skew),
    "anti-dependency cycle (G2)": Anomaly("G2", _predicate_cycle),
    "anti-dependency cycle of three transactions (G2)": Anomaly("G2", _read_only_anomaly),
}


@dataclass(frozen=True)
class Verdict:
    anomaly: str
    level: str
    verdict: str
    how: str

    def __str__(self) -> str:
        return f"{self.anomaly} is {self.verdict} at {self.level}: {self.how}"


def judge(anomaly: str, level: str, observation: Observation) -> Verdict:
    """Decide from what happened whether ``anomaly`` occurred, and what stopped it."""
    known = ANOMALIES[anomaly]
    if known.detector(observation):
        return Verdict(anomaly, level, ALLOWED, NOTHING)
    cause = known.cause(observation) if known.cause is not None else None
    if cause is not None:
        how = cause
    elif observation.failed_with("serialization_failure"):
        how = BY_ABORT
    elif observation.waited():
        how = BY_WAIT
    else:
        how = BY_SNAPSHOT
    return Verdict(anomaly, level, PREVENTED, how)


@dataclass
class Matrix:
    """The verdicts of the run, by anomaly id and isolation level."""

    cells: dict[str, dict[str, str]] = field(default_factory=dict)

    def record(self, verdict: Verdict) -> None:
        row = self.cells.setdefault(ANOMALIES[verdict.anomaly].id, {})
        if row.get(verdict.level) != ALLOWED:  # one observed variant makes it allowed
            row[verdict.level] = verdict.verdict

    def as_json(self) -> dict[str, dict[str, str]]:
        order = list(dict.fromkeys(a.id for a in ANOMALIES.values()))
        return {
            anomaly: {level: row[level] for level in LEVELS if level in row}
            for anomaly in order
            if (row := self.cells.get(anomaly))
        }

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_json(), indent=2) + "\n")
