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
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from failspec.harness import servers
from failspec.harness.application import Application
from failspec.harness.audit import Auditor
from failspec.harness.concurrency import Interleaving
from failspec.harness.errors import SetupError
from failspec.harness.faults import ServerFaults
from failspec.harness.isolation import History, Matrix
from failspec.harness.network import Network
from failspec.harness.settings import Settings
from failspec.harness.workspace import Run
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
    matrix_path(context).unlink(missing_ok=True)  # only this run's verdicts may show


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
    if PASSWORD_AUTH in scenario.effective_tags and not context.server.demands_password():
        scenario.skip(
            f"the {context.server.backend} server accepts any password (trust authentication), "
            "so it cannot refuse a wrong one"
        )
        return
    if SERVER_CONTROL in scenario.effective_tags and not context.server.controllable:
        scenario.skip(
            f"the {context.server.backend} backend uses a server it did not start, "
            "so it cannot crash, restart or pause it"
        )
        return
    workspace = context.run.workspace(scenario.name)
    context.workspace = workspace
    context.add_cleanup(context.run.retire, workspace)
    context.audit = Auditor(workspace)
    context.app = Application(workspace)
    context.add_cleanup(context.app.close)
    deadline = SESSION_DEADLINE * context.settings.timeout_scale
    context.sessions = Interleaving(workspace, timeout=deadline)
    context.add_cleanup(context.sessions.close)
    context.history = History()
    context.server_faults = ServerFaults(context.server)
    context.add_cleanup(context.server_faults.close)
    context.network = None
    if NETWORK in scenario.effective_tags:
        context.network = Network(context.server)
        context.add_cleanup(context.network.close)
        context.app.url = context.network.url()
    context.outcome = None


def after_scenario(context: Any, scenario: Any) -> None:
    """The integrity guard: committed payments may change only where a scenario says so."""
    audit = getattr(context, "audit", None)
    if CHANGES_LEDGER in scenario.effective_tags or audit is None or audit.baseline is None:
        return
    if scenario.status.has_failed():
        return  # the scenario already says what went wrong
    audit.assert_unchanged("after the scenario")


def after_all(context: Any) -> None:
    run = getattr(context, "run", None)
    server = getattr(context, "server", None)
    try:
        matrix = getattr(context, "matrix", None)
        if matrix is not None and matrix.cells:
            matrix.write(matrix_path(context))
        left = run.close() if run is not None else []
        if left:
            raise AssertionError(f"scenario schemas left behind and dropped now: {left}")
        if run is not None and run.scenarios == 0:
            raise AssertionError(
                "no scenario ran: check the paths and the tag expression "
                "(behave 1.3 writes 'not @slow', not '~@slow')"
            )
    finally:
        if server is not None:
            server.stop()


def _stop_on_sigterm() -> None:
    """SIGTERM takes the same path as Ctrl-C: behave aborts and after_all stops the server."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
