"""reports/run.json: the one record of a run, and the only file its views read.

The harness writes it once, at the end of the run (failspec.harness.hooks.after_all, from
behave's own model of the features and the harness's parts), or at once for a run that
could not start (``write_setup_error``). The HTML report (failspec.report.html) and the
closing line (failspec.report.closing) are rendered from it alone. Its top-level keys:

* ``format``: this shape's version (1);
* ``server``: ``{"backend", "version", "driver", "data_layer"}`` of the run's server, the
  driver it was used with and the data layer's factory (``package.module:factory``)
  (None: none was had);
* ``data_layer``: ``{"factory", "offers", "lacks", "acknowledged_missing"}``: the data
  layer's factory, the optional capabilities of the port it offers (short names,
  failspec.ledger.port ``NAMES``), those it lacks (``{name: {"capability",
  "leaves_unchecked"}}``: the port's description of each, and the guarantee a run cannot
  check without it), and those ``-D missing_capabilities`` acknowledges as absent (None:
  no data layer was loaded);
* ``setup_error``: why the run could not start (None: it started);
* ``stopped``: why and where a run that stopped early stopped (None: it did not), as
  failspec.harness.hooks.Stopping.record gives it: ``cause``, ``signal``, ``exit_code``,
  ``not_finished`` (a location), ``finished``, ``selected``, ``not_run`` (locations);
* ``outcomes``: how many scenarios ended in each status (``scenarios``), how many
  guarantees (Rules) hold, fail or are not checked (``guarantees``), the same split in
  those that went through the data layer (``guarantees_through_data_layer``: a scenario
  of the Rule called it, or was skipped for lack of a capability of it) and those of
  PostgreSQL and the driver alone (``guarantees_without_data_layer``), the run's verdict
  (``green``: True when it exits 0; ``exit_code``: what ``./run-spec`` exits with, see
  :func:`exit_code`), and ``not_checked``:
  for each capability the data layer lacks that a selected scenario needed,
  ``{"capability", "scenarios", "rules", "leaves_unchecked", "acknowledged"}``: its
  description, how many scenarios were skipped for lack of it (NOT CHECKED), the titles of
  the Rules they are under, the guarantee they state, and whether ``missing_capabilities``
  acknowledges it;
* ``features``: each feature (name, file, location, tags, description) with its
  ``rules``; each rule (title, location, tags, description, verdict) with its
  ``scenarios``; each scenario with its location, name, tags, status, skip_reason,
  missing_capability (the short name of the capability it was skipped for lack of, else
  None), uses_data_layer (whether it called the data layer's operations at all: the
  harness counts the calls while it runs), duration_s, why (one sentence), error (the
  full text), steps (keyword, text, status, background, error, table, doc), metrics (its
  figures) and evidence;
* ``isolation_matrix``: ``{anomaly: {level: verdict}}`` (None: no scenario checked one);
* ``hang_matrix``: ``{phase: {silence: cell}}`` (None: no scenario measured one);
* ``replication_matrix``: ``{synchronous_commit level: {failure: cell}}``, each cell
  ``{"acknowledged", "waited", "told", "survived"}`` (None: no scenario measured one);
* ``isolation_generated``: the generated workloads (failspec.harness.concurrency.generated
  ``GeneratedMatrix.as_json()``): ``{"seed", "workloads": {workload: {level: {
  "transactions", "committed", "aborted", "sessions", "duration_s", "forms", "anomalies":
  {class: {"expected", "found", "example"}}}}}}`` (None: no generated scenario ran);
* ``driver_matrix``: ``{failure: {"scenario", "expected": {driver: outcome}, "observed":
  {driver: {"condition", "sqlstate", "message", "connection_invalidated", "as_expected"}}}}``
  for the failures where the drivers differ (failspec.harness.driver_matrix; a merged
  record holds both drivers' observations; None: no scenario stated one);
* ``metrics``: the run's figures (failspec.harness.guards.metrics ``Metrics.as_json()["run"]``).

Scenarios are every scenario of the features behave was given, in the files' order,
grouped under the Rule they are in (a scenario under no Rule: under one titled as its
feature). A status is one of ``STATUSES``: behave's many as passed, failed or skipped,
and for a run that stopped early, the scenario it stopped in ``not_finished`` and those
it never reached ``not_run``. Without ``--show-skipped`` the scenarios the tag expression
leaves out are left out, as behave's own reports leave them out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from behave.model import Feature, Rule, Scenario, ScenarioOutline, Step
from behave.model_type import Status
from behave.reporter.base import Reporter

#: The record's file, in the reports directory (next to behave's JUnit directory).
RUN_RECORD = "run.json"
#: The version of the record's shape.
FORMAT = 1

PASSED = "passed"
FAILED = "failed"
SKIPPED = "skipped"
#: A scenario that began and did not finish: the run stopped in the middle of it.
NOT_FINISHED = "not_finished"
#: A scenario the run never reached: it stopped early.
NOT_RUN = "not_run"
STATUSES = (PASSED, FAILED, SKIPPED, NOT_FINISHED, NOT_RUN)
#: Not a status of its own (such a scenario is skipped): what :func:`verdict` is given for
#: a scenario skipped for lack of a capability of the data layer, which leaves its Rule
#: not checked even when the Rule's other scenarios pass.
NOT_CHECKED = "not_checked"
#: A guarantee (Rule) holds, fails, or is not checked.
VERDICTS = ("holds", "fails", "unchecked")

# behave names each row of a Scenario Outline "<name> -- @1.2 <examples name>".
_OUTLINE_ROW = re.compile(r"\s+-- @\d+\.\d+.*$")
# behave puts this before the message of a failed assertion.
_ASSERT_PREFIX = re.compile(r"^(ASSERT FAILED|Assertion Failed):\s*")
# The step statuses behave's JUnit reporter takes a scenario's error from.
_ERROR_STEPS = (Status.error, Status.hook_error, Status.pending, Status.undefined)


class ReportError(Exception):
    """The reports directory does not hold a run record a view can be built from."""


def outcome(status: str | None) -> str:
    """behave's many statuses as the three a reader needs: passed, failed or skipped
    (a run that stopped early adds not_finished and not_run)."""
    if status == "passed":
        return PASSED
    if status in (None, "skipped", "untested"):
        return SKIPPED
    return FAILED


def verdict(statuses: Iterable[str]) -> str:
    """A guarantee's verdict from its scenarios' statuses: fails (one failed), holds (every
    one that ran passed, and none was left unfinished or not run by a run that stopped
    early, or skipped for a capability the data layer lacks: ``NOT_CHECKED``), or
    unchecked."""
    seen = set(statuses)
    if FAILED in seen:
        return "fails"
    if seen & {NOT_FINISHED, NOT_RUN, NOT_CHECKED}:
        return "unchecked"
    return "holds" if PASSED in seen else "unchecked"


def scenario_name(name: str) -> str:
    """A scenario's name without the " -- @1.2 examples" behave adds to an outline's row."""
    return _OUTLINE_ROW.sub("", name)


def first_meaningful_line(text: str) -> str:
    """The message of an error text on one line: the assertion, or a traceback's last line.

    PyHamcrest spreads a mismatch over two lines ("Expected: …" / "but: …"): they are joined.
    """
    lines = [_ASSERT_PREFIX.sub("", line).strip() for line in text.strip().splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return ""
    if lines[0].startswith("Traceback"):
        return lines[-1]
    return " ".join(lines[:2]) if lines[0].startswith("Expected:") else lines[0]


class Features(Reporter):
    """Keeps every feature of the run, run or not: behave reports each to its reporters
    once it is done with it, also those a run that stopped early never reached (its
    formatters see only the features it ran)."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.features: list[Feature] = []

    def feature(self, feature: Feature) -> None:
        self.features.append(feature)

    @classmethod
    def attach(cls, config: Any) -> Features:
        """A new one, added to ``config``'s reporters (call it in before_all)."""
        features = cls(config)
        config.reporters.append(features)
        return features


def build(
    features: list[Feature],
    config: Any,
    *,
    server: dict[str, str] | None = None,
    data_layer: dict[str, Any] | None = None,
    stopped: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    evidence: dict[str, dict[str, Any]] | None = None,
    isolation: dict[str, dict[str, str]] | None = None,
    hangs: dict[str, dict[str, dict[str, Any]]] | None = None,
    replication: dict[str, dict[str, dict[str, Any]]] | None = None,
    generated: dict[str, Any] | None = None,
    drivers: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The record of a run from behave's model of its ``features`` (once behave has run
    them, e.g. in after_all) and the harness's parts (see :func:`attach`).

    ``stopped`` is what a run that stopped early knows about its stop (see the module's
    docstring); ``data_layer``: the record's ``data_layer`` (see there); ``config`` is
    behave's configuration (its tag expression and ``show_skipped``).
    """
    record: dict[str, Any] = {
        "format": FORMAT,
        "server": server,
        "data_layer": data_layer,
        "setup_error": None,
        "stopped": stopped,
        "outcomes": None,
        "features": [],
        "isolation_matrix": None,
        "hang_matrix": None,
        "replication_matrix": None,
        "isolation_generated": None,
        "driver_matrix": None,
        "metrics": None,
    }
    for feature in features:
        rules = _rules(feature, config, stopped)
        if rules:
            record["features"].append(
                {
                    "name": feature.name,
                    "file": feature.location.filename,
                    "location": str(feature.location),
                    "tags": list(feature.tags),
                    "description": list(feature.description),
                    "rules": rules,
                }
            )
    record["outcomes"] = outcomes(record)
    return attach(
        record,
        metrics=metrics,
        evidence=evidence,
        isolation=isolation,
        hangs=hangs,
        replication=replication,
        generated=generated,
        drivers=drivers,
    )


def attach(
    record: dict[str, Any],
    *,
    metrics: dict[str, Any] | None = None,
    evidence: dict[str, dict[str, Any]] | None = None,
    isolation: dict[str, dict[str, str]] | None = None,
    hangs: dict[str, dict[str, dict[str, Any]]] | None = None,
    replication: dict[str, dict[str, dict[str, Any]]] | None = None,
    generated: dict[str, Any] | None = None,
    drivers: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Put the harness's parts into ``record`` (each given one replaces what it held):

    * ``metrics``: ``Metrics.as_json()``; its "run" becomes the record's ``metrics``, each
      of its "scenarios" the ``metrics`` of the scenario at its location;
    * ``evidence``: location -> what the harness kept of a failed scenario;
    * ``isolation``: ``isolation.Matrix.as_json()``; ``hangs``: ``HangMatrix.as_json()``;
      ``replication``: ``faults.replication.ReplicationMatrix.as_json()`` (an empty one
      leaves None, as for the others); ``generated``: ``GeneratedMatrix.as_json()``.
      leaves None, as for the others); ``drivers``: ``DriverMatrix.as_json()``.
    """
    if metrics is not None:
        record["metrics"] = metrics.get("run")
        figures = {entry["location"]: entry for entry in metrics.get("scenarios", [])}
        for scenario in scenarios(record):
            scenario["metrics"] = figures.get(scenario["location"])
    if evidence is not None:
        for scenario in scenarios(record):
            scenario["evidence"] = evidence.get(scenario["location"])
    if isolation is not None:
        record["isolation_matrix"] = isolation or None
    if hangs is not None:
        record["hang_matrix"] = hangs or None
    if replication is not None:
        record["replication_matrix"] = replication or None
    if generated is not None:
        record["isolation_generated"] = generated or None
    if drivers is not None:
        record["driver_matrix"] = drivers or None
    return record


def scenarios(record: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every scenario of a record, in order."""
    for feature in record["features"]:
        for rule in feature["rules"]:
            yield from rule["scenarios"]


def outcomes(record: dict[str, Any]) -> dict[str, Any]:
    """How many scenarios ended in each status, guarantees in each verdict (all of them,
    and split by whether they went through the data layer), what was not checked, and the
    run's overall verdict (``green``, ``exit_code``): see the module's docstring."""
    statuses = [scenario["status"] for scenario in scenarios(record)]
    rules = [rule for feature in record["features"] for rule in feature["rules"]]
    through = [rule["verdict"] for rule in rules if through_data_layer(rule)]
    without = [rule["verdict"] for rule in rules if not through_data_layer(rule)]
    found: dict[str, Any] = {
        "scenarios": {status: statuses.count(status) for status in STATUSES},
        "guarantees": {each: [r["verdict"] for r in rules].count(each) for each in VERDICTS},
        "guarantees_through_data_layer": {each: through.count(each) for each in VERDICTS},
        "guarantees_without_data_layer": {each: without.count(each) for each in VERDICTS},
        "not_checked": not_checked(record),
    }
    found["exit_code"] = exit_code({**record, "outcomes": found})
    found["green"] = found["exit_code"] == 0
    return found


def through_data_layer(rule: dict[str, Any]) -> bool:
    """Whether a guarantee (Rule) is one of the data layer's: a scenario of it called the
    data layer (``uses_data_layer``), or was skipped for lack of a capability of it. The
    others state what PostgreSQL and the driver do (the isolation matrix, the pool,
    connection limits, invalid queries …): they hold whatever layer runs."""
    return any(s.get("uses_data_layer") or s.get("missing_capability") for s in rule["scenarios"])


def exit_code(record: dict[str, Any]) -> int:
    """The exit code the run computes from what ``record`` holds (its ``outcomes``' counts):
    2, it could not start; the stop's code (130 SIGINT, 143 SIGTERM, 1), it stopped early;
    1, a scenario failed, none ran, or a capability the data layer lacks left scenarios
    NOT CHECKED without ``missing_capabilities`` acknowledging it; else 0 (green)."""
    if record.get("setup_error") is not None:
        return 2
    stopped = record.get("stopped")
    if stopped is not None:
        return int(stopped.get("exit_code") or 1)
    counts = record["outcomes"]["scenarios"]
    if counts[FAILED] or counts[NOT_FINISHED] or counts[NOT_RUN] or not any(counts.values()):
        return 1
    return 1 if unacknowledged(record) else 0


def not_checked(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """For each capability the data layer lacks that a scenario of the record needed (in
    the port's order): see ``outcomes`` in the module's docstring."""
    layer = record.get("data_layer") or {}
    acknowledged = set(layer.get("acknowledged_missing") or [])
    found: dict[str, dict[str, Any]] = {}
    for name, lacked in (layer.get("lacks") or {}).items():
        rules = [
            rule
            for feature in record["features"]
            for rule in feature["rules"]
            if any(s.get("missing_capability") == name for s in rule["scenarios"])
        ]
        if rules:
            found[name] = {
                "capability": lacked["capability"],
                "scenarios": sum(
                    s.get("missing_capability") == name for r in rules for s in r["scenarios"]
                ),
                "rules": [rule["title"] for rule in rules],
                "leaves_unchecked": lacked["leaves_unchecked"],
                "acknowledged": name in acknowledged,
            }
    return found


def unacknowledged(record: dict[str, Any]) -> list[str]:
    """The capabilities the data layer lacks, not acknowledged as absent, for lack of which
    a scenario was not checked: a run with any is not green."""
    counts = (record.get("outcomes") or {}).get("not_checked") or {}
    return [name for name, entry in counts.items() if not entry["acknowledged"]]


def setup_error(message: str) -> dict[str, Any]:
    """The record of a run that could not start: nothing but why."""
    return {
        "format": FORMAT,
        "server": None,
        "data_layer": None,
        "setup_error": message,
        "stopped": None,
        "outcomes": {
            "scenarios": dict.fromkeys(STATUSES, 0),
            "guarantees": dict.fromkeys(VERDICTS, 0),
            "guarantees_through_data_layer": dict.fromkeys(VERDICTS, 0),
            "guarantees_without_data_layer": dict.fromkeys(VERDICTS, 0),
            "not_checked": {},
            "exit_code": 2,
            "green": False,
        },
        "features": [],
        "isolation_matrix": None,
        "hang_matrix": None,
        "replication_matrix": None,
        "isolation_generated": None,
        "driver_matrix": None,
        "metrics": None,
    }


def write(directory: str | Path, record: dict[str, Any]) -> Path:
    """Write ``record`` to ``<directory>/run.json``."""
    path = Path(directory) / RUN_RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def write_setup_error(directory: str | Path, message: str) -> Path:
    """Write the record of a run that could not start to ``<directory>/run.json``."""
    return write(directory, setup_error(message))


def read(directory: Path) -> dict[str, Any]:
    """The record in ``<directory>/run.json``.

    Raises ReportError when it is missing, empty or not a run record.
    """
    path = directory / RUN_RECORD
    if not path.exists():
        raise ReportError(f"{path} is missing: the run ended before the harness wrote it")
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise ReportError(f"{path} is empty: the run ended while the harness wrote it")
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        raise ReportError(f"{path} is no JSON: {error}") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ReportError(f"{path} is no run record of format {FORMAT}")
    return record


# -- behave's model as the record's features ------------------------------------------------


def _rules(feature: Feature, config: Any, stopped: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The feature's scenarios, in its file's order, under the Rules they are in."""
    rules: dict[str, dict[str, Any]] = {}
    for rule, scenario in _walk(feature):
        if not config.show_skipped and not scenario.should_run_with_tags(config.tag_expression):
            continue  # left out by the tag expression: behave's reports leave it out too
        title = rule.name if rule is not None else feature.name
        where = rule if rule is not None else feature
        entry = rules.setdefault(
            title,
            {
                "title": title,
                "location": str(where.location),
                "tags": list(rule.tags) if rule is not None else [],
                "description": list(rule.description) if rule is not None else [],
                "verdict": None,
                "scenarios": [],
            },
        )
        entry["scenarios"].append(_scenario(scenario, stopped))
    for entry in rules.values():
        entry["verdict"] = rule_verdict(entry["scenarios"])
    return list(rules.values())


def rule_verdict(scenarios: Iterable[dict[str, Any]]) -> str:
    """A Rule's verdict from its scenarios' records (as :func:`verdict`), a scenario skipped
    for lack of a capability of the data layer (``missing_capability``) counting as
    ``NOT_CHECKED``: what a serial run records, and a merge of parts must record again."""
    return verdict(NOT_CHECKED if s.get("missing_capability") else s["status"] for s in scenarios)


def _walk(parent: Any, rule: Rule | None = None) -> Iterator[tuple[Rule | None, Scenario]]:
    """Every runnable scenario of a feature with the Rule it is under."""
    for item in parent.run_items:
        if isinstance(item, Rule):
            yield from _walk(item, item)
        elif isinstance(item, ScenarioOutline):
            yield from ((rule, s) for s in item.scenarios)
        else:
            yield rule, item


def _scenario(scenario: Scenario, stopped: dict[str, Any] | None) -> dict[str, Any]:
    location = str(scenario.location)
    status = outcome(scenario.status.name)
    why = error = None
    if stopped is not None and location == stopped.get("not_finished"):
        status = NOT_FINISHED
        why = f"Not finished: {stopped['cause']}."
    elif stopped is not None and location in stopped.get("not_run", []):
        status = NOT_RUN
    elif status == FAILED:
        why, error = _explain(scenario)
    background = len(list(scenario.background_steps))
    return {
        "location": location,
        "name": scenario_name(scenario.name),
        "tags": list(scenario.tags),
        "status": status,
        "skip_reason": getattr(scenario, "skip_reason", None) if status == SKIPPED else None,
        "missing_capability": (
            getattr(scenario, "failspec_missing_capability", None) if status == SKIPPED else None
        ),
        "uses_data_layer": bool(getattr(scenario, "failspec_uses_data_layer", False)),
        "duration_s": round(scenario.duration, 4),
        "why": why,
        "error": error,
        "steps": [_step(step, index < background) for index, step in enumerate(scenario.all_steps)],
        "metrics": None,
        "evidence": None,
    }


def _step(step: Step, background: bool) -> dict[str, Any]:
    status = outcome(step.status.name)
    return {
        "keyword": step.keyword,
        "text": step.name,
        "status": status,
        "background": background,
        "error": (step.error_message or None) if status == FAILED else None,
        "table": [list(step.table.headings), *map(list, step.table.rows)] if step.table else None,
        "doc": str(step.text) if step.text is not None else None,
    }


def _explain(scenario: Scenario) -> tuple[str, str]:
    """One sentence that says why a scenario failed, and the full text behind it: the
    message of its failed assertion, else the error behave's JUnit report gives it."""
    broken = next((s for s in scenario.all_steps if outcome(s.status.name) == FAILED), None)
    where = f"“{broken.keyword} {broken.name}”" if broken else "the scenario's hooks"
    if broken is not None and broken.status == Status.failed and broken.error_message:
        detail = "\n".join(broken.error_message.splitlines())
    else:
        detail = _problem(scenario)
    message = first_meaningful_line(detail) or f"it ended as {scenario.status.name}"
    return f"{where} failed: {message}", detail


def _problem(scenario: Scenario) -> str:
    """'Type: message' of a failed scenario, as behave's JUnit reporter gives it: from its
    first step in error (or failed, for a failure), else from the scenario's own error (a
    hook's)."""
    if scenario.status.is_error():
        step = next((s for s in scenario.all_steps if s.status in _ERROR_STEPS), None)
    elif scenario.status.is_failure():
        step = next((s for s in scenario.all_steps if s.status == Status.failed), None)
    else:
        return ""
    if step is not None:
        return f"{type(step.exception).__name__}: {str(step.exception).strip()}"
    kind = type(scenario.exception).__name__ if scenario.exception else "UnknownError"
    return f"{kind}: {(scenario.error_message or '').strip()}"
