"""What a run did, read back from its one record, reports/run.json (failspec.report.record).

The record holds everything a view shows: features, Rules, scenarios with their steps,
statuses and reasons, evidence, the matrices, the metrics, the server and whether the run
stopped early. A run that stopped early (interrupted, or its server gone) has the scenario
it was in the middle of "not finished" and those it never reached "not run"; neither
counts for or against a guarantee.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from failspec import anomalies
from failspec.report import record
from failspec.report.record import (
    FAILED,
    NOT_FINISHED,
    NOT_RUN,
    ReportError,
    first_meaningful_line,
    outcome,
    scenario_name,
)

__all__ = [
    "NOT_FINISHED",
    "NOT_RUN",
    "ReportError",
    "first_meaningful_line",
    "load_run",
    "outcome",
    "scenario_name",
]

#: The anomalies of the isolation matrix, in the order of Adya's and Hermitage's tables.
ANOMALIES = anomalies.ANOMALIES
LEVELS = ("read uncommitted", "read committed", "repeatable read", "serializable")
#: The synchronous_commit levels of the replication matrix, weakest first, each with what a
#: COMMIT waits for before the application is told (PostgreSQL documentation, 19.5.1
#: "synchronous_commit" and 26.2.8 "Synchronous Replication").
SYNC_LEVELS = {
    "off": "waits for no standby, nor for the primary's own disk",
    "local": "waits for the primary's own disk, not for a standby",
    "remote_write": "waits until the standby has written the payment to its operating system",
    "on": "waits until the standby has saved the payment to its disk",
    "remote_apply": "waits until the standby shows the payment to its readers",
}
#: The failures of the replication matrix, in plain words.
FAILURES = {
    "primary crash + promotion": "the primary crashes and the standby is promoted",
    "standby cut off + promotion": (
        "the standby is cut off, then the primary crashes and the standby is promoted"
    ),
    "network partition + promotion": (
        "the network between primary and standby is partitioned, then the primary crashes "
        "and the standby is promoted"
    ),
}


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
    """What the harness kept of a failed scenario (its "evidence" in run.json)."""

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
    #: The capability of the data layer it was skipped for lack of (NOT CHECKED), or None.
    missing_capability: str | None = None
    #: Whether it called the data layer's operations (run.json "uses_data_layer"; None:
    #: a record from before the harness counted them).
    uses_data_layer: bool | None = None
    metrics: dict[str, Any] | None = None  # its figures (failspec.harness.guards.metrics)
    evidence: Evidence | None = None


@dataclass
class Rule:
    title: str
    scenarios: list[Scenario] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        """fails (a scenario failed), holds (every scenario that ran passed, and none was
        left unfinished or not run by a run that stopped early, or skipped for lack of a
        capability of the data layer), or unchecked."""
        return record.verdict(
            record.NOT_CHECKED if s.missing_capability else s.status for s in self.scenarios
        )

    @property
    def through_data_layer(self) -> bool:
        """Whether a scenario of it called the data layer, or was skipped for lack of a
        capability of it (failspec.report.record.through_data_layer)."""
        return any(s.uses_data_layer or s.missing_capability for s in self.scenarios)


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
    """What ended one wait (a cell of run.json's "hang_matrix")."""

    bound: str  # in the specification's words: "the connect timeout"
    setting: str  # the setting: "connect_timeout" ("none": an answer, not a wait)
    expected_s: float
    measured_s: float
    outcome: str  # the condition the request failed with, or "succeeded"
    within: bool  # measured within the tolerance of expected
    unbounded: bool = False  # no client setting ended it; the data layer's deadline did
    scenario: str = ""  # where the scenario that measured it is
    late_s: float = 0.0  # how much later than 20 % past the bound it may end (s)


@dataclass
class HangMatrix:
    faults: list[str]  # the columns: kinds of silence the run measured
    rows: list[tuple[str, list[HangCell | None]]]  # phase, one cell per column (None: not run)


@dataclass
class ReplicationCell:
    """What one payment met under one synchronous_commit level and one failure (a cell of
    run.json's "replication_matrix")."""

    acknowledged: bool  # the application was told the payment was applied
    waited: bool  # its COMMIT was waiting for the standby when the failure fell
    told: str  # what the application was told: "applied", or its error's condition
    survived: bool  # the promoted standby holds the payment

    @property
    def kind(self) -> str:
        """lost (told applied, and the promoted standby lacks it: the one broken promise),
        kept (told applied, and it survived), in_doubt (told it failed, yet it survived) or
        not_acknowledged (told it failed, and it is gone: nothing the application was told
        about is lost)."""
        if self.acknowledged:
            return "kept" if self.survived else "lost"
        return "in_doubt" if self.survived else "not_acknowledged"

    @property
    def words(self) -> str:
        """The cell for a reader: 'told applied · lost', 'waited, told connection_lost · not
        acknowledged, so nothing acknowledged lost'."""
        told = f"{'waited, ' if self.waited else ''}told {self.told}"
        return f"{told} · {_AFTER_PROMOTION[self.kind]}"


_AFTER_PROMOTION = {
    "kept": "survived",
    "lost": "lost",
    "in_doubt": "not acknowledged, yet it survived: in doubt",
    "not_acknowledged": "not acknowledged, so nothing acknowledged lost",
}


@dataclass
class ReplicationMatrix:
    #: the columns: each failure the run inflicted, as the harness names it, in plain words
    failures: list[tuple[str, str]]
    #: synchronous_commit level, what it waits for, one cell per column (None: not run)
    rows: list[tuple[str, str, list[ReplicationCell | None]]]


#: The classes of the generated matrix (run.json "isolation_generated"), in plain words, in
#: the checker's order (failspec.harness.concurrency.cycles.CLASSES, and the bank's one).
GENERATED = {
    **anomalies.named(*anomalies.CHECKED_IN_HISTORIES),
    "read skew over balances": "a read of every balance with a total the books never had",
}
#: The generated workloads, in plain words.
WORKLOADS = {
    "list-append": "shared lists, read and appended to",
    "bank": "transfers through the ledger, and reads of every balance",
}


@dataclass
class GeneratedCell:
    """One class at one level of a generated workload (a cell of "isolation_generated")."""

    expected: str | None  # "never" or "allowed", as the specification says; None: not said
    found: int
    example: str | None

    @property
    def kind(self) -> str:
        """held (never, and not found), broken (never, yet found: a real finding),
        observed / not_observed (allowed), or unchecked (the specification said nothing)."""
        if self.expected == "never":
            return "broken" if self.found else "held"
        if self.expected == "allowed":
            return "observed" if self.found else "not_observed"
        return "unchecked"

    def words(self, transactions: int) -> str:
        """'never · not found', 'never · found 2', 'allowed · observed 12', 'allowed · not
        observed in 301 transactions'."""
        if self.kind == "held":
            return "never · not found"
        if self.kind == "broken":
            return f"never · found {self.found}"
        if self.kind == "observed":
            return f"allowed · observed {self.found}"
        if self.kind == "not_observed":
            return f"allowed · not observed in {transactions} transactions"
        return f"found {self.found}" if self.found else "not found"


@dataclass
class GeneratedTable:
    """One workload: its levels (with what ran) and one row per class."""

    workload: str
    plain: str
    #: level -> its figures: transactions, committed, aborted (by condition), sessions…
    levels: list[tuple[str, dict[str, Any]]]
    #: class, its plain name, one cell per level (None: that level did not check it)
    rows: list[tuple[str, str, list[GeneratedCell | None]]]


@dataclass
class Generated:
    seed: int
    tables: list[GeneratedTable]


#: The drivers of the driver matrix's columns, the default first (failspec.drivers).
DRIVERS = ("psycopg2", "psycopg")


@dataclass
class DriverCell:
    """What one driver is specified to report for one failure, and what a run with it
    reported (None: no run with that driver is in the record)."""

    expected: str
    observed: dict[str, Any] | None

    @property
    def kind(self) -> str:
        """ "as_expected", "unexpected" or "not_run"."""
        if self.observed is None:
            return "not_run"
        return "as_expected" if self.observed.get("as_expected") else "unexpected"


@dataclass
class DriverMatrix:
    drivers: list[str]  # the columns
    rows: list[tuple[str, str, list[DriverCell]]]  # failure, scenario location, cells


@dataclass
class Run:
    features: list[Feature]
    setup_error: str | None = None
    summary: dict[str, Any] | None = None  # run.json "metrics" (the harness's "run" figures)
    matrix: Matrix | None = None
    hangs: HangMatrix | None = None
    replication: ReplicationMatrix | None = None
    stopped: dict[str, Any] | None = None  # run.json "stopped", when the run stopped early
    generated: Generated | None = None
    drivers: DriverMatrix | None = None
    #: The run's driver (run.json "server"; for a merged record, the first run's).
    driver: str | None = None
    #: The drivers whose runs the record holds (run.json "server"'s driver, or a merged
    #: record's "merged_from").
    drivers_run: list[str] = field(default_factory=list)
    #: The data layer's factory (run.json "server"), and what the run did not check for
    #: lack of its capabilities (run.json "outcomes" "not_checked": {name: entry}).
    data_layer: str | None = None
    not_checked: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def not_checked_scenarios(self) -> int:
        """How many scenarios the run did not check for lack of a capability of the layer."""
        return sum(entry["scenarios"] for entry in self.not_checked.values())

    @property
    def not_acknowledged(self) -> list[str]:
        """The capabilities lacked and not acknowledged (``missing_capabilities``)."""
        return [name for name, entry in self.not_checked.items() if not entry["acknowledged"]]

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

    @property
    def split(self) -> bool:
        """Whether the record says which scenarios called the data layer."""
        return any(s.uses_data_layer is not None for s in self.scenarios)

    def rules_of(self, through: bool) -> list[Rule]:
        """The guarantees that went through the data layer (``through``), or not."""
        return [r for r in self.rules if r.through_data_layer == through]


def load_run(reports: Path) -> Run:
    """Read a run from ``reports/run.json`` (failspec.report.record), and nothing else.

    Raises ReportError when there is no run record to read.
    """
    data = record.read(reports)
    if data.get("setup_error") is not None:
        return Run(features=[], setup_error=data["setup_error"])  # the run did nothing else
    features = [
        Feature(
            name=feature["name"],
            file=feature["file"],
            description=list(feature["description"]),
            rules=[
                Rule(rule["title"], [_scenario(s) for s in rule["scenarios"]])
                for rule in feature["rules"]
            ],
        )
        for feature in data["features"]
    ]
    summary = data.get("metrics")
    for slow in (summary or {}).get("slowest", []):
        slow["name"] = scenario_name(slow["name"])
    matrix = data.get("isolation_matrix")
    hangs = data.get("hang_matrix")
    replication = data.get("replication_matrix")
    generated = data.get("isolation_generated")
    return Run(
        features=features,
        summary=summary,
        matrix=_matrix(matrix) if matrix else None,
        hangs=_hang_matrix(hangs) if hangs else None,
        replication=_replication_matrix(replication) if replication else None,
        stopped=data.get("stopped"),
        generated=_generated(generated) if generated else None,
        drivers=_driver_matrix(data["driver_matrix"]) if data.get("driver_matrix") else None,
        drivers_run=_drivers_run(data),
        driver=(data.get("server") or {}).get("driver"),
        data_layer=(data.get("server") or {}).get("data_layer"),
        not_checked=dict((data.get("outcomes") or {}).get("not_checked") or {}),
    )


def _drivers_run(data: dict[str, Any]) -> list[str]:
    merged = data.get("merged_from")
    if merged:
        return [run["driver"] for run in merged if run.get("driver")]
    driver = (data.get("server") or {}).get("driver")
    return [driver] if driver else []


def _driver_matrix(data: dict[str, dict[str, Any]]) -> DriverMatrix:
    """The driver matrix as run.json holds it ({failure: cell}): a column per driver."""
    named = {d for cell in data.values() for d in (*cell["expected"], *cell["observed"])}
    columns = [d for d in DRIVERS if d in named] + sorted(named - set(DRIVERS))
    rows = [
        (
            failure,
            cell.get("scenario", ""),
            [DriverCell(cell["expected"].get(d, "?"), cell["observed"].get(d)) for d in columns],
        )
        for failure, cell in data.items()
    ]
    return DriverMatrix(columns, rows)


def _scenario(data: dict[str, Any]) -> Scenario:
    status = data["status"]
    kept = data.get("evidence") if status == FAILED else None  # shown with a failure only
    return Scenario(
        name=data["name"],
        location=data["location"],
        status=status,
        steps=[
            Step(s["keyword"], s["text"], s["status"], s["background"], s["table"], s["doc"])
            for s in data["steps"]
        ],
        why=data.get("why"),
        detail=data.get("error"),
        skip_reason=data.get("skip_reason"),
        missing_capability=data.get("missing_capability"),
        uses_data_layer=data.get("uses_data_layer"),
        metrics=data.get("metrics"),
        evidence=Evidence.from_json(kept) if kept is not None else None,
    )


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


def _replication_matrix(data: dict[str, dict[str, dict[str, Any]]]) -> ReplicationMatrix:
    """The replication matrix as the run wrote it ({level: {failure: cell}}, the levels
    weakest first): only the levels it measured, and the failures it inflicted, in
    :data:`FAILURES` order (any other after them) whichever level met them first."""
    inflicted = dict.fromkeys(failure for cells in data.values() for failure in cells)
    failures = [f for f in FAILURES if f in inflicted] + [f for f in inflicted if f not in FAILURES]
    rows = [
        (
            level,
            SYNC_LEVELS.get(level, ""),
            [ReplicationCell(**data[level][f]) if f in data[level] else None for f in failures],
        )
        for level in data
    ]
    return ReplicationMatrix([(f, FAILURES.get(f, f)) for f in failures], rows)


def _generated(data: dict[str, Any]) -> Generated:
    """The generated matrix as the run wrote it: its workloads in :data:`WORKLOADS` order,
    each with the levels it ran (weakest first) and the classes in :data:`GENERATED` order
    (any other after them)."""
    workloads = data["workloads"]
    names = [w for w in WORKLOADS if w in workloads] + [w for w in workloads if w not in WORKLOADS]
    tables = []
    for workload in names:
        by_level = workloads[workload]
        levels = [level for level in LEVELS if level in by_level]
        levels += [level for level in by_level if level not in LEVELS]
        kinds = dict.fromkeys(k for level in levels for k in by_level[level]["anomalies"])
        ordered = [k for k in GENERATED if k in kinds] + [k for k in kinds if k not in GENERATED]
        rows = [
            (
                kind,
                GENERATED.get(kind, ""),
                [
                    GeneratedCell(**cell) if (cell := by_level[level]["anomalies"].get(kind))
                    else None
                    for level in levels
                ],
            )
            for kind in ordered
        ]  # fmt: skip
        tables.append(
            GeneratedTable(
                workload,
                WORKLOADS.get(workload) or workload,
                [(level, by_level[level]) for level in levels],
                rows,
            )
        )
    return Generated(int(data["seed"]), tables)
