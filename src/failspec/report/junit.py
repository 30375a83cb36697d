"""JUnit XML beyond what behave writes: a run that could not start, a run that stopped
early.

behave writes no JUnit when before_all ends the run (hooks.abort_setup exits at once); CI
would then see no report, or a stale one. ``write_setup_error`` leaves one testcase in
<error> instead, so the run is red in JUnit as it is by its exit code.

A run that stopped early (interrupted, or its server gone) leaves the scenarios it never
reached "untested" in behave; behave's JUnit writes them without a reason, and without
``--show-skipped`` as if they had passed. :class:`JUnitReporter` writes each as skipped,
with the reason; and every skipped scenario with its reason as the ``<skipped>``'s
message (``NOT CHECKED: lacks deadline: the data layer … offers no …`` for one skipped for
lack of a capability of the data layer), which behave leaves out. The harness also
writes ``stopped-early.json`` (``write_stopped_early``) for tools; the views read the
same facts from the run's record (failspec.report.record).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

from behave.model import Scenario
from behave.model_type import Status
from behave.reporter import junit as behave_junit

SETUP_REPORT = "TESTS-setup.xml"
SETUP_CLASSNAME = "setup"
SETUP_TESTCASE = "before_all"
#: What the harness writes, next to junit/, about a run that stopped before its end.
STOPPED_EARLY = "stopped-early.json"
#: How the reason of a scenario that a run stopped early never reached begins.
NOT_RUN = "not run: "


def write_setup_error(directory: str | Path, message: str) -> Path:
    """Write ``<directory>/TESTS-setup.xml``: one testsuite, one testcase in <error>."""
    suite = ET.Element(
        "testsuite",
        name=SETUP_CLASSNAME,
        tests="1",
        errors="1",
        failures="0",
        skipped="0",
        time="0",
    )
    case = ET.SubElement(suite, "testcase", classname=SETUP_CLASSNAME, name=SETUP_TESTCASE)
    error = ET.SubElement(case, "error", type="SetupError", message=message)
    error.text = f"failspec: cannot run: {message}"
    path = Path(directory) / SETUP_REPORT
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
    return path


def read_setup_error(directory: Path) -> str | None:
    """The message of ``write_setup_error``'s report in ``directory``, if there is one."""
    path = directory / SETUP_REPORT
    if not path.exists():
        return None
    error = ET.parse(path).getroot().find("testcase/error")
    return error.get("message", "") if error is not None else None


class JUnitReporter(behave_junit.JUnitReporter):
    """behave's JUnit reporter, where a scenario the run never reached (the run stopped
    early) is a skipped testcase whose message says why: "not run: interrupted by SIGINT".

    ``stopped_by`` returns why the run stopped (None while it has not). A scenario the tag
    expression leaves out is written as in a whole run: skipped, only with --show-skipped.
    """

    def __init__(self, config: Any, stopped_by: Callable[[], str | None]) -> None:
        super().__init__(config)
        self.stopped_by = stopped_by

    def _process_scenario(self, scenario: Scenario, report: Any) -> None:
        cases = len(report.testcases)
        super()._process_scenario(scenario, report)
        if len(report.testcases) > cases:
            _skip_reason(scenario, report.testcases[-1])
        cause = self.stopped_by()
        if cause is None or scenario.status != Status.untested or len(report.testcases) == cases:
            return
        case = report.testcases[-1]
        if not scenario.should_run(self.config):  # left out: never was going to run
            if not self.show_skipped:
                report.testcases.pop()
                report.counts_tests -= 1
                return
            reason = None
        else:
            reason = NOT_RUN + cause
        skipped = case.find("skipped")
        if skipped is None:  # behave adds it to untested testcases with --show-skipped only
            skipped = ET.Element("skipped")
            case.insert(0, skipped)
            report.counts_skipped += 1
        if reason is not None:
            skipped.set("message", reason)


def _skip_reason(scenario: Scenario, case: ET.Element) -> None:
    """Give a skipped testcase (behave writes a bare ``<skipped/>``) the scenario's reason
    as its message; one skipped for lack of a capability of the data layer reads
    ``NOT CHECKED: lacks <capability>: <reason>``."""
    skipped = case.find("skipped")
    reason = getattr(scenario, "skip_reason", None)
    if skipped is None or not reason or skipped.get("message"):
        return
    capability = getattr(scenario, "failspec_missing_capability", None)
    skipped.set("message", f"NOT CHECKED: lacks {capability}: {reason}" if capability else reason)


def write_stopped_early(directory: Path, record: dict[str, Any]) -> Path:
    """Write ``<directory>/stopped-early.json``: why the run stopped, the scenario that
    did not finish, how many finished of those selected, and those never run (locations)."""
    path = directory / STOPPED_EARLY
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return path


def stopped_early_line(record: dict[str, Any]) -> str:
    """The run's early stop in one line: 'interrupted by SIGINT after 35 of 142 scenarios:
    1 not finished, 106 not run' (after a signal), or 'the server stopped: …; the run
    stopped after 1 of 4 scenarios: …'."""
    unfinished = 1 if record.get("not_finished") else 0
    after = (
        f"after {record['finished']} of {record['selected']} scenarios: "
        f"{unfinished} not finished, {len(record['not_run'])} not run"
    )
    if record.get("signal"):
        return f"{record['cause']} {after}"
    return f"{record['cause']}; the run stopped {after}"
