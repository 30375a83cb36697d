"""The run's lifecycle, called from features/environment.py.

``context`` attributes, each set in one place:

* ``context.settings``  run settings (before_all)
* ``context.server``    the one server of the run (before_all)
* ``context.run``       the run's id and administrative connection (before_all)
* ``context.workspace`` the scenario's schema and connection identity (before_scenario)
* ``context.app``       the application: its pool, its ledger (the system under
                        specification) and its named database sessions
* ``context.audit``     reads committed ledger state through a connection of its own
* ``context.sessions``  the scenario's concurrent named sessions (T1, T2, …)
* ``context.history``   what those sessions read and wrote, in order
* ``context.server_faults`` crashes, restarts, pauses the server; puts it back after
* ``context.network``   the fault proxy between application and server (@network)
* ``context.matrix``    the run's isolation-anomaly verdicts (written after the run)
* ``context.generated_matrix`` the generated workloads' runs and findings, by level, and
                        the run's seed (reports/isolation-generated.json)
* ``context.generated`` the scenario's generated workload (set by its steps)
* ``context.replication`` the run's replicated cluster, started for the first scenario
                        tagged @replication (before_all)
* ``context.cluster``   that cluster, in a @replication scenario (else None); its
                        primary and run stand in for ``context.server`` / ``context.run``
* ``context.failover``  the replication faults of a @replication scenario
* ``context.replication_matrix`` which payments survived which failure at which
                        synchronous_commit level (reports/replication-matrix.json)
* ``context.hang_matrix`` what ended each wait, by phase and kind of silence (written
                        after the run: reports/hang-matrix.json)
* ``context.outcome``   what the last When-step did (set by steps)
* ``context.run_metrics`` / ``context.scenario_metrics`` the run's and the scenario's
                        figures (reports/metrics.json)
* ``context.evidence``  what failed scenarios left for the report (reports/evidence.json)
* ``context.stopping``  why the run stops before its last scenario, once it must: SIGINT,
                        SIGTERM, or the server gone (reports/stopped-early.json)
* ``context.all_features`` every feature of the run, run or not (for stopped-early.json
                        and the run's record)

after_all gathers all of it, with behave's own model of the features, into the run's one
record, reports/run.json (failspec.report.record), which every view is rendered from; the
separate files stay for their own readers (benchmarks, tools).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from behave import use_fixture
from behave.model import Feature, Scenario
from behave.model_type import Status
from behave.reporter.base import Reporter
from behave.reporter.junit import JUnitReporter
from sqlalchemy.engine import Connection

from failspec import drivers
from failspec.conditions import first_line
from failspec.harness import servers, waiting
from failspec.harness.concurrency.generated import GeneratedMatrix
from failspec.harness.concurrency.interleaving import Interleaving
from failspec.harness.concurrency.isolation import History, Matrix
from failspec.harness.driver_matrix import DriverMatrix
from failspec.harness.errors import SetupError
from failspec.harness.faults import packet_filter
from failspec.harness.faults.hangs import HangMatrix
from failspec.harness.faults.network import Network
from failspec.harness.faults.replication import Failover, ReplicationMatrix
from failspec.harness.faults.server import ServerFaults
from failspec.harness.guards.audit import Auditor
from failspec.harness.guards.leaks import find_leaks
from failspec.harness.guards.metrics import (
    Metrics,
    ScenarioMetrics,
    database_counters,
    ledger_commits,
    note_ledger_changes,
)
from failspec.harness.scenario import fixtures
from failspec.harness.scenario.application import Application
from failspec.harness.scenario.cluster import NoCluster, Replication
from failspec.harness.scenario.fixtures import GuardFailed, Guards
from failspec.harness.scenario.workspace import Run, SharedConnection, Workspace, dead_runs_notice
from failspec.harness.servers.settings import Settings
from failspec.ledger import Ledger, port
from failspec.report import closing, junit, record

T = TypeVar("T")

#: Scenarios tagged with this may change committed payments; every other one may not.
CHANGES_LEDGER = "changes-ledger"
#: Scenarios that need a server which checks passwords.
PASSWORD_AUTH = "password-auth"
#: Scenarios that crash, restart or pause the server.
SERVER_CONTROL = "server-control"
#: Scenarios whose application reaches the server through a fault proxy.
NETWORK = "network"
#: Scenarios that need a primary and a standby (the run's replicated cluster).
REPLICATION = "replication"
#: Scenarios that lose an acknowledged payment on purpose: the durability guard must find it.
EXPECT_LOSS = "expect-loss"
#: Scenarios that leak on purpose: the leak guard must find the leak (and the run stays green).
EXPECT_LEAK = "expect-leak"
#: Scenarios that unbalance the books on purpose: the money-conservation guard must find it.
EXPECT_IMBALANCE = "expect-imbalance"
#: How long a closed connection's server process may take to go, before it is a leak (s).
LEAK_GRACE = 1.0
#: How many of the server log's last lines a failed scenario's evidence looks through.
LOG_LINES = 400
#: The hang matrix's file, next to the isolation matrix.
HANG_MATRIX = "hang-matrix.json"
#: The replication matrix's file, next to the others.
REPLICATION_MATRIX = "replication-matrix.json"
#: The generated workloads' matrix, next to the isolation matrix.
GENERATED_MATRIX = "isolation-generated.json"
#: The driver matrix's file (failspec.harness.driver_matrix), next to the others.
DRIVER_MATRIX = "driver-matrix.json"
#: Reports the harness writes next to behave's (besides the isolation matrix).
OUR_REPORTS = ("metrics.json", "evidence.json", junit.STOPPED_EARLY, record.RUN_RECORD)
#: How long a concurrent session's action may take to finish, block or pause (s).
SESSION_DEADLINE = 1.5
#: How long a server that refuses connections while it starts up or recovers from a crash
#: (cannot_connect_now) may take to accept them again before the run counts it as stopped (s).
SERVER_RECOVERY = 10.0
#: Set (to 1) by ./run-spec, whose closing lines say why a run is not green: the hooks
#: then do not say it too.
CLOSING_LINES_FOLLOW = "FAILSPEC_CLOSING_LINES_FOLLOW"
#: The signals that stop a run; its exit code is then 128 + the signal's number, as a shell's.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: How soon a stop signal whose KeyboardInterrupt a step swallowed is raised again (s).
RESEND = 0.25


def before_all(context: Any) -> None:
    context.stopping = Stopping()
    context.on_cleanup_error = _cleanup_error
    _stop_on_signals(context)
    _report_early_stops(context)
    if not context.config.capture_log:
        context.config.setup_logging()  # otherwise behave's log capture shows it on failure
    try:
        context.settings = Settings.from_sources(context.config.userdata, os.environ)
        drivers.use(context.settings.driver)  # before the first connection
        context.data_layer = port.load_factory(context.settings.data_layer)  # checked: Settings
        try:
            context.capabilities = port.probe(context.data_layer, context.settings.driver)
        except Exception as error:
            raise SetupError(f"the data layer {context.settings.data_layer}: {error}") from None
        _check_acknowledged(context.settings, context.capabilities)
        packet_filter.reap_stale_rules()  # what runs that died left, whatever the backend
        context.server = servers.start(context.settings)
    except SetupError as error:
        abort_setup(str(error), context.config.junit_directory if context.config.junit else None)
    print(context.server.banner() + dead_runs_notice(context.server), flush=True)
    print(data_layer_banner(context.settings, context.capabilities), flush=True)
    context.run = Run(context.server, prepare=prepare_schema)
    context.replication = Replication(
        servers.topology(context.settings, context.server),
        connect_timeout=context.settings.seconds(5),
        prepare=prepare_schema,
    )
    context.matrix = Matrix()
    context.generated_matrix = GeneratedMatrix(context.settings.seed)
    context.hang_matrix = HangMatrix()
    context.replication_matrix = ReplicationMatrix()
    context.driver_matrix = DriverMatrix()
    context.run_metrics = Metrics(context.server.backend, context.server.version)
    context.evidence = {}
    for stale in (matrix_path(context), *(reports_dir(context) / f for f in OUR_REPORTS),
                  reports_dir(context) / HANG_MATRIX,
                  reports_dir(context) / REPLICATION_MATRIX,
                  reports_dir(context) / GENERATED_MATRIX,
                  reports_dir(context) / DRIVER_MATRIX):  # fmt: skip
        stale.unlink(missing_ok=True)  # only this run's figures may show


def prepare_schema(conn: Connection) -> None:
    """A new scenario schema (the connection's search_path): the ledger's tables, and the
    harness's note of the changes made to them (metrics: ``ledger_commits``)."""
    Ledger.create_tables(conn)
    note_ledger_changes(conn)


def _check_acknowledged(settings: Settings, offered: frozenset[str]) -> None:
    """A capability ``missing_capabilities`` acknowledges as absent must be absent: a layer
    that gained it would otherwise have it go unchecked in silence. Raises SetupError."""
    stale = sorted(settings.missing_capabilities & {port.NAMES[c] for c in offered})
    if stale:
        raise SetupError(
            f"missing_capabilities={','.join(sorted(settings.missing_capabilities))} says the "
            f"data layer {settings.data_layer} lacks {', '.join(stale)}, which it offers: "
            "take it out of the setting"
        )


def data_layer_banner(settings: Settings, offered: frozenset[str]) -> str:
    """The banner's line on the data layer: its factory, and the optional capabilities it
    lacks (acknowledged with ``missing_capabilities`` or not)."""
    lacking = [port.NAMES[c] for c in port.CAPABILITIES if c not in offered]
    line = f"failspec: data layer {settings.data_layer}"
    if not lacking:
        return line + " (offers every optional capability)"
    acknowledged = [name for name in lacking if name in settings.missing_capabilities]
    unacknowledged = [name for name in lacking if name not in settings.missing_capabilities]
    line += f" (lacks {', '.join(lacking)}"
    if unacknowledged:
        line += (
            f"; not acknowledged: {', '.join(unacknowledged)}, so a scenario skipped for "
            "lack of one fails the run unless -D missing_capabilities names it"
        )
    elif acknowledged:
        line += ": acknowledged with missing_capabilities"
    return line + ")"


def _cleanup_error(context: Any, cleanup: Callable[[], None], error: BaseException) -> None:
    """behave's handler for a fixture's cleanup that raised (``context.on_cleanup_error``):
    one line, which becomes the scenario's error in the reports when it has none yet
    (behave gives a cleanup error no message); nothing for the guards' findings, which
    said so themselves (HOOK-ERROR)."""
    if isinstance(error, GuardFailed) and error.reported:
        return
    line = f"CLEANUP-ERROR: {type(error).__name__}: {first_line(error)}"
    print(line, flush=True)
    scenario = getattr(context, "scenario", None)  # None past the scenarios' layers
    if scenario is not None and not scenario.error_message:
        scenario.store_exception_context(error)
        scenario.error_message = line


def reports_dir(context: Any) -> Path:
    """Where the run's reports go: next to behave's JUnit directory."""
    return Path(getattr(context.config, "junit_directory", "reports/junit")).parent


def matrix_path(context: Any) -> Path:
    return reports_dir(context) / "isolation-matrix.json"


def abort_setup(message: str, junit_directory: str | None = None) -> None:
    """One clear line, a non-zero exit, and nothing left running.

    behave would report a failed before_all as a JUnit file of skipped tests and a
    traceback; the run ends here instead, before any report could look green, and leaves
    a JUnit error of its own in ``junit_directory`` (when given) for CI, and beside it the
    run's record saying why (reports/run.json, for the HTML report and the closing line).
    """
    print(f"failspec: cannot run: {message}", file=sys.stderr, flush=True)
    if junit_directory is not None:
        junit.write_setup_error(junit_directory, message)
        record.write_setup_error(Path(junit_directory).parent, message)
    sys.stdout.flush()
    os._exit(2)


def before_scenario(context: Any, scenario: Any) -> None:
    stopping: Stopping = context.stopping
    stopping.phase = "hook"  # a signal now is noted, and the run stops at the end of the hook
    stopping.current = str(scenario.location)
    context.scenario_metrics = ScenarioMetrics(
        str(scenario.location), scenario.feature.name, scenario.name
    )
    if not _stop_if_asked(context):
        try:
            _prepare(context, scenario)
        except sa.exc.DBAPIError as error:
            gone = _server_stopped(context)
            if gone is None:
                raise
            _stop(context, f"the server stopped: {gone} (preparing this scenario: "
                           f"{first_line(error)})")  # fmt: skip
        _stop_if_asked(context)  # a signal during the preparation: the scenario is not run
    stopping.phase = "steps"


def _prepare(context: Any, scenario: Any) -> None:
    started = time.perf_counter()
    context.cluster = None
    if REPLICATION in scenario.effective_tags:
        try:  # the cluster's primary and its run stand in for the run's for this scenario
            context.cluster, context.server, context.run = context.replication.for_scenario()
        except NoCluster as why:
            scenario.skip(str(why))
            return
    if PASSWORD_AUTH in scenario.effective_tags and not context.server.demands_password():
        scenario.skip(
            f"the {context.server.backend} server accepts any password (trust authentication), "
            "so it cannot refuse a wrong one"
        )
        return
    if SERVER_CONTROL in scenario.effective_tags and not context.server.controllable:
        scenario.skip(
            f"the {context.server.backend} backend uses a server it did not start, "
            "so it cannot crash, restart, pause or shut it down"
        )
        return
    workspace = use_fixture(fixtures.schema, context, scenario.name)
    # Contiguous windows: what the server counts between two scenarios goes to the next.
    metrics = context.run_metrics
    shared = context.cluster is None and metrics.last_counters
    context.counters_before = shared or database_counters(context.run.admin)
    context.audit = Auditor(workspace)
    # The guards look once everything made after them is closed (fixtures.TEARDOWN).
    use_fixture(fixtures.guarded, context, lambda guards: _guard(context, scenario, guards))
    context.app = _held(
        context,
        Application(workspace, context.data_layer, context.settings.data_layer),
        "the application",
    )
    deadline = SESSION_DEADLINE * context.settings.timeout_scale
    # Each session is another instance of the application: its engine options are the
    # application's (read when it first connects), its pool is its own.
    context.sessions = _held(
        context,
        Interleaving(workspace, timeout=deadline, engine_options=context.app.instance_options),
        "the sessions",
    )
    context.history = History()
    context.network = None
    if NETWORK in scenario.effective_tags:
        context.network = _held(context, Network(context.server), "the network")
        context.app.url = context.sessions.url = context.network.url()
    context.server_faults = _held(context, ServerFaults(context.server), "the server faults")
    if context.cluster is not None:
        # The application connects where its connection string says, not to wherever
        # the primary is: a promotion does not move it (see replication_steps).
        context.app.url = context.cluster.url(context.cluster.primary_name)
        context.app.follows_server = False
        failover = Failover(
            context.cluster, workspace.application_name, timeout=context.settings.seconds(5)
        )
        context.failover = _held(context, failover, "the replication faults")
    context.outcome = None
    context.scenario_metrics.overhead_ms = (time.perf_counter() - started) * 1000


def _held(context: Any, resource: T, what: str) -> T:
    held: T = use_fixture(fixtures.held, context, resource, what=what)
    return held


def after_scenario(context: Any, scenario: Any) -> None:
    """The scenario's figures and, for skips, the reason on the console. What it holds is
    closed after this hook, by its fixtures (failspec.harness.scenario.fixtures, in the
    order of its TEARDOWN), and the guards look then (:func:`_guard`)."""
    stopping: Stopping = context.stopping
    stopping.phase = "hook"
    try:
        entry = context.scenario_metrics
        entry.status = scenario.status.name
        entry.skip_reason = getattr(scenario, "skip_reason", None)
        entry.duration_s = round(scenario.duration, 4)
        app = getattr(context, "app", None)
        # Whether the scenario called the data layer at all (run.json uses_data_layer).
        scenario.failspec_uses_data_layer = bool(app is not None and app.layer_calls)
        context.run_metrics.add(entry)
        if entry.skip_reason:  # on the console too, not only in the report
            print(f"failspec: skipped {entry.location} ({scenario.name}): {entry.skip_reason}")
        sessions = getattr(context, "sessions", None)
        # What the sessions said, for a failed scenario's evidence: before they are closed.
        context.transcripts = sessions.transcripts() if sessions is not None else {}
    finally:
        stopping.phase = "between"


def _guard(context: Any, scenario: Any, guards: Guards) -> None:
    """The guards, once the scenario's resources are closed: committed payments change
    only where a scenario says so, the books balance (each balance = opening + payments +
    transfers in - transfers out), and nothing of the scenario is left holding the server.
    Then its counters and, if it failed, its evidence are kept for the reports. Every
    phase runs, whatever an earlier one raised; what went wrong (``guards.problems`` from
    closing, too) is reported together at the end, as the scenario's hook error.

    A scenario that did not run to its end (interrupted, or prepared only half-way) has
    nothing checked. A scenario after which the server is gone stops the run
    (:func:`_server_stopped`)."""
    stopping: Stopping = context.stopping
    phase, stopping.phase = stopping.phase, "hook"
    try:
        _check(context, scenario, stopping, guards.problems)
    except GuardFailed as error:
        _fail_as_hook(scenario, error)
        raise
    finally:
        stopping.phase = phase


def _fail_as_hook(scenario: Any, error: GuardFailed) -> None:
    """End the scenario as behave ends one whose hook failed (status ``hook_error``, the
    error its reason in every report), with the same console line."""
    message = f"HOOK-ERROR in the guards fixture: GuardFailed: {error}"
    print(message, flush=True)
    error.reported = True
    scenario.hook_failed = True
    if scenario.error_message:
        scenario.error_message += "\n" + message
    else:
        scenario.store_exception_context(error)
        scenario.error_message = message
    scenario.set_status(Status.hook_error)


def _check(context: Any, scenario: Any, stopping: Stopping, problems: list[str]) -> None:
    started = time.perf_counter()
    entry = context.scenario_metrics
    workspace: Workspace = context.workspace
    unfinished = stopping.scenario == entry.location
    if unfinished or scenario.hook_failed or scenario.status == Status.untested:
        # Interrupted, not run, or prepared half-way: nothing is checked.
        if unfinished:
            entry.status = UNFINISHED
        if unfinished and not context.aborted:  # the interrupt was swallowed in a step
            _stop_unfinished(context, scenario, KeyboardInterrupt(_not_finished(stopping)))
            scenario.set_status(Status.hook_error)  # behave took the status before this
        if problems and not unfinished:
            raise GuardFailed(" / ".join(problems))
        return
    failed = scenario.status.has_failed()
    leaks: list[str] = []
    imbalances: list[str] = []
    lost: list[str] = []
    tags = scenario.effective_tags

    # The reads below share one checkout of the run's admin engine: one pre-ping, not three.
    admin = SharedConnection(context.run.admin)

    def books() -> None:
        audit = context.audit
        if leaks:  # a leaked connection may hold locks the read would wait for
            workspace.end_stragglers()
        read = audit.books(admin())  # one round trip for both checks
        imbalances.extend(read.imbalances(audit.opening, context.history.written_directly()))
        acknowledged = workspace.acknowledged
        missing = audit.missing(acknowledged, admin())
        lost.extend(f"{r} ({acknowledged[r]})" for r in missing)
        failover = getattr(context, "failover", None)
        if EXPECT_LOSS in tags and failover is not None:  # lost by the promotion, or never?
            never = [r for r in missing if r not in failover.on_old_primary]
            if never:
                problems.append(
                    "the durability guard found payments lost that the old primary never "
                    f"held, so no promotion lost them (were they ever committed?): {never}"
                )
        if CHANGES_LEDGER not in tags and audit.baseline and not failed:
            audit.assert_unchanged("after the scenario", read)

    def guard() -> None:
        grace = LEAK_GRACE * context.settings.timeout_scale
        leaks.extend(find_leaks(workspace, grace=grace, conn=admin()))

    try:
        _attempt(problems, "the leak guard", guard)
        _attempt(problems, "the integrity and money-conservation guards", books)
        _attempt(problems, "counting", lambda: _count(context, entry, workspace, admin()))
    finally:
        admin.close()
    # A failed scenario may leave its sessions behind; its failure is the report then.
    left = leaks if not failed or EXPECT_LEAK in tags else []
    _expected(problems, "leak guard", EXPECT_LEAK in tags, left, "the scenario left behind: ")
    _expected(
        problems, "money-conservation guard", EXPECT_IMBALANCE in tags, imbalances,
        "the books do not balance (money created, lost or moved without a record): ",
    )  # fmt: skip
    _expected(
        problems, "durability guard", EXPECT_LOSS in tags, lost,
        "operations the application was told were applied are not in the ledger: ",
    )  # fmt: skip
    entry.overhead_ms += (time.perf_counter() - started) * 1000
    # The guards' reads may have been served by a server process outliving its postmaster.
    ended = problems or context.server.process_ended()
    gone = _server_stopped(context) if ended else None
    if gone is not None:  # every guard failed, or read from a dying server: not checked
        entry.status = UNFINISHED
        stopping.scenario = entry.location
        _stop(context, f"the server stopped: {gone}")
        _stop_unfinished(context, scenario, ServerStopped(_not_finished(stopping)))
        scenario.set_status(Status.hook_error)  # behave took the status before this
        return
    if failed or problems:
        found = {"leaks": leaks, "imbalances": imbalances, "lost": lost}
        context.evidence[entry.location] = _evidence(context, workspace, context.transcripts, found)
    if problems:
        entry.status = "hook_error"
        raise GuardFailed(" / ".join(problems))


def _expected(
    problems: list[str], what: str, on_purpose: bool, found: list[str], problem: str
) -> None:
    """A guard's findings are a problem, unless the scenario is tagged to expect them; then
    finding nothing is the problem (the guard must catch what the scenario breaks)."""
    if on_purpose and not found:
        problems.append(f"the {what} found nothing, but this scenario breaks its rule on purpose")
    elif on_purpose:
        print(f"failspec: {what} (as expected): {'; '.join(found)}", flush=True)
    elif found:
        problems.append(problem + "; ".join(found))


def _attempt(problems: list[str], what: str, phase: Callable[[], None]) -> None:
    try:
        phase()
    except AssertionError as error:
        problems.append(str(error))
    except Exception as error:  # every phase runs; the scenario reports them all
        problems.append(f"{what} failed: {type(error).__name__}: {first_line(error)}")


def _count(context: Any, entry: ScenarioMetrics, workspace: Workspace, admin: Connection) -> None:
    after = database_counters(admin)
    if context.cluster is None:  # the cluster's counters are not the run server's
        context.run_metrics.last_counters = after
    # (None, None) across a statistics reset (a crash): that delta is not known.
    entry.xact_commit, entry.xact_rollback = after.transactions_since(context.counters_before)
    entry.peak_connections = workspace.peak_connections
    entry.rows_changed = workspace.rows_changed
    entry.commits = workspace.commits
    entry.rollbacks = workspace.rollbacks
    entry.commits_unknown = workspace.commits_unknown
    entry.ledger_commits = ledger_commits(admin, workspace.schema, workspace.application_name)


def _evidence(
    context: Any,
    workspace: Workspace,
    transcripts: dict[str, list[str]],
    found: dict[str, list[str]],
) -> dict[str, Any]:
    """What a failed scenario leaves for the report, taken once its connections are
    closed: the server log's lines about this scenario (those carrying its
    application_name, where the log shows it; else the log's last lines), the proxy's
    log, the concurrent sessions' transcripts and what the guards found (``found``: the
    guard's name -> its findings)."""
    tail = context.server.log_tail(LOG_LINES).splitlines()
    own = [line for line in tail if workspace.application_name in line]
    evidence: dict[str, Any] = {"server_log": "\n".join(own or tail[-30:])}
    network = getattr(context, "network", None)
    if network is not None:
        evidence["proxy_log"] = network.log_text()
    if transcripts:
        evidence["transcripts"] = transcripts
    evidence.update({guard: findings for guard, findings in found.items() if findings})
    return evidence


def after_all(context: Any) -> None:
    stopping: Stopping | None = getattr(context, "stopping", None)
    if stopping is not None:
        stopping.phase = "teardown"  # a signal now is only noted: the server is stopped first
        _stop_if_asked(context)  # one that came between the last scenario and here
    run = getattr(context, "run", None)
    server = getattr(context, "server", None)
    try:
        reports_dir(context).mkdir(parents=True, exist_ok=True)  # --no-junit in a fresh clone
        matrix = getattr(context, "matrix", None)
        if matrix is not None and matrix.cells:
            matrix.write(matrix_path(context))
        hang_matrix = getattr(context, "hang_matrix", None)
        if hang_matrix is not None and hang_matrix.cells:
            hang_matrix.write(reports_dir(context) / HANG_MATRIX)
        replication_matrix = getattr(context, "replication_matrix", None)
        if replication_matrix is not None and replication_matrix.cells:
            replication_matrix.write(reports_dir(context) / REPLICATION_MATRIX)
        generated_matrix = getattr(context, "generated_matrix", None)
        if generated_matrix:
            generated_matrix.write(reports_dir(context) / GENERATED_MATRIX)
            print(f"failspec: generated workloads: seed {generated_matrix.seed} "
                  f"(re-run them with -D seed={generated_matrix.seed})", flush=True)  # fmt: skip
        driver_matrix = getattr(context, "driver_matrix", None)
        if driver_matrix is not None and driver_matrix.cells:
            driver_matrix.write(reports_dir(context) / DRIVER_MATRIX)
        metrics = getattr(context, "run_metrics", None)
        figures = metrics.as_json() if metrics is not None else None  # once: run.json agrees
        if metrics is not None:
            path = reports_dir(context) / "metrics.json"
            path.write_text(json.dumps(figures, indent=2) + "\n")
            for line in metrics.summary():
                print(line, flush=True)
        evidence = getattr(context, "evidence", None)
        if evidence:
            path = reports_dir(context) / "evidence.json"
            path.write_text(json.dumps(evidence, indent=2) + "\n")
        stopped = None
        if stopping is not None and stopping.cause is not None:
            stopped = stopping.record(context.all_features.features, context.config)
            junit.write_stopped_early(reports_dir(context), stopped)
            print(f"failspec: {junit.stopped_early_line(stopped)}", file=sys.stderr, flush=True)
        the_record = run_record(context, stopped, figures)
        record.write(reports_dir(context), the_record)
        unacknowledged = record.unacknowledged(the_record)
        if unacknowledged:
            context.exit_status.unacknowledged = unacknowledged
            if not os.environ.get(CLOSING_LINES_FOLLOW):  # plain behave: say it here
                print(
                    f"failspec: {closing.unacknowledged_line(the_record)}",
                    file=sys.stderr,
                    flush=True,
                )
        gone = stopping is not None and stopping.server_gone
        try:
            left = run.close() if run is not None else []
        except sa.exc.DBAPIError:
            if not gone:
                raise
            left = []  # nothing can be dropped on a server that is gone
        if left:
            raise AssertionError(f"scenario schemas left behind and dropped now: {left}")
        replicated = getattr(context, "replication", None)
        elsewhere = replicated.scenarios if replicated is not None else 0
        if run is not None and run.scenarios + elsewhere == 0 and not context.aborted:
            raise AssertionError(
                "no scenario ran: check the paths and the tag expression "
                "given to behave: together they selected none"
            )
    finally:
        replication = getattr(context, "replication", None)
        if replication is not None:
            replication.close()
        if server is not None:
            server.stop()


def run_record(
    context: Any, stopped: dict[str, Any] | None, figures: dict[str, Any] | None
) -> dict[str, Any]:
    """The run's one record (failspec.report.record): every feature behave was given, as
    it ran them, with the harness's parts: the server, how the run stopped early
    (``stopped``: Stopping.record, or None), the metrics (``figures``: Metrics.as_json(),
    or None), the evidence of failed scenarios and the matrices. Parts the run never made
    (before_all ended early) are None."""
    server = getattr(context, "server", None)
    matrix = getattr(context, "matrix", None)
    hang_matrix = getattr(context, "hang_matrix", None)
    replication_matrix = getattr(context, "replication_matrix", None)
    generated_matrix = getattr(context, "generated_matrix", None)
    driver_matrix = getattr(context, "driver_matrix", None)
    features = getattr(context, "all_features", None)
    return record.build(
        features.features if features is not None else [],
        context.config,
        server=(
            {
                "backend": server.backend,
                "version": server.version,
                "driver": str(drivers.current()),
                "data_layer": context.settings.data_layer,
            }
            if server
            else None
        ),
        data_layer=data_layer_record(context),
        stopped=stopped,
        metrics=figures,
        evidence=getattr(context, "evidence", None),
        isolation=matrix.as_json() if matrix is not None else None,
        hangs=hang_matrix.as_json() if hang_matrix is not None else None,
        replication=replication_matrix.as_json() if replication_matrix is not None else None,
        generated=generated_matrix.as_json() if generated_matrix else None,
        drivers=driver_matrix.as_json() if driver_matrix is not None else None,
    )


def data_layer_record(context: Any) -> dict[str, Any] | None:
    """The record's ``data_layer`` (failspec.report.record): the factory, the capabilities
    it offers and lacks, those acknowledged as absent; None before one was loaded."""
    offered: frozenset[str] | None = getattr(context, "capabilities", None)
    settings: Settings | None = getattr(context, "settings", None)
    if offered is None or settings is None:
        return None
    return {
        "factory": settings.data_layer,
        "offers": [port.NAMES[c] for c in port.CAPABILITIES if c in offered],
        "lacks": {
            port.NAMES[c]: {"capability": c, "leaves_unchecked": port.LEAVES_UNCHECKED[c]}
            for c in port.CAPABILITIES
            if c not in offered
        },
        "acknowledged_missing": sorted(settings.missing_capabilities),
    }


def before_step(context: Any, step: Any) -> None:
    """A step boundary: an interrupt the last step's driver swallowed stops the scenario
    here, before this step runs (the scenario is then not finished)."""
    stopping: Stopping = context.stopping
    if stopping.cause is not None and stopping.scenario is not None and not context.aborted:
        _stop_unfinished(context, step, KeyboardInterrupt(_not_finished(stopping)))


#: The status the harness gives a scenario that began but did not run to its end.
UNFINISHED = "not_finished"


class ServerStopped(Exception):
    """The server went away during the run (killed, out of memory, shut down by someone)."""


@dataclass
class Stopping:
    """Why the run stops before its last scenario, once it must, and where it was.

    ``phase`` says where the run is, for the signal handler: ``setup`` (before_all) and
    ``steps`` (a scenario's steps) are interrupted at once, by behave's own abort path (a
    KeyboardInterrupt); in the harness's hooks (``hook``, ``teardown``) and between
    scenarios (``between``) the signal is only noted, and the run stops at the hook's end,
    so cleanup is never cut in half.
    """

    cause: str | None = None  # "interrupted by SIGINT", "the server stopped: …"
    signal: int | None = None  # the last stop signal received
    server_gone: bool = False
    scenario: str | None = None  # location of the scenario that began and did not finish
    current: str | None = None  # location of the scenario being run
    phase: str = "setup"

    def interrupt(self, signum: int) -> None:
        """Note a stop signal (the cause stays the first one the run noted)."""
        self.signal = signum
        if self.cause is None:
            self.cause = f"interrupted by {signal.Signals(signum).name}"
        if self.phase == "steps" and self.scenario is None:
            self.scenario = self.current

    def exit_code(self) -> int:
        """128 + the signal's number (130 for SIGINT, 143 for SIGTERM), as a shell reports
        a process the signal ended; 1 for a run the server's end stopped."""
        return 128 + self.signal if self.signal is not None else 1

    def record(self, features: list[Feature], config: Any) -> dict[str, Any]:
        """What reports/stopped-early.json holds: the cause, the scenario that did not
        finish, how many of the selected scenarios finished, and those never run."""
        selected = [s for s in _scenarios(features) if s.should_run(config)]
        not_run = [s for s in selected if s.status == Status.untested]
        finished = [
            s for s in selected if s.status != Status.untested and str(s.location) != self.scenario
        ]
        return {
            "cause": self.cause,
            "signal": signal.Signals(self.signal).name if self.signal is not None else None,
            "exit_code": self.exit_code(),
            "not_finished": self.scenario,
            "finished": len(finished),
            "selected": len(selected),
            "not_run": [str(s.location) for s in not_run],
        }


def _scenarios(features: list[Feature]) -> Iterator[Scenario]:
    for feature in features:
        yield from feature.walk_scenarios()


def _stop_on_signals(context: Any) -> None:
    """SIGINT and SIGTERM stop the run at once where that is safe, else at the next step or
    hook boundary, whatever the driver does with the KeyboardInterrupt.

    psycopg2 blocked in libpq may take it in its error path and turn it into a connection
    error, which a retrying data layer then retries: so while a step runs and behave has
    not aborted, the signal is raised again every ``RESEND`` seconds until a
    KeyboardInterrupt reaches behave (or the step ends: the next boundary stops the run).
    """
    stopping: Stopping = context.stopping
    main = threading.get_ident()  # the main thread: only it may call signal.signal (below)

    def swallowed() -> bool:
        return stopping.phase == "steps" and not context.aborted

    def resend(signum: int) -> None:
        if swallowed():
            signal.pthread_kill(main, signum)

    def interrupt(signum: int, frame: object) -> None:
        stopping.interrupt(signum)
        if stopping.phase == "setup" or swallowed():
            if stopping.phase == "steps":
                waiting.after(RESEND, lambda: resend(signum))
            raise KeyboardInterrupt(stopping.cause)

    for signum in STOP_SIGNALS:
        signal.signal(signum, interrupt)


def _stop_if_asked(context: Any) -> bool:
    """Whether the run must stop; if so and behave does not know yet, tell it (the
    scenarios after this one are then not run)."""
    cause = context.stopping.cause
    if cause is not None and not context.aborted:
        context.abort(reason=cause)
    return cause is not None


def _stop(context: Any, cause: str) -> None:
    """Stop the run for ``cause`` (the server's end); the scenarios after this one are
    reported as not run."""
    stopping: Stopping = context.stopping
    if stopping.cause is None:
        stopping.cause = cause
    stopping.server_gone = True
    _stop_if_asked(context)


def _not_finished(stopping: Stopping) -> str:
    return f"{stopping.cause}: the scenario did not finish"


def _stop_unfinished(context: Any, statement: Any, error: BaseException) -> None:
    """End a scenario (or the step about to run) that began and did not finish, as behave
    ends one that a hook failed: in error, with ``error`` as its reason in the reports; and
    stop the run."""
    statement.store_exception_context(error)
    statement.error_message = str(error)
    statement.hook_failed = True
    _stop_if_asked(context)


def _server_stopped(context: Any) -> str | None:
    """None if the server accepts connections, else how it refuses them: 'it refuses
    connections (connection_refused) at 127.0.0.1:5432'. A server that is starting up
    or recovering from a crash (cannot_connect_now: PostgreSQL restarts every server
    process when one of them is killed) has ``SERVER_RECOVERY`` seconds to accept them."""
    server = context.server

    def settled() -> str | None:
        refusal = server.refusal()
        return None if refusal == "cannot_connect_now" else refusal or "accepted"

    refusal = server.refusal()
    if refusal == "cannot_connect_now":
        with contextlib.suppress(waiting.WaitTimeout):
            refusal = waiting.until(
                settled, timeout=SERVER_RECOVERY * context.settings.timeout_scale,
                what="the server's recovery", interval=0.05,
            )  # fmt: skip
    if refusal in (None, "accepted"):
        return None
    return f"it refuses connections ({refusal}) at {server.endpoint.address}"


class _ExitStatus(Reporter):
    """The last reporter: a run that stopped early exits with its own code (130 for
    SIGINT, 143 for SIGTERM, 1 for a server gone), once every report is written."""

    def __init__(self, config: Any, stopping: Stopping) -> None:
        super().__init__(config)
        self.stopping = stopping
        #: The capabilities the data layer lacks, not acknowledged, for lack of which
        #: scenarios were not checked (after_all sets it from the run's record).
        self.unacknowledged: list[str] = []

    def feature(self, feature: Feature) -> None:
        pass

    def end(self) -> None:
        if self.stopping.cause is not None:
            sys.stdout.flush()
            raise SystemExit(self.stopping.exit_code())
        if self.unacknowledged:
            sys.stdout.flush()
            raise SystemExit(1)


def _report_early_stops(context: Any) -> None:
    """Behave's JUnit gives scenarios a run never reached a reason (see
    failspec.report.junit.JUnitReporter), and the exit code says the run stopped early."""
    stopping: Stopping = context.stopping
    reporters = context.config.reporters
    for index, reporter in enumerate(reporters):
        if type(reporter) is JUnitReporter:
            reporters[index] = junit.JUnitReporter(context.config, lambda: stopping.cause)
    context.all_features = record.Features(context.config)
    context.exit_status = _ExitStatus(context.config, stopping)
    reporters.extend([context.all_features, context.exit_status])
