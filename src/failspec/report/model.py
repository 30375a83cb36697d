"""What a run did, read back from the files it left in the reports directory.

behave 1.3.3's JSON output has no Rules: each feature is one flat list of scenarios and
backgrounds. The Rules (and the steps of scenarios that never ran) come from the feature
files, parsed with behave's own parser and matched to the JSON by location (file:line).

A run that stopped early (interrupted, or its server gone) leaves stopped-early.json
(failspec.report.junit.write_stopped_early): the scenario it was in the middle of is
"not finished", and the scenarios it never reached, which behave's JSON leaves out, are
"not run"; neither counts for or against a guarantee.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from behave.model import Rule as ParsedRule
from behave.model import Scenario as ParsedScenario
from behave.model import ScenarioOutline
from behave.parser import parse_file

from failspec.report import junit

#: The anomalies of the isolation matrix, in the order of Adya's and Hermitage's tables.
ANOMALIES = {
    "G0": "dirty write",
    "G1a": "aborted read",
    "G1b": "intermediate read",
    "G1c": "circular information flow",
    "OTV": "observed transaction vanishes",
    "PMP": "predicate-many-preceders",
    "P4": "lost update",
    "G-single": "read skew",
    "G2-item": "write skew",
    "G2": "anti-dependency cycles",
}
LEVELS = ("read uncommitted", "read committed", "repeatable read", "serializable")

# behave names each row of a Scenario Outline "<name> -- @1.2 <examples name>".
_OUTLINE_ROW = re.compile(r"\s+-- @\d+\.\d+.*$")
# behave puts this before the message of a failed assertion.
_ASSERT_PREFIX = re.compile(r"^(ASSERT FAILED|Assertion Failed):\s*")


class ReportError(Exception):
    """The reports directory does not hold what a report is built from."""


#: A scenario that began and did not finish: the run stopped in the middle of it.
NOT_FINISHED = "not_finished"
#: A scenario the run never reached: it stopped early.
NOT_RUN = "not_run"


def outcome(status: str | None) -> str:
    """behave's many statuses as the three a reader needs: passed, failed or skipped
    (the report adds not_finished and not_run for a run that stopped early)."""
    if status == "passed":
        return "passed"
    if status in (None, "skipped", "untested"):
        return "skipped"
    return "failed"


@dataclass
class Step:
    keyword: str
    text: str
    status: str
    background: bool
    table: list[list[str]] | None = None
    doc: str | None = None


@dataclass
class Evidence:
    """What the harness kept of a failed scenario: its entry of reports/evidence.json."""

    server_log: str = ""  # the server log's last lines (the whole server's, not only its)
    proxy_log: str = ""  # the fault proxy's events (@network scenarios only)
    transcripts: dict[str, list[str]] = field(default_factory=dict)  # session -> lines
    leaks: list[str] = field(default_factory=list)  # what the leak guard found
    imbalances: list[str] = field(default_factory=list)  # what money conservation found
    other: dict[str, Any] = field(default_factory=dict)  # keys this report does not know

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Evidence:
        known = {"server_log", "proxy_log", "transcripts", "leaks", "imbalances"}
        return cls(
            server_log=str(data.get("server_log") or ""),
            proxy_log=str(data.get("proxy_log") or ""),
            transcripts={str(k): list(v) for k, v in (data.get("transcripts") or {}).items()},
            leaks=list(data.get("leaks") or []),
            imbalances=list(data.get("imbalances") or []),
            other={k: v for k, v in data.items() if k not in known},
        )

    @property
    def contents(self) -> list[str]:
        """What it holds besides the full error, in words: ["the server's log", …]."""
        parts = []
        if self.imbalances:
            parts.append("where the books do not balance")
        if self.leaks:
            parts.append("what it left open")
        if self.transcripts:
            parts.append("what each session did")
        if self.proxy_log:
            parts.append("the network's log")
        if self.server_log:
            parts.append("the server's log")
        return parts


@dataclass
class Scenario:
    name: str
    location: str
    status: str
    steps: list[Step]
    why: str | None = None  # one sentence that explains a failure
    detail: str | None = None  # the failure's full text, for programmers
    skip_reason: str | None = None
    metrics: dict[str, Any] | None = None  # its entry of metrics.json "scenarios"
    evidence: Evidence | None = None


@dataclass
class Rule:
    title: str
    scenarios: list[Scenario] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        """fails (a scenario failed), holds (every scenario that ran passed, and none was
        left unfinished or not run by a run that stopped early), or unchecked."""
        statuses = {s.status for s in self.scenarios}
        if "failed" in statuses:
            return "fails"
        if statuses & {NOT_FINISHED, NOT_RUN}:
            return "unchecked"
        return "holds" if "passed" in statuses else "unchecked"


@dataclass
class Feature:
    name: str
    file: str
    description: list[str]
    rules: list[Rule]


@dataclass
class Matrix:
    levels: list[str]
    rows: list[tuple[str, str, list[str]]]  # anomaly id, plain name, one cell per level


@dataclass
class HangCell:
    """What ended one wait (an entry of reports/hang-matrix.json)."""

    bound: str  # in the specification's words: "the connect timeout"
    setting: str  # the setting: "connect_timeout" ("none": an answer, not a wait)
    expected_s: float
    measured_s: float
    outcome: str  # the condition the request failed with, or "succeeded"
    within: bool  # measured within the tolerance of expected
    unbounded: bool = False  # no client setting ended it; the data layer's deadline did
    scenario: str = ""  # where the scenario that measured it is


@dataclass
class HangMatrix:
    faults: list[str]  # the columns: kinds of silence the run measured
    rows: list[tuple[str, list[HangCell | None]]]  # phase, one cell per column (None: not run)


@dataclass
class Run:
    features: list[Feature]
    setup_error: str | None = None
    summary: dict[str, Any] | None = (
        None  # metrics.json "run" (see failspec.harness.guards.metrics)
    )
    matrix: Matrix | None = None
    hangs: HangMatrix | None = None
    stopped: dict[str, Any] | None = None  # stopped-early.json, when the run stopped early

    @property
    def headline(self) -> str | None:
        """How a run that stopped early stopped: 'Interrupted (SIGINT) after 35 of 142
        scenarios', 'Stopped after 1 of 4 scenarios: the server stopped: …'."""
        if self.stopped is None:
            return None
        after = f"after {self.stopped['finished']} of {self.stopped['selected']} scenarios"
        if self.stopped.get("signal"):
            return f"Interrupted ({self.stopped['signal']}) {after}"
        return f"Stopped {after}: {self.stopped['cause']}"

    @property
    def rules(self) -> list[Rule]:
        return [rule for feature in self.features for rule in feature.rules]

    @property
    def scenarios(self) -> list[Scenario]:
        return [scenario for rule in self.rules for scenario in rule.scenarios]

    def count(self, status: str) -> int:
        return sum(s.status == status for s in self.scenarios)

    def verdicts(self, verdict: str) -> int:
        return sum(r.verdict == verdict for r in self.rules)


def load_run(reports: Path, base: Path) -> Run:
    """Read a run from ``reports`` (behave.json, junit/, the harness's JSON files).

    ``base`` is the directory behave ran in: the feature locations are relative to it.
    """
    setup_error = junit.read_setup_error(reports / "junit")
    if setup_error is not None:
        return Run(features=[], setup_error=setup_error)  # the run did nothing else
    behave_json = reports / "behave.json"
    if not behave_json.exists():
        raise ReportError(f"{behave_json} is missing: run behave with -f json -o {behave_json}")
    text = behave_json.read_text(encoding="utf-8")
    if not text.strip():
        raise ReportError(f"{behave_json} is empty: behave ended before it wrote any result")
    metrics = _read_json(reports / "metrics.json") or {}
    per_scenario = {m["location"]: m for m in metrics.get("scenarios", [])}
    evidence = _read_json(reports / "evidence.json") or {}
    problems = junit.read_problems(reports / "junit")
    stopped = junit.read_stopped_early(reports)
    not_run: dict[str, list[int]] = {}
    for location in (stopped or {}).get("not_run", []):
        file, line = location.rsplit(":", 1)
        not_run.setdefault(file, []).append(int(line))
    features = []
    for data in json.loads(text):
        file = data["location"].rsplit(":", 1)[0]
        features.append(_feature(data, base, problems, not_run.pop(file, [])))
    # Features the run never reached are not in behave's JSON at all.
    features += [_feature_not_run(file, base, lines) for file, lines in not_run.items()]
    for feature in features:
        for scenario in (s for rule in feature.rules for s in rule.scenarios):
            scenario.metrics = per_scenario.get(scenario.location)
            # behave's JSON keeps no skip reason; the harness's metrics may.
            if scenario.metrics and scenario.status == "skipped":
                scenario.skip_reason = scenario.metrics.get("skip_reason")
            if scenario.status == "failed" and scenario.location in evidence:
                scenario.evidence = Evidence.from_json(evidence[scenario.location])
            if stopped and scenario.location == stopped.get("not_finished"):
                scenario.status, scenario.detail = NOT_FINISHED, None
                scenario.why = f"Not finished: {stopped['cause']}."
    summary = metrics.get("run")
    for slow in (summary or {}).get("slowest", []):
        slow["name"] = scenario_name(slow["name"])
    matrix = _read_json(reports / "isolation-matrix.json")
    hangs = _read_json(reports / "hang-matrix.json")
    return Run(
        features=features,
        summary=summary,
        matrix=_matrix(matrix) if matrix else None,
        hangs=_hang_matrix(hangs) if hangs else None,
        stopped=stopped,
    )


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _feature(
    data: dict[str, Any],
    base: Path,
    problems: dict[tuple[str, str], str],
    not_run: list[int],
) -> Feature:
    """A feature from behave's JSON, with the scenarios at the lines ``not_run`` (which
    the run never reached) in their places."""
    file = data["location"].rsplit(":", 1)[0]
    parsed = parse_file(str(base / file))
    by_line = {s.location.line: (rule, s) for rule, s in _walk(parsed)}
    found: dict[int, tuple[str | None, Scenario]] = {}
    for element in _scenarios_with_status(data.get("elements", [])):
        line = int(element["location"].rsplit(":", 1)[1])
        if line not in by_line:
            raise ReportError(f"{element['location']} is no scenario: {file} changed since the run")
        rule_title, parsed_scenario = by_line[line]
        found[line] = (rule_title, _scenario(element, parsed_scenario, data["name"], problems))
    found.update(_not_run(file, by_line, not_run))
    return Feature(
        name=data["name"],
        file=file,
        description=_lines(data.get("description")),
        rules=_rules(parsed.name, found),
    )


def _feature_not_run(file: str, base: Path, lines: list[int]) -> Feature:
    """A feature the run never reached (a run that stopped early): its scenarios at
    ``lines``, each not run."""
    parsed = parse_file(str(base / file))
    by_line = {s.location.line: (rule, s) for rule, s in _walk(parsed)}
    return Feature(
        name=parsed.name,
        file=file,
        description=_lines(parsed.description),
        rules=_rules(parsed.name, _not_run(file, by_line, lines)),
    )


def _not_run(
    file: str, by_line: dict[int, tuple[str | None, ParsedScenario]], lines: list[int]
) -> dict[int, tuple[str | None, Scenario]]:
    scenarios = {}
    for line in lines:
        if line not in by_line:
            raise ReportError(f"{file}:{line} is no scenario: {file} changed since the run")
        rule_title, parsed = by_line[line]
        steps = [_step(step, index, parsed, None) for index, step in enumerate(parsed.all_steps)]
        scenario = Scenario(scenario_name(parsed.name), f"{file}:{line}", NOT_RUN, steps)
        scenarios[line] = (rule_title, scenario)
    return scenarios


def _rules(feature_name: str, found: dict[int, tuple[str | None, Scenario]]) -> list[Rule]:
    """The scenarios, in the feature file's order, under the Rules they are in."""
    rules: dict[str, Rule] = {}
    for line in sorted(found):
        rule_title, scenario = found[line]
        title = rule_title or feature_name
        rules.setdefault(title, Rule(title)).scenarios.append(scenario)
    return list(rules.values())


def _walk(parent: Any, rule: str | None = None) -> Iterator[tuple[str | None, ParsedScenario]]:
    """Every runnable scenario of a feature with the title of the Rule it is under."""
    for item in parent.run_items:
        if isinstance(item, ParsedRule):
            yield from _walk(item, item.name)
        elif isinstance(item, ScenarioOutline):
            yield from ((rule, s) for s in item.scenarios)
        else:
            yield rule, item


def _scenarios_with_status(elements: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The scenario elements, each with its own status.

    behave 1.3.3 writes a scenario's status when the next element starts; when that is the
    Background of the next Rule, the status lands on the Background and the scenario keeps
    None. Take it back from there.
    """
    previous: dict[str, Any] | None = None
    for element in elements:
        if element["type"] == "scenario":
            if previous is not None:
                yield previous
            previous = element
        elif previous is not None and previous["status"] is None:
            previous["status"] = element.get("status")
    if previous is not None:
        yield previous


def _scenario(
    element: dict[str, Any],
    parsed: ParsedScenario,
    feature_name: str,
    problems: dict[tuple[str, str], str],
) -> Scenario:
    results = [s.get("result", {}) for s in element["steps"]]
    steps = [
        _step(step, index, parsed, results[index].get("status") if index < len(results) else None)
        for index, step in enumerate(parsed.all_steps)
    ]
    scenario = Scenario(
        name=scenario_name(element["name"]),
        location=element["location"],
        status=outcome(element["status"]),
        steps=steps,
    )
    if scenario.status == "failed":
        scenario.why, scenario.detail = _explain(element, problems, feature_name)
    return scenario


def _step(step: Any, index: int, parsed: ParsedScenario, status: str | None) -> Step:
    return Step(
        keyword=step.keyword,
        text=step.name,
        status=outcome(status),
        background=index < len(list(parsed.background_steps)),
        table=[step.table.headings, *map(list, step.table.rows)] if step.table else None,
        doc=step.text,
    )


def scenario_name(name: str) -> str:
    """A scenario's name without the " -- @1.2 examples" behave adds to an outline's row."""
    return _OUTLINE_ROW.sub("", name)


def _explain(
    element: dict[str, Any], problems: dict[tuple[str, str], str], feature_name: str
) -> tuple[str, str]:
    """One sentence that says why a scenario failed, and the full text behind it."""
    broken = next(
        (s for s in element["steps"] if outcome(s.get("result", {}).get("status")) == "failed"),
        None,
    )
    where = f"“{broken['keyword']} {broken['name']}”" if broken else "the scenario's hooks"
    if broken and "error_message" in broken["result"]:
        detail = "\n".join(_lines(broken["result"]["error_message"]))
    else:
        # behave's JSON keeps messages of failed assertions only; JUnit has the others.
        detail = junit.problem_of(problems, feature_name, element["name"]) or ""
    message = first_meaningful_line(detail) or f"it ended as {element['status']}"
    return f"{where} failed: {message}", detail


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


def _lines(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return value if isinstance(value, list) else value.splitlines()


def _matrix(data: dict[str, dict[str, str]]) -> Matrix:
    present = {level for cells in data.values() for level in cells}
    levels = [level for level in LEVELS if level in present]
    levels += sorted(present - set(LEVELS))
    ids = [a for a in ANOMALIES if a in data] + sorted(set(data) - set(ANOMALIES))
    rows = [
        (a, ANOMALIES.get(a, ""), [data[a].get(level, "not checked") for level in levels])
        for a in ids
    ]
    return Matrix(levels=levels, rows=rows)


def _hang_matrix(data: dict[str, dict[str, dict[str, Any]]]) -> HangMatrix:
    """The hang matrix as the run wrote it ({phase: {silence: cell}}, in the harness's
    order): only the columns and rows the run measured."""
    faults = list(dict.fromkeys(fault for cells in data.values() for fault in cells))
    rows = [
        (phase, [HangCell(**cells[f]) if f in cells else None for f in faults])
        for phase, cells in data.items()
    ]
    return HangMatrix(faults=faults, rows=rows)
