"""How much the harness costs, measured side by side on one embedded server.

Prints medians (and p10/p90) of:

* server start: the embedded server from the cluster template, and with a fresh initdb;
* a bare scenario: the work a typical scenario does itself (the application's first
  connection, seeding the sample payments, a failing payment, a fingerprint) in a
  schema that already exists;
* the harness's overhead per scenario on the scenario's critical path (taking a
  prepared schema, naming it, retiring it), measured around that same bare work;
* the server work the harness does off the critical path (schema + ledger table +
  drop), which is what it would cost if done synchronously;
* the same isolation done two other ways: a database per scenario (CREATE DATABASE
  ... TEMPLATE, connect, DROP DATABASE) and TRUNCATE + reseed of one shared schema.

Targets (issue 2): harness overhead <= 5 ms median; embedded server ready <= 1.5 s.

Run: .venv/bin/python bench/harness_overhead.py [--rounds N]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from collections.abc import Callable
from decimal import Decimal

import sqlalchemy as sa

from failspec.harness import embedded, servers
from failspec.harness.application import Application
from failspec.harness.audit import Auditor
from failspec.harness.leaks import find_leaks
from failspec.harness.metrics import database_counters
from failspec.harness.settings import Settings
from failspec.harness.workspace import Run, Workspace
from failspec.ledger import SAMPLE_ACCOUNTS, SAMPLE_PAYMENTS, Ledger, Payment


def ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def timed(
    fn: Callable[[], object], rounds: int, reset: Callable[[], object] = lambda: None
) -> list[float]:
    """Milliseconds per call of ``fn``; ``reset`` runs between calls, outside the timing."""
    samples = []
    for _ in range(rounds):
        reset()
        started = time.perf_counter()
        fn()
        samples.append(ms_since(started))
    return samples


def line(name: str, samples: list[float], unit: str = "ms") -> str:
    q = statistics.quantiles(samples, n=10) if len(samples) >= 10 else [min(samples), max(samples)]
    return (
        f"  {name:<50} median {statistics.median(samples):8.2f} {unit}"
        f"   p10 {q[0]:8.2f}   p90 {q[-1]:8.2f}   (n={len(samples)})"
    )


def server_starts(rounds: int, from_template: bool) -> list[float]:
    bin_dir = embedded.find_binaries(None)
    samples = []
    for _ in range(rounds):
        pg = embedded.EmbeddedPostgres(bin_dir)
        pg.from_template = from_template
        started = time.perf_counter()
        pg.start()
        samples.append(ms_since(started))
        pg.stop()
    return samples


def first_start() -> float:
    """A start on a machine that has no cluster template yet (it is built first)."""
    import tempfile

    saved = tempfile.tempdir
    with tempfile.TemporaryDirectory(prefix="failspec-bench-") as fresh:
        os.chmod(fresh, 0o755)  # the server's user must reach it, as it reaches /tmp
        tempfile.tempdir = fresh
        try:
            return server_starts(1, from_template=True)[0]
        finally:
            tempfile.tempdir = saved


def bare_scenario(workspace: Workspace) -> None:
    """What a typical scenario does itself, through the application and the auditor."""
    app, audit = Application(workspace), Auditor(workspace)
    audit.seed(SAMPLE_ACCOUNTS, SAMPLE_PAYMENTS)
    with contextlib.suppress(sa.exc.IntegrityError):
        app.ledger.record_all([Payment("dave", Decimal("-1.00"), "ref-900")])
    audit.fingerprint()
    app.close()
    workspace.dispose_engines()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--server-rounds", type=int, default=5)
    args = parser.parse_args()
    med = statistics.median

    print(f"failspec bench: harness overhead ({args.rounds} rounds, embedded server)")
    template_starts = server_starts(args.server_rounds, from_template=True)
    initdb_starts = server_starts(max(2, args.server_rounds // 2), from_template=False)
    first = [first_start()]

    server = servers.start(Settings(backend="embedded"))
    run = Run(server, prepare=Ledger.create_tables)
    try:
        print(server.banner())

        # The bare scenario: a schema with the ledger's table exists; emptied between rounds.
        fixed = run.workspace("bench: bare")

        def empty_ledger() -> None:
            with fixed.observe() as conn:
                conn.execute(sa.text("TRUNCATE transactions, accounts"))
                conn.commit()

        # The harness around the same work; only the harness's part is timed.
        def with_harness() -> float:
            started = time.perf_counter()
            workspace = run.workspace("bench: with harness")
            database_counters(run.admin)
            overhead = ms_since(started)
            bare_scenario(workspace)
            started = time.perf_counter()
            workspace.close_harness_resources()
            leaks = find_leaks(workspace, grace=1.0)
            assert not leaks, leaks
            database_counters(run.admin)
            run.retire(workspace)
            return overhead + ms_since(started)

        # The same harness work done synchronously: what the worker thread takes off the
        # critical path.
        def synchronous() -> None:
            workspace = run._make()
            workspace.adopt("bench: synchronous")
            workspace.close()

        # Alternative 1: a database per scenario, cloned from a template database.
        admin = server.engine(isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text("DROP DATABASE IF EXISTS bench_template"))
            conn.execute(sa.text("CREATE DATABASE bench_template"))
        template = sa.create_engine(server.endpoint.url(database="bench_template"))
        with template.begin() as conn:
            Ledger.create_tables(conn)
        template.dispose()

        def database_per_scenario() -> None:
            with admin.connect() as conn:
                conn.execute(sa.text("CREATE DATABASE bench_copy TEMPLATE bench_template"))
            engine = sa.create_engine(server.endpoint.url(database="bench_copy"))
            with engine.connect():
                pass
            engine.dispose()
            with admin.connect() as conn:
                conn.execute(sa.text("DROP DATABASE bench_copy"))

        # Alternative 2: one schema for the whole run, TRUNCATE + reseed per scenario.
        def truncate_and_reseed() -> None:
            with fixed.observe() as conn:
                conn.execute(sa.text("TRUNCATE transactions, accounts RESTART IDENTITY"))
                Ledger.open_accounts(conn, SAMPLE_ACCOUNTS)
                Ledger.seed(conn, SAMPLE_PAYMENTS)
                conn.commit()

        for fn in (empty_ledger, with_harness, synchronous, truncate_and_reseed):  # warm up
            fn()
        bare_ms = timed(lambda: bare_scenario(fixed), args.rounds, reset=empty_ledger)
        harness_ms = [with_harness() for _ in range(args.rounds)]
        sync_ms = timed(synchronous, args.rounds)
        db_ms = timed(database_per_scenario, max(10, args.rounds // 10))
        truncate_ms = timed(truncate_and_reseed, args.rounds)

        print("\nserver start")
        print(line("embedded, from the cluster template", template_starts))
        print(line("embedded, fresh initdb (no template)", initdb_starts))
        print(line("embedded, first start on a machine (builds it)", first))
        print("\nper scenario")
        print(line("bare scenario (its own work only)", bare_ms))
        print(line("harness overhead on the critical path", harness_ms))
        print(line("harness work off the critical path (worker)", sync_ms))
        print(line("alternative: database per scenario (TEMPLATE)", db_ms))
        print(line("alternative: TRUNCATE + reseed", truncate_ms))
        print("\nratios (median)")
        for name, top, bottom in (
            ("harness overhead / bare scenario", harness_ms, bare_ms),
            ("synchronous harness work / bare scenario", sync_ms, bare_ms),
            ("database per scenario / synchronous harness work", db_ms, sync_ms),
            ("TRUNCATE + reseed / synchronous harness work", truncate_ms, sync_ms),
        ):
            print(f"  {name:<50} {med(top) / med(bottom):6.2f}")
        print("\ntargets")
        verdict = "met" if med(harness_ms) <= 5 else "NOT met"
        print(f"  harness overhead <= 5 ms median: {med(harness_ms):.2f} ms ({verdict})")
        verdict = "met" if med(template_starts) <= 1500 else "NOT met"
        print(f"  embedded server ready <= 1.5 s:  {med(template_starts) / 1000:.2f} s ({verdict})")

        run.retire(fixed)
        with admin.connect() as conn:
            conn.execute(sa.text("DROP DATABASE bench_template"))
        admin.dispose()
    finally:
        run.close()
        server.stop()


if __name__ == "__main__":
    main()
