"""How much the harness costs, measured side by side on one embedded server.

Prints medians (and p10/p90) of:

* server start: the embedded server from the cluster template, and with a fresh initdb;
* a bare scenario: the work a typical scenario does itself (seeding the sample payments
  and taking the ledger's fingerprint, a failing payment through the application, the
  fingerprint again, closing the application's pool) in a schema that already exists;
* the same work run between the REAL hooks, ``failspec.harness.hooks.before_scenario``
  and ``after_scenario``, and behave's cleanups after them, with a minimal behave-like
  context and scenario, round by round alternately with the bare scenario: the time of
  each hook, of each phase of ``after_scenario`` (closing what the harness opened; the
  leak guard; the books read, i.e. fingerprint + money conservation in one statement; the
  counting) as the hook runs them, and the harness's whole time on the critical path
  (before + after + cleanups). The phases are timed by wrapping the hooks' own
  ``_attempt``, so nothing in the hooks changes for the bench;
* the server work the harness does off the critical path (schema + ledger table +
  drop), which is what it would cost if done synchronously;
* the same isolation done two other ways: a database per scenario (CREATE DATABASE
  ... TEMPLATE, connect, DROP DATABASE) and TRUNCATE + reseed of one shared schema.

Targets: the guards (fingerprint + money conservation + leak guard) <= 3 ms median per
scenario (issue 12); the harness's whole overhead on the critical path <= 5 ms median
(issues 2 and 12); embedded server ready <= 1.5 s (issue 2).

Run: .venv/bin/python bench/harness_overhead.py [--rounds N]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from behave.model_core import Status

from failspec.harness import hooks, postgres, servers
from failspec.harness.guards.audit import Auditor
from failspec.harness.guards.metrics import Metrics
from failspec.harness.scenario.application import Application
from failspec.harness.scenario.workspace import Run, Workspace
from failspec.harness.servers.settings import Settings
from failspec.ledger import SAMPLE_ACCOUNTS, SAMPLE_PAYMENTS, Ledger, Payment, port

#: after_scenario's phases as the hook names them (its ``_attempt`` calls), and ours.
PHASES = {
    "the leak guard": "guard: leaks",
    "the integrity and money-conservation guards": "guard: fingerprint + conservation",
    "counting": "counting (pg_stat_database, ledger commits)",
}
GUARDS = ("the integrity and money-conservation guards", "the leak guard")


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
    bin_dir = postgres.find_binaries(None)
    samples = []
    for _ in range(rounds):
        pg = postgres.EmbeddedPostgres(bin_dir)
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


def scenario_work(app: Application, audit: Auditor) -> None:
    """What a typical scenario does itself: the sample ledger seeded and fingerprinted (the
    usual Given), a payment the ledger refuses (When), the fingerprint unchanged (Then)."""
    audit.seed(SAMPLE_ACCOUNTS, SAMPLE_PAYMENTS)
    audit.take_baseline()
    with contextlib.suppress(sa.exc.IntegrityError):
        app.ledger.record_all([Payment("dave", Decimal("-1.00"), "ref-900")])
    audit.assert_unchanged("after a refused payment")


def bare_scenario(workspace: Workspace) -> None:
    """The same work with no harness: it makes and closes its own application."""
    app, audit = Application(workspace), Auditor(workspace)
    scenario_work(app, audit)
    app.close()
    workspace.dispose_engines()


class Context:
    """What the hooks use of behave's Context: attributes, and cleanups that run after
    after_scenario, latest first, each one whatever the others raised (behave's
    ``Context._pop``)."""

    def __init__(self, **attributes: Any) -> None:
        self.__dict__.update(attributes)
        self._cleanups: list[Callable[[], None]] = []

    def add_cleanup(self, fn: Callable[..., None], *args: Any) -> None:
        self._cleanups.append(lambda: fn(*args))

    def pop(self) -> None:
        errors = []
        while self._cleanups:
            try:
                self._cleanups.pop()()
            except Exception as error:
                errors.append(error)
        if errors:
            raise errors[0]


def scenario(number: int) -> SimpleNamespace:
    """What the hooks use of a behave Scenario: a passing, untagged scenario."""
    return SimpleNamespace(
        name=f"bench: scenario {number}",
        location=f"bench/harness_overhead.py:{number}",
        feature=SimpleNamespace(name="bench"),
        effective_tags=set(),
        status=Status.passed,  # as behave sets it once the steps passed, before after_scenario
        hook_failed=False,
        duration=0.0,
        skip=lambda reason: (_ for _ in ()).throw(AssertionError(f"skipped: {reason}")),
    )


@contextlib.contextmanager
def phase_clock(into: dict[str, float]) -> Iterator[None]:
    """Time after_scenario's phases as the hook runs them: wrap its ``_attempt``."""
    attempt = hooks._attempt

    def timed_attempt(problems: list[str], what: str, phase: Callable[[], None]) -> None:
        started = time.perf_counter()
        try:
            attempt(problems, what, phase)
        finally:
            into[what] = ms_since(started)

    hooks._attempt = timed_attempt
    try:
        yield
    finally:
        hooks._attempt = attempt


def hooked_scenario(context: Context, number: int) -> dict[str, float]:
    """One scenario between the real hooks: the time of each part (ms)."""
    times: dict[str, float] = {}
    bench = scenario(number)
    started = time.perf_counter()
    hooks.before_scenario(context, bench)
    times["before_scenario"] = ms_since(started)
    started = time.perf_counter()
    scenario_work(context.app, context.audit)
    times["steps"] = ms_since(started)
    bench.duration = times["steps"] / 1000  # behave's duration is in seconds
    bench.status = Status.passed
    # The guards run in the scenario's fixtures, which behave cleans up after
    # after_scenario (failspec.harness.scenario.fixtures): the clock spans both.
    with phase_clock(times):
        started = time.perf_counter()
        hooks.after_scenario(context, bench)
        times["after_scenario"] = ms_since(started)
        started = time.perf_counter()
        context.pop()
        times["cleanups"] = ms_since(started)
    missing = set(PHASES) - set(times)
    if missing:
        raise SystemExit(f"after_scenario no longer runs {sorted(missing)}: update PHASES")
    times["guards"] = sum(times[what] for what in GUARDS)
    hooks_and_cleanups = ("before_scenario", "after_scenario", "cleanups")
    times["critical path"] = sum(times[part] for part in hooks_and_cleanups)
    times["recorded overhead_ms"] = context.scenario_metrics.overhead_ms
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--server-rounds", type=int, default=5)
    args = parser.parse_args()
    med = statistics.median

    print(f"failspec bench: harness overhead ({args.rounds} rounds, embedded server)")
    # Every figure is wall time: other work on the machine stretches them all.
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    template_starts = server_starts(args.server_rounds, from_template=True)
    initdb_starts = server_starts(max(2, args.server_rounds // 2), from_template=False)
    first = [first_start()]

    settings = Settings(backend="embedded")
    server = servers.start(settings)
    run = Run(server, prepare=hooks.prepare_schema)  # as the hooks prepare each schema
    try:
        print(server.banner())
        context = Context(
            settings=settings, server=server, run=run, evidence={},
            run_metrics=Metrics(server.backend, server.version),
            stopping=hooks.Stopping(),
            data_layer=port.load_factory(settings.data_layer),
        )  # fmt: skip

        # The bare scenario: a schema with the ledger's table exists; emptied between rounds.
        fixed = run.workspace("bench: bare")

        def empty_ledger() -> None:
            with fixed.observe() as conn:
                conn.execute(sa.text("TRUNCATE transactions, accounts"))
                conn.commit()

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

        for fn in (empty_ledger, synchronous, truncate_and_reseed):  # warm up
            fn()
        for number in range(3):
            hooked_scenario(context, -number)
        empty_ledger()
        # Bare and hooked scenarios alternate, so both see the same load on the machine.
        bare_ms: list[float] = []
        hooked: dict[str, list[float]] = defaultdict(list)
        for number in range(args.rounds):
            bare_ms += timed(lambda: bare_scenario(fixed), 1, reset=empty_ledger)
            started = time.perf_counter()
            for key, value in hooked_scenario(context, number).items():
                hooked[key].append(value)
            hooked["whole scenario"].append(ms_since(started))
        net = [whole - bare for whole, bare in zip(hooked["whole scenario"], bare_ms, strict=True)]
        sync_ms = timed(synchronous, args.rounds)
        db_ms = timed(database_per_scenario, max(10, args.rounds // 10))
        truncate_ms = timed(truncate_and_reseed, args.rounds)

        print("\nserver start")
        print(line("embedded, from the cluster template", template_starts))
        print(line("embedded, fresh initdb (no template)", initdb_starts))
        print(line("embedded, first start on a machine (builds it)", first))
        print("\nper scenario: bare, and between the real hooks (alternating rounds)")
        print(line("bare scenario (its own work only)", bare_ms))
        print(line("the same work between the hooks, whole", hooked["whole scenario"]))
        print(line("  its steps (the same work)", hooked["steps"]))
        print(line("  before_scenario", hooked["before_scenario"]))
        print(line("  after_scenario", hooked["after_scenario"]))
        print(
            line(
                "  behave's cleanups (the fixtures: guards, closing, the schema)",
                hooked["cleanups"],
            )
        )
        for what, name in PHASES.items():
            print(line(f"    {name}", hooked[what]))
        print(line("guards: fingerprint + conservation + leaks", hooked["guards"]))
        print(line("harness on the critical path (hooks+cleanups)", hooked["critical path"]))
        print(line("  as metrics.json records it (overhead_ms)", hooked["recorded overhead_ms"]))
        print(line("whole hooked scenario - bare, round by round", net))
        print("\nper scenario: the harness's server work, and other ways to isolate")
        print(line("harness work off the critical path (worker)", sync_ms))
        print(line("alternative: database per scenario (TEMPLATE)", db_ms))
        print(line("alternative: TRUNCATE + reseed", truncate_ms))
        print("\nratios (median)")
        for name, top, bottom in (
            ("guards / bare scenario", hooked["guards"], bare_ms),
            ("harness on the critical path / bare scenario", hooked["critical path"], bare_ms),
            ("whole hooked scenario / bare scenario", hooked["whole scenario"], bare_ms),
            ("synchronous harness work / bare scenario", sync_ms, bare_ms),
            ("database per scenario / synchronous harness work", db_ms, sync_ms),
            ("TRUNCATE + reseed / synchronous harness work", truncate_ms, sync_ms),
        ):
            print(f"  {name:<50} {med(top) / med(bottom):6.2f}")
        print("\ntargets")
        guards, path = med(hooked["guards"]), med(hooked["critical path"])
        verdict = "met" if guards <= 3 else "NOT met"
        print(f"  guards <= 3 ms median:                  {guards:.2f} ms ({verdict})")
        verdict = "met" if path <= 5 else "NOT met"
        print(f"  harness on the critical path <= 5 ms:   {path:.2f} ms ({verdict})")
        verdict = "met" if med(template_starts) <= 1500 else "NOT met"
        print(
            f"  embedded server ready <= 1.5 s:         {med(template_starts) / 1000:.2f} s "
            f"({verdict})"
        )

        print(f"\nload average at the end: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
        run.retire(fixed)
        with admin.connect() as conn:
            conn.execute(sa.text("DROP DATABASE bench_template"))
        admin.dispose()
    finally:
        run.close()
        server.stop()


if __name__ == "__main__":
    main()
