"""Generated concurrent workloads, recorded for the cycle checker, and the generated matrix.

Hand-written interleavings (``isolation``) find the anomalies someone thought of. Here
sessions run many random transactions at once, each on a connection of its own, at one
isolation level, and everything they read, wrote, committed and aborted is recorded; the
checker then infers what depended on what and looks for cycles (Elle's method: Kingsbury &
Alvaro, VLDB 2020; the dependencies and anomalies are Adya's, 1999: see ``cycles``).

Two workloads, in the scenario's schema:

* **list-append** (Elle's): a table of lists by key; each transaction reads a few lists
  and appends unique values to a few, written in two forms, each one statement:
  ``INSERT … ON CONFLICT (k) DO UPDATE SET v = t.v || EXCLUDED.v`` (the form of the
  possible G2-item reported against PostgreSQL 18.4), and ``UPDATE … SET v = v || …``
  followed, when no row was there yet, by an ``INSERT`` (which may fail with
  unique_violation when another session inserted it first: an aborted transaction).
  A key is retired after :data:`APPENDS_PER_KEY` appends and a fresh one takes its
  place, as Elle does, so that lists stay short and reads stay cheap. After the sessions
  finish, one more transaction reads every key used (the final read), so that the order
  of every append is known.
* **bank**: the ledger's accounts; each transaction is either a transfer through the
  ledger's own operation (``Ledger.transfer``, one attempt: a failed attempt is an aborted
  transaction of the history, not retried) or a read of every balance, one account per
  statement, in one transaction. At repeatable read and serializable every such read sees
  one snapshot, so its total is the books' total (PostgreSQL documentation, "Transaction
  Isolation": such a transaction "sees a snapshot as of the start of the first
  non-transaction-control statement"); at read committed each statement sees the
  commits made before it began, so the total may be one the books never had.

The transactions a seed generates are the same on every run; which session runs which,
and how the server interleaves them, is not. Aborted transactions (serialization_failure
at repeatable read and serializable, deadlock_detected, unique_violation of a concurrent
first insert, check_violation of an overdrawn transfer) are recorded with their
condition; any other failure ends the workload with an error.
"""

from __future__ import annotations

import functools
import itertools
import json
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout  # not the builtin on 3.10
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from failspec import drivers
from failspec.conditions import condition_of
from failspec.harness.concurrency import cycles
from failspec.harness.concurrency.isolation import LEVELS
from failspec.harness.scenario.workspace import Workspace
from failspec.ledger import Transfer
from failspec.ledger.port import DataLayer

#: A key takes this many appends before it is retired (Elle's default max-writes-per-key).
APPENDS_PER_KEY = 32
#: How many keys are in use at a time.
ACTIVE_KEYS = 8
#: The most operations a list-append transaction has (Elle's default max-txn-length).
MAX_OPS = 4
#: The conditions an aborted transaction may end with; any other failure is an error.
ABORTS = frozenset(
    {"serialization_failure", "deadlock_detected", "unique_violation", "check_violation"}
)
#: The longest any one statement of a workload may run (ms, scaled): a bound, never hit.
STATEMENT_TIMEOUT_MS = 10_000

LISTS_DDL = "CREATE TABLE IF NOT EXISTS gen_lists (k integer PRIMARY KEY, v integer[] NOT NULL)"
UPSERT = sa.text(
    "INSERT INTO gen_lists AS t (k, v) VALUES (:k, ARRAY[:x]) "
    "ON CONFLICT (k) DO UPDATE SET v = t.v || EXCLUDED.v"
)
UPDATE = sa.text("UPDATE gen_lists SET v = v || :x WHERE k = :k")
INSERT = sa.text("INSERT INTO gen_lists (k, v) VALUES (:k, ARRAY[:x])")
READ_LIST = sa.text("SELECT v FROM gen_lists WHERE k = :k")
READ_BALANCE = sa.text("SELECT balance FROM accounts WHERE name = :n")
#: The SQL forms an append is written in.
FORMS = ("insert on conflict do update", "update, else insert")

#: Each level's name in SQLAlchemy's isolation_level option.
SQLALCHEMY_LEVELS = {level: level.upper() for level in LEVELS}


class WorkloadError(AssertionError):
    """A workload could not run as generated: a failure no isolation level explains, or a
    session that did not finish within its bound."""


# -- generating transactions -------------------------------------------------------------


class ListAppends:
    """Elle's list-append transactions, drawn from ``seed``: the same sequence every run.

    Thread-safe: sessions take the next transaction as they are free."""

    def __init__(self, seed: int, transactions: int) -> None:
        self.rng = random.Random(seed)
        self.left = transactions
        self.active = list(range(ACTIVE_KEYS))
        self.appends = dict.fromkeys(self.active, 0)
        self.next_key = ACTIVE_KEYS
        self.values = itertools.count(1)
        self.ids = itertools.count(1)
        self.used: set[int] = set(self.active)
        self._lock = threading.Lock()

    def next(self) -> tuple[int, list[tuple[str, int, Any]]] | None:
        """The next transaction, ``(id, ops)``, each op ``("r", key, None)`` or ``("a",
        key, (value, form))``; None once all were handed out. Appends go in key order
        within a transaction (reads stay where they fall) so that two transactions never
        wait for each other's row locks in opposite orders: no deadlock."""
        with self._lock:
            if self.left <= 0:
                return None
            self.left -= 1
            ops: list[tuple[str, int, Any]] = []
            for _ in range(self.rng.randint(1, MAX_OPS)):
                key = self.rng.choice(self.active)
                if self.rng.random() < 0.5:
                    ops.append((cycles.READ, key, None))
                    continue
                form = self.rng.choice(FORMS)
                ops.append((cycles.APPEND, key, (next(self.values), form)))
                self.appends[key] += 1
                if self.appends[key] >= APPENDS_PER_KEY:
                    self.retire(key)
            places = [i for i, op in enumerate(ops) if op[0] == cycles.APPEND]
            in_order = sorted((ops[i] for i in places), key=lambda o: o[1])
            for place, op in zip(places, in_order, strict=True):
                ops[place] = op
            return next(self.ids), ops

    def retire(self, key: int) -> None:
        self.active[self.active.index(key)] = self.next_key
        self.appends[self.next_key] = 0
        self.used.add(self.next_key)
        self.next_key += 1


@dataclass(frozen=True)
class BankTransaction:
    id: int
    #: A transfer's (source, target, amount); None for a read of every balance.
    transfer: tuple[str, str, Decimal] | None


class BankOperations:
    """Transfers between the accounts and reads of every balance, half and half, drawn
    from ``seed``. Thread-safe."""

    def __init__(self, seed: int, transactions: int, accounts: list[str]) -> None:
        self.rng = random.Random(seed)
        self.left = transactions
        self.accounts = sorted(accounts)
        self.ids = itertools.count(1)
        self._lock = threading.Lock()

    def next(self) -> BankTransaction | None:
        with self._lock:
            if self.left <= 0:
                return None
            self.left -= 1
            if self.rng.random() < 0.5:
                return BankTransaction(next(self.ids), None)
            source, target = self.rng.sample(self.accounts, 2)
            return BankTransaction(
                next(self.ids), (source, target, Decimal(self.rng.randint(1, 20)))
            )


# -- running them ---------------------------------------------------------------------------


@dataclass
class Run:
    """What one workload run did: its history and figures."""

    workload: str
    level: str
    seed: int
    sessions: int
    duration_s: float = 0.0
    #: list-append: the checker's transactions; bank: the reads and transfers.
    history: list[Any] = field(default_factory=list)
    #: How many appends went out in each SQL form.
    forms: dict[str, int] = field(default_factory=dict)

    @property
    def committed(self) -> int:
        return sum(t.status == cycles.COMMITTED for t in self.history)

    @property
    def aborted(self) -> dict[str, int]:
        """How many transactions aborted, by condition."""
        counts: dict[str, int] = {}
        for t in self.history:
            if t.status == cycles.ABORTED:
                counts[t.condition or "aborted"] = counts.get(t.condition or "aborted", 0) + 1
        return counts


def session_engines(
    workspace: Workspace, level: str, sessions: int, timeout_scale: float
) -> list[Engine]:
    """One engine per session, each with a pool of one connection at ``level``, every
    statement bounded by :data:`STATEMENT_TIMEOUT_MS` (scaled)."""
    if level not in LEVELS:
        raise ValueError(f"{level!r} is not one of {LEVELS}")
    bound = round(STATEMENT_TIMEOUT_MS * timeout_scale)
    options = {"options": f"{workspace.connect_args()['options']} -c statement_timeout={bound}"}
    isolation = SQLALCHEMY_LEVELS[level]
    return [
        workspace.engine(
            label=f"generated session S{n}",
            pool_size=1,
            max_overflow=0,
            isolation_level=isolation,
            connect_args=options,
        )
        for n in range(1, sessions + 1)
    ]


def _in_parallel(work: list[Callable[[], None]], bound: float) -> None:
    """Run each of ``work`` on a thread of its own; raise the first failure, or
    WorkloadError when they have not all finished within ``bound`` seconds."""
    with ThreadPoolExecutor(len(work), thread_name_prefix="failspec-generated") as pool:
        futures = [pool.submit(each) for each in work]
        deadline = time.monotonic() + bound
        for future in futures:
            try:
                future.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                raise WorkloadError(f"the workload did not finish within {bound:.0f} s") from None


def _abort_condition(error: BaseException) -> str:
    condition = condition_of(error)
    if condition not in ABORTS:
        raise WorkloadError(
            f"a generated transaction failed with {condition or type(error).__name__}, "
            f"which no isolation level explains: {error}"
        ) from error
    return condition


def run_list_append(
    workspace: Workspace, level: str, *, sessions: int, transactions: int, seed: int,
    timeout_scale: float = 1.0,
) -> Run:  # fmt: skip
    """Run ``transactions`` list-append transactions from ``seed`` on ``sessions``
    sessions at ``level``, then the final read; return the recorded history.

    Raises WorkloadError on a failure no level explains, or past its bound (a second a
    transaction on one session, at least a minute, scaled)."""
    with workspace.observe() as conn:
        conn.execute(sa.text(LISTS_DDL))
        conn.commit()
    engines = session_engines(workspace, level, sessions, timeout_scale)
    generator = ListAppends(seed, transactions)
    run = Run("list-append", level, seed, sessions, forms=dict.fromkeys(FORMS, 0))
    lock = threading.Lock()

    def session(name: str, engine: Engine) -> None:
        with engine.connect() as conn:
            while (drawn := generator.next()) is not None:
                txn = _append_transaction(conn, name, *drawn)
                with lock:
                    run.history.append(txn)
                    for kind, _, value in drawn[1]:
                        if kind == cycles.APPEND:
                            run.forms[value[1]] += 1

    started = time.perf_counter()
    bound = max(60.0, transactions / sessions) * timeout_scale
    _in_parallel([functools.partial(session, f"S{n}", e) for n, e in enumerate(engines, 1)], bound)
    run.duration_s = time.perf_counter() - started
    with engines[0].connect() as conn:
        final = [(cycles.READ, key, None) for key in sorted(generator.used)]
        run.history.append(_append_transaction(conn, "final read", 0, final))
    for engine in engines:
        engine.dispose()
    return run


def _append_transaction(
    conn: Connection, session: str, txn_id: int, ops: list[tuple[str, int, Any]]
) -> cycles.Transaction:
    """Run one list-append transaction on ``conn``, recording each read's result."""
    done: list[cycles.Op] = []
    txn = cycles.Transaction(txn_id, session, done)
    try:
        conn.begin()
        for kind, key, value in ops:
            if kind == cycles.READ:
                read = conn.execute(READ_LIST, {"k": key}).scalar()
                done.append((cycles.READ, key, list(read) if read is not None else None))
                continue
            number, form = value
            if form == FORMS[0]:
                conn.execute(UPSERT, {"k": key, "x": number})
            elif conn.execute(UPDATE, {"k": key, "x": number}).rowcount == 0:
                conn.execute(INSERT, {"k": key, "x": number})
            done.append((cycles.APPEND, key, number))
        conn.commit()
    except sa.exc.DBAPIError as error:
        conn.rollback()
        # What it appended before the failure is kept: an aborted transaction's writes,
        # which no committed transaction may read (G1a).
        txn.status, txn.condition = cycles.ABORTED, _abort_condition(error)
    return txn


@dataclass
class BankRecord:
    """One bank transaction as it ended: a transfer, or a read of every balance."""

    id: int
    session: str
    transfer: tuple[str, str, Decimal] | None
    status: str = cycles.COMMITTED
    condition: str | None = None
    #: A read's balances, by account, in the order read.
    balances: dict[str, Decimal] = field(default_factory=dict)


def run_bank(
    workspace: Workspace, level: str, ledger_for: Callable[[Engine], DataLayer], *,
    accounts: list[str], sessions: int, transactions: int, seed: int,
    timeout_scale: float = 1.0,
) -> Run:  # fmt: skip
    """Run ``transactions`` bank transactions from ``seed`` on ``sessions`` sessions at
    ``level``: transfers through ``ledger_for(engine)`` (the application's ledger on the
    session's engine, one attempt each) and reads of every balance. Every transfer the
    ledger reports applied is noted as told to the application (the durability guard
    finds it after the scenario). Raises WorkloadError as :func:`run_list_append`."""
    engines = session_engines(workspace, level, sessions, timeout_scale)
    generator = BankOperations(seed, transactions, accounts)
    run = Run("bank", level, seed, sessions)
    lock = threading.Lock()

    #: SQLAlchemy's wrapper, or a driver's error from a layer on the driver alone.
    aborted_by: tuple[type[BaseException], ...] = (sa.exc.DBAPIError, *drivers.driver_errors())

    def session(name: str, engine: Engine) -> None:
        ledger = ledger_for(engine)
        while (drawn := generator.next()) is not None:
            record = BankRecord(drawn.id, name, drawn.transfer)
            try:
                if drawn.transfer is None:
                    record.balances = _read_balances(engine, generator.accounts)
                else:
                    source, target, amount = drawn.transfer
                    reference = f"gen-{seed}-{drawn.id}"
                    receipt = ledger.transfer(Transfer(source, target, amount, reference))
                    workspace.acknowledge(f"generated transfer {reference}", receipt)
            except aborted_by as error:
                record.status, record.condition = cycles.ABORTED, _abort_condition(error)
            with lock:
                run.history.append(record)

    started = time.perf_counter()
    bound = max(60.0, transactions / sessions) * timeout_scale
    _in_parallel([functools.partial(session, f"S{n}", e) for n, e in enumerate(engines, 1)], bound)
    run.duration_s = time.perf_counter() - started
    for engine in engines:
        engine.dispose()
    return run


def _read_balances(engine: Engine, accounts: list[str]) -> dict[str, Decimal]:
    """Every balance, one account per statement, in one transaction."""
    with engine.begin() as conn:
        return {name: conn.execute(READ_BALANCE, {"n": name}).scalar_one() for name in accounts}


# -- checking them ------------------------------------------------------------------------


#: The bank's one anomaly: a read of every balance whose total the books never had.
BANK_SKEW = "read skew over balances"


def check_bank(run: Run, total: Decimal) -> list[str]:
    """Every committed read of all balances whose total is not ``total``, explained."""
    found = []
    for record in run.history:
        if record.transfer is not None or record.status != cycles.COMMITTED:
            continue
        seen = sum(record.balances.values(), Decimal(0))
        if seen != total:
            balances = ", ".join(f"{name} {value}" for name, value in record.balances.items())
            found.append(
                f"{record.session}'s transaction {record.id} read {balances}: total {seen}, "
                f"not {total}: it saw part of a transfer"
            )
    return found


# -- the generated matrix --------------------------------------------------------------------


NEVER, ALLOWED = "never", "allowed"


@dataclass
class Cell:
    """One class at one level: what the specification says of it and what was found."""

    expected: str | None = None  # NEVER or ALLOWED, once a scenario says which
    found: int = 0
    example: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"expected": self.expected, "found": self.found, "example": self.example}


@dataclass
class Row:
    """One workload at one level: its figures and its cells."""

    transactions: int = 0
    committed: int = 0
    aborted: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0
    sessions: int = 0
    forms: dict[str, int] = field(default_factory=dict)
    cells: dict[str, Cell] = field(default_factory=dict)


class GeneratedMatrix:
    """The run's generated workloads: per workload and level, what was run and found.

    ``seed``: the run's seed (None: one is drawn now); every generated scenario of the
    run uses it, so ``-D seed=`` re-runs the same transactions."""

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed if seed is not None else secrets.randbelow(2**31)
        self.rows: dict[tuple[str, str], Row] = {}

    def record(self, run: Run, found: dict[str, list[str]]) -> None:
        """Note a run and what was found, by class (each finding explained)."""
        row = self.rows.setdefault((run.workload, run.level), Row())
        row.transactions += len(run.history)
        row.committed += run.committed
        for condition, count in run.aborted.items():
            row.aborted[condition] = row.aborted.get(condition, 0) + count
        row.duration_s += run.duration_s
        row.sessions = run.sessions
        for form, count in run.forms.items():
            row.forms[form] = row.forms.get(form, 0) + count
        for kind, findings in found.items():
            cell = row.cells.setdefault(kind, Cell())
            cell.found += len(findings)
            if findings and cell.example is None:
                cell.example = min(findings, key=len)

    def expect(self, workload: str, level: str, kind: str, expected: str) -> Cell:
        """Note what the specification says of ``kind`` at ``level``; return its cell."""
        cell = self.rows.setdefault((workload, level), Row()).cells.setdefault(kind, Cell())
        cell.expected = expected
        return cell

    def __bool__(self) -> bool:
        return bool(self.rows)

    def as_json(self) -> dict[str, Any]:
        """``{"seed", "workloads": {workload: {level: row}}}``, levels weakest first."""
        workloads: dict[str, dict[str, Any]] = {}
        for (workload, level), row in sorted(
            self.rows.items(), key=lambda item: (item[0][0], LEVELS.index(item[0][1]))
        ):
            workloads.setdefault(workload, {})[level] = {
                "transactions": row.transactions,
                "committed": row.committed,
                "aborted": row.aborted,
                "sessions": row.sessions,
                "duration_s": round(row.duration_s, 3),
                "forms": row.forms,
                "anomalies": {kind: cell.as_json() for kind, cell in _ordered(row.cells)},
            }
        return {"seed": self.seed, "workloads": workloads}

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_json(), indent=2, ensure_ascii=False) + "\n")


def _ordered(cells: dict[str, Cell]) -> Iterator[tuple[str, Cell]]:
    order = [*cycles.CLASSES, BANK_SKEW]
    yield from sorted(cells.items(), key=lambda item: order.index(item[0]))


def findings(result: cycles.Result) -> dict[str, list[str]]:
    """The checker's result as the matrix takes it: every class, each finding in words."""
    return {kind: [a.explanation for a in result.found(kind)] for kind in cycles.CLASSES}


#: The anomalies a scenario names, as the specification words them -> the checker's class.
PHRASES = {
    "dirty write (G0)": "G0",
    "aborted read (G1a)": "G1a",
    "intermediate read (G1b)": "G1b",
    "circular information flow (G1c)": "G1c",
    "read skew (G-single)": "G-single",
    "write skew (G2-item)": "G2-item",
}


class Generated:
    """A scenario's generated workload: what it runs, how it went, and what the
    specification says of each anomaly (``context.generated``)."""

    def __init__(self, matrix: GeneratedMatrix, workload: str, transactions: int) -> None:
        self.matrix = matrix
        self.workload = workload
        self.transactions = transactions
        self.run: Run | None = None
        self.found: dict[str, list[str]] = {}

    @property
    def seed(self) -> int:
        return self.matrix.seed

    def list_append(self, workspace: Workspace, level: str, sessions: int, scale: float) -> None:
        """Run the list-append workload and check its history (:func:`cycles.check`)."""
        self.run = run_list_append(
            workspace, level, sessions=sessions, transactions=self.transactions,
            seed=self.seed, timeout_scale=scale,
        )  # fmt: skip
        self.found = findings(cycles.check(self.run.history))
        self.matrix.record(self.run, self.found)

    def bank(
        self, workspace: Workspace, level: str, sessions: int, scale: float,
        ledger_for: Callable[[Engine], DataLayer], opening: dict[str, Decimal],
    ) -> None:  # fmt: skip
        """Run the bank workload over the ``opening`` accounts and check every read."""
        self.run = run_bank(
            workspace, level, ledger_for, accounts=list(opening), sessions=sessions,
            transactions=self.transactions, seed=self.seed, timeout_scale=scale,
        )  # fmt: skip
        self.found = {BANK_SKEW: check_bank(self.run, sum(opening.values(), Decimal(0)))}
        self.matrix.record(self.run, self.found)

    @property
    def done(self) -> Run:
        if self.run is None:
            raise RuntimeError("the generated workload has not run yet")
        return self.run

    def where(self) -> str:
        """Where a finding comes from, to re-run it: the level, the run's size, the seed."""
        run = self.done
        return (
            f"{run.workload} at {run.level}, {len(run.history)} transactions on "
            f"{run.sessions} sessions, seed {self.seed} (re-run: -D seed={self.seed} "
            f"-D workload_transactions={self.transactions})"
        )

    def never(self, kinds: list[str]) -> list[str]:
        """Note that the specification says ``kinds`` never happen at this level; return
        every finding of them, explained (one example per class)."""
        run = self.done
        found = []
        for kind in kinds:
            self.matrix.expect(run.workload, run.level, kind, NEVER)
            if self.found.get(kind):
                count, example = len(self.found[kind]), min(self.found[kind], key=len)
                found.append(f"{kind} found {count} time(s), e.g. {example}")
        return found

    def allowed(self, kinds: list[str]) -> list[str]:
        """Note that ``kinds`` may happen at this level; return what the run saw of each:
        'write skew (G2-item): observed 3 time(s) in 800 transactions, e.g. …' or
        '…: not observed in 800 transactions'."""
        run = self.done
        lines = []
        for kind in kinds:
            self.matrix.expect(run.workload, run.level, kind, ALLOWED)
            found = self.found.get(kind, [])
            name = next((p for p, k in PHRASES.items() if k == kind), kind)
            if found:
                lines.append(
                    f"{name}: observed {len(found)} time(s) in {len(run.history)} "
                    f"transactions, e.g. {min(found, key=len)}"
                )
            else:
                lines.append(f"{name}: not observed in {len(run.history)} transactions")
        return lines
