"""How much the harness costs, measured side by side on one embedded server.

Prints, as medians over many repetitions:

* the embedded server's start time (initdb + start until it accepts connections);
* a bare scenario: the work a typical scenario does itself (seed the sample payments,
  a failing payment, a fingerprint) on a schema and connections that already exist;
* the harness's own overhead per scenario: schema create + ledger table + connection
  setup (the application's and the auditor's) + drop;
* the same isolation done two other ways: a database per scenario
  (CREATE DATABASE ... TEMPLATE, connect, DROP DATABASE) and TRUNCATE + reseed.

Targets (issue 2): harness overhead <= 5 ms median; embedded server ready <= 1.5 s.

Run: .venv/bin/python bench/harness_overhead.py [--rounds N]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable
from decimal import Decimal

import sqlalchemy as sa

from failspec.harness import embedded, servers
from failspec.harness.application import Application
from failspec.harness.audit import Auditor
from failspec.harness.settings import Settings
from failspec.harness.workspace import Run
from failspec.ledger import SAMPLE_PAYMENTS, Ledger, Payment


def timed(
    fn: Callable[[], object], rounds: int, reset: Callable[[], object] = lambda: None
) -> list[float]:
    """Milliseconds per call of ``fn``; ``reset`` runs between calls, outside the timing."""
    samples = []
    for _ in range(rounds):
        reset()
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def line(name: str, samples: list[float], unit: str = "ms") -> str:
    q = statistics.quantiles(samples, n=10) if len(samples) >= 10 else [min(samples), max(samples)]
    return (
        f"  {name:<46} median {statistics.median(samples):8.2f} {unit}"
        f"   p10 {q[0]:8.2f}   p90 {q[-1]:8.2f}   (n={len(samples)})"
    )


def server_start(rounds: int) -> list[float]:
    bin_dir = embedded.find_binaries(None)
    samples = []
    for _ in range(rounds):
        pg = embedded.EmbeddedPostgres(bin_dir)
        started = time.perf_counter()
        pg.start()
        samples.append((time.perf_counter() - started) * 1000)
        pg.stop()
    return samples


def scenario_work(ledger: Ledger, audit_engine: sa.Engine) -> None:
    """What a typical scenario does itself: seed, one failing payment, a fingerprint."""
    ledger.seed(SAMPLE_PAYMENTS)
    with contextlib.suppress(sa.exc.IntegrityError):
        ledger.record_all([Payment("dave", Decimal("-1.00"), "ref-900")])
    with audit_engine.connect() as conn:
        Ledger.fingerprint(conn)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--server-rounds", type=int, default=5)
    args = parser.parse_args()

    print(f"failspec bench: harness overhead ({args.rounds} rounds, embedded server)")
    starts = server_start(args.server_rounds)

    server = servers.start(Settings(backend="embedded"))
    run = Run(server)
    try:
        print(server.banner())

        # A bare scenario: schema, table and connections exist already; truncate between.
        fixed = run.workspace("bench: bare")
        fixed_app, fixed_audit = Application(fixed), Auditor(fixed)
        Ledger(fixed_audit.engine).install()

        def bare() -> None:
            scenario_work(fixed_app.ledger, fixed_audit.engine)

        def empty_ledger() -> None:
            with fixed_audit.engine.begin() as conn:
                conn.execute(sa.text("TRUNCATE transactions"))

        # The harness's own part, exactly as before_scenario/cleanup do it.
        def harness() -> None:
            workspace = run.workspace("bench: harness")
            app, audit = Application(workspace), Auditor(workspace)
            Ledger(audit.engine).install()
            with app.engine.connect():  # the application's first connection
                pass
            app.close()
            workspace.close()

        # Alternative 1: a database per scenario, cloned from a template.
        admin = server.engine(isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text("DROP DATABASE IF EXISTS bench_template"))
            conn.execute(sa.text("CREATE DATABASE bench_template"))
        template = sa.create_engine(server.endpoint.url(database="bench_template"))
        Ledger(template).install()
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
            with fixed_audit.engine.begin() as conn:
                conn.execute(sa.text("TRUNCATE transactions RESTART IDENTITY"))
            Ledger(fixed_audit.engine).seed(SAMPLE_PAYMENTS)

        for fn in (bare, empty_ledger, harness, truncate_and_reseed):  # warm caches and pools
            fn()
        bare_ms = timed(bare, args.rounds, reset=empty_ledger)
        harness_ms = timed(harness, args.rounds)
        db_ms = timed(database_per_scenario, max(10, args.rounds // 10))
        truncate_ms = timed(truncate_and_reseed, args.rounds)

        print("\nserver")
        print(line("embedded server ready (initdb + start)", starts))
        print("\nper scenario")
        print(line("bare scenario (its own work only)", bare_ms))
        print(line("harness overhead: schema + table + conn + drop", harness_ms))
        print(line("alternative: database per scenario (TEMPLATE)", db_ms))
        print(line("alternative: TRUNCATE + reseed", truncate_ms))
        med = statistics.median
        print("\nratios (median)")
        print(f"  harness overhead / bare scenario          {med(harness_ms) / med(bare_ms):6.2f}")
        print(f"  database per scenario / harness overhead  {med(db_ms) / med(harness_ms):6.2f}")
        print(
            f"  TRUNCATE + reseed / harness overhead      {med(truncate_ms) / med(harness_ms):6.2f}"
        )
        print("\ntargets")
        verdict = "met" if med(harness_ms) <= 5 else "NOT met"
        print(f"  harness overhead <= 5 ms median: {med(harness_ms):.2f} ms ({verdict})")
        verdict = "met" if med(starts) <= 1500 else "NOT met"
        print(f"  embedded server ready <= 1.5 s:  {med(starts) / 1000:.2f} s ({verdict})")

        fixed_app.close()
        fixed.close()
        with admin.connect() as conn:
            conn.execute(sa.text("DROP DATABASE bench_template"))
        admin.dispose()
    finally:
        run.close()
        server.stop()


if __name__ == "__main__":
    main()
