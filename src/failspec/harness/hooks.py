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
* ``context.outcome``   what the last When-step did (set by steps)
* ``context.run_metrics`` / ``context.scenario_metrics`` the run's and the scenario's
                        figures (reports/metrics.json)
* ``context.evidence``  what failed scenarios left for the report (reports/evidence.json)
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from failspec.conditions import first_line
from failspec.harness import servers
from failspec.harness.application import Application
from failspec.harness.audit import Auditor
from failspec.harness.concurrency import Interleaving
from failspec.harness.errors import SetupError
from failspec.harness.faults import ServerFaults
from failspec.harness.isolation import History, Matrix
from failspec.harness.leaks import find_leaks
from failspec.harness.metrics import Metrics, ScenarioMetrics, database_counters
from failspec.harness.network import Network
from failspec.harness.settings import Settings
from failspec.harness.workspace import Run, SharedConnection, Workspace
from failspec.ledger import Ledger
from failspec.report import junit

#: Scenarios tagged with this may change committed payments; every other one may not.
CHANGES_LEDGER = "changes-ledger"
#: Scenarios that need a server which checks passwords.
PASSWORD_AUTH = "password-auth"
#: Scenarios that crash, restart or pause the server.
SERVER_CONTROL = "server-control"
#: Scenarios whose application reaches the server through a fault proxy.
NETWORK = "network"
#: Scenarios that leak on purpose: the leak guard must find the leak (and the run stays green).
EXPECT_LEAK = "expect-leak"
#: Scenarios that unbalance the books on purpose: the money-conservation guard must find it.
EXPECT_IMBALANCE = "expect-imbalance"
#: How long a closed connection's server process may take to go, before it is a leak (s).
LEAK_GRACE = 1.0
#: How many of the server log's last lines a failed scenario's evidence looks through.
LOG_LINES = 400
#: Reports the harness writes next to behave's (besides the isolation matrix).
OUR_REPORTS = ("metrics.json", "evidence.json")
#: How long a concurrent session's action may take to finish, block or pause (s).
SESSION_DEADLINE = 1.5


def before_all(context: Any) -> None:
    _stop_on_sigterm()
    if not context.config.capture_log:
        context.config.setup_logging()  # otherwise behave's log capture shows it on failure
    try:
        context.settings = Settings.from_sources(context.config.userdata, os.environ)
        context.server = servers.start(context.settings)
    except SetupError as error:
        abort_setup(str(error), context.config.junit_directory if context.config.junit else None)
    print(context.server.banner(), flush=True)
    context.run = Run(context.server, prepare=Ledger.create_tables)
    context.matrix = Matrix()
    context.run_metrics = Metrics(context.server.backend, context.server.version)
    context.evidence = {}
    for stale in (matrix_path(context), *(reports_dir(context) / f for f in OUR_REPORTS)):
        stale.unlink(missing_ok=True)  # only this run's figures may show


def reports_dir(context: Any) -> Path:
    """Where the run's reports go: next to behave's JUnit directory."""
    return Path(getattr(context.config, "junit_directory", "reports/junit")).parent


def matrix_path(context: Any) -> Path:
    return reports_dir(context) / "isolation-matrix.json"


def abort_setup(message: str, junit_directory: str | None = None) -> None:
    """One clear line, a non-zero exit, and nothing left running.

    behave would report a failed before_all as a JUnit file of skipped tests and a
    traceback; the run ends here instead, before any report could look green, and leaves
    a JUnit error of its own in ``junit_directory`` (when given) for CI.
    """
    print(f"failspec: cannot run: {message}", file=sys.stderr, flush=True)
    if junit_directory is not None:
        junit.write_setup_error(junit_directory, message)
    sys.stdout.flush()
    os._exit(2)


def before_scenario(context: Any, scenario: Any) -> None:
    started = time.perf_counter()
    context.scenario_metrics = ScenarioMetrics(
        str(scenario.location), scenario.feature.name, scenario.name
    )
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
    workspace = context.run.workspace(scenario.name)
    context.workspace = workspace
    context.add_cleanup(context.run.retire, workspace)
    # Contiguous windows: what the server counts between two scenarios goes to the next.
    metrics = context.run_metrics
    context.counters_before = metrics.last_counters or database_counters(context.run.admin)
    # What the harness opens for the scenario is closed before the leak guard looks
    # (latest first), and again, harmlessly, by behave's cleanups if a hook broke.
    context.audit = Auditor(workspace)
    context.app = Application(workspace)
    _owned(context, workspace, context.app.close)
    deadline = SESSION_DEADLINE * context.settings.timeout_scale
    # Each session is another instance of the application: its engine options are the
    # application's (read when it first connects), its pool is its own.
    context.sessions = Interleaving(
        workspace, timeout=deadline, engine_options=context.app.instance_options
    )
    _owned(context, workspace, context.sessions.close)
    context.history = History()
    context.network = None
    if NETWORK in scenario.effective_tags:
        context.network = Network(context.server)
        _owned(context, workspace, context.network.close)
        context.app.url = context.sessions.url = context.network.url()
    context.server_faults = ServerFaults(context.server)
    _owned(context, workspace, context.server_faults.close)
    context.outcome = None
    context.scenario_metrics.overhead_ms = (time.perf_counter() - started) * 1000


def _owned(context: Any, workspace: Workspace, close: Callable[[], None]) -> None:
    workspace.harness_resources.append(close)
    context.add_cleanup(close)


def after_scenario(context: Any, scenario: Any) -> None:
    """The guards: committed payments change only where a scenario says so, the books
    balance (each balance = opening + payments + transfers in - transfers out), and nothing
    of the scenario is left holding the server. Then its metrics and, if it failed, its
    evidence are kept for the reports. Every phase runs, whatever an earlier one raised;
    what went wrong is reported together at the end."""
    started = time.perf_counter()
    entry = context.scenario_metrics
    entry.status = scenario.status.name
    entry.skip_reason = getattr(scenario, "skip_reason", None)
    entry.duration_s = round(scenario.duration, 4)
    context.run_metrics.add(entry)
    workspace = getattr(context, "workspace", None)
    if workspace is None:
        return  # skipped before it started
    failed = scenario.status.has_failed()
    transcripts = context.sessions.transcripts()  # before the sessions are closed
    problems: list[str] = []
    leaks: list[str] = []
    imbalances: list[str] = []
    tags = scenario.effective_tags

    # The reads below share one checkout of the run's admin engine: one pre-ping, not three.
    admin = SharedConnection(context.run.admin)

    def books() -> None:
        audit = context.audit
        if leaks:  # a leaked connection may hold locks the read would wait for
            workspace.end_stragglers()
        read = audit.books(admin())  # one round trip for both checks
        imbalances.extend(read.imbalances(audit.opening, context.history.written_directly()))
        if CHANGES_LEDGER not in tags and audit.baseline and not failed:
            audit.assert_unchanged("after the scenario", read)

    def guard() -> None:
        grace = LEAK_GRACE * context.settings.timeout_scale
        leaks.extend(find_leaks(workspace, grace=grace, conn=admin()))

    try:
        _attempt(problems, "closing what the harness opened", workspace.close_harness_resources)
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
    if failed or problems:
        found = {"leaks": leaks, "imbalances": imbalances}
        context.evidence[entry.location] = _evidence(context, workspace, transcripts, found)
    entry.overhead_ms += (time.perf_counter() - started) * 1000
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


class GuardFailed(AssertionError):
    """What the guards found after a scenario: a changed ledger, a leak, a broken cleanup."""


def _attempt(problems: list[str], what: str, phase: Callable[[], None]) -> None:
    try:
        phase()
    except AssertionError as error:
        problems.append(str(error))
    except Exception as error:  # every phase runs; the scenario reports them all
        problems.append(f"{what} failed: {type(error).__name__}: {first_line(error)}")


def _count(context: Any, entry: ScenarioMetrics, workspace: Workspace, admin: Connection) -> None:
    after = context.run_metrics.last_counters = database_counters(admin)
    # (None, None) across a statistics reset (a crash): that delta is not known.
    entry.xact_commit, entry.xact_rollback = after.transactions_since(context.counters_before)
    entry.peak_connections = workspace.peak_connections
    entry.rows_changed = workspace.rows_changed
    entry.commits = workspace.commits
    entry.rollbacks = workspace.rollbacks
    entry.commits_unknown = workspace.commits_unknown


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
    run = getattr(context, "run", None)
    server = getattr(context, "server", None)
    try:
        matrix = getattr(context, "matrix", None)
        if matrix is not None and matrix.cells:
            matrix.write(matrix_path(context))
        metrics = getattr(context, "run_metrics", None)
        if metrics is not None:
            metrics.write(reports_dir(context) / "metrics.json")
            for line in metrics.summary():
                print(line, flush=True)
        evidence = getattr(context, "evidence", None)
        if evidence:
            path = reports_dir(context) / "evidence.json"
            path.write_text(json.dumps(evidence, indent=2) + "\n")
        left = run.close() if run is not None else []
        if left:
            raise AssertionError(f"scenario schemas left behind and dropped now: {left}")
        if run is not None and run.scenarios == 0:
            raise AssertionError(
                "no scenario ran: check the paths and the tag expression "
                "given to behave: together they selected none"
            )
    finally:
        if server is not None:
            server.stop()


def _stop_on_sigterm() -> None:
    """SIGTERM takes the same path as Ctrl-C: behave aborts and after_all stops the server."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
