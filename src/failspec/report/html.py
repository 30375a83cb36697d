"""reports/report.html: one self-contained page for people who do not read code.

The page is rendered from reports/run.json alone (failspec.report.record). It opens from
disk with no network: inline CSS, no script. Sections whose part the record does not hold
(isolation, hang and replication matrices, metrics, evidence) are left out.

The figures are the harness's (failspec.harness.guards.metrics.Metrics.as_json), as the
record holds them. Each figure the harness writes is named here in plain words, once: a
field the harness adds or renames shows up in tests/test_report.py, not as a raw key on
the page.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from failspec.report.model import Run, load_run

REPORT = "report.html"

#: The run's figures (run.json "metrics") → "totals": key → (what it is, in a few words;
#: what it means).
TOTALS: dict[str, tuple[str, str]] = {
    "duration_s": ("time in scenarios", "the scenarios' steps, added up"),
    "overhead_ms": (
        "time the harness took around them",
        "preparing each scenario's own schema and connections, and checking after it that "
        "no committed payment changed and nothing was left open",
    ),
    "overhead_ms_median": ("harness time per scenario", "typical (median) scenario"),
    "ledger_commits": (
        "commits changing the ledger",
        "the scenarios' own transactions that committed a change to the ledger's accounts "
        "or transactions, counted by the server: the same whatever data layer ran",
    ),
    "commits": (
        "commits by the scenarios",
        "the scenarios' own transactions the server committed, as seen through SQLAlchemy "
        "(a data layer on the driver alone commits where it does not look)",
    ),
    "rollbacks": (
        "rollbacks by the scenarios",
        "the scenarios' own transactions the server rolled back: a ROLLBACK, or a COMMIT it "
        "refused or answered with ROLLBACK (after a failed statement)",
    ),
    "commits_unknown": (
        "commits with no reply",
        "COMMITs whose reply never came (the connection was lost): the server may or may "
        "not have committed them",
    ),
    "xact_commit": (
        "transactions committed on the server",
        "counted by PostgreSQL for the whole database: besides the scenarios' own, the "
        "harness's checks and anything else using the server",
    ),
    "xact_rollback": (
        "transactions rolled back on the server",
        "counted by PostgreSQL for the whole database, as above",
    ),
    "xact_not_counted": (
        "scenarios the server's counts leave out",
        "the server's statistics were reset during them (a crash does that) or the server "
        "restarted, so what it counted over them is not known",
    ),
    "rows_changed": ("rows changed", "payments and accounts inserted, updated or deleted"),
    "peak_connections": ("most connections at once", "the most one scenario held at a time"),
}


def _plural(value: int, word: str) -> str:
    return f"{value} {word}" if value == 1 else f"{value} {word}s"


#: A scenario's figures (its "metrics" in run.json), on one line, in this order.
SCENARIO_LINE: dict[str, Callable[[Any], str]] = {
    "duration_s": lambda v: f"took {figure(v, 'duration_s')}",
    "ledger_commits": lambda v: (
        f"{_plural(v, 'commit')} changing the ledger" if v is not None else ""
    ),
    "commits": lambda v: f"{_plural(v, 'commit')} through SQLAlchemy",
    "rollbacks": lambda v: _plural(v, "rollback"),
    "commits_unknown": lambda v: f"{_plural(v, 'commit')} with no reply" if v else "",
    "rows_changed": lambda v: f"{_plural(v, 'row')} changed",
    "peak_connections": lambda v: f"at most {_plural(v, 'connection')} at once",
    "overhead_ms": lambda v: f"harness {figure(v, 'overhead_ms')}",
}
#: What the scenario line leaves out, and why: shown elsewhere, or not the scenario's own.
NOT_ON_SCENARIO_LINE = {
    "location": "the scenario's anchor",
    "feature": "the section it is in",
    "name": "its title",
    "status": "its badge",
    "skip_reason": "the sentence under a skipped scenario",
    "xact_commit": "server-wide, only in the run's totals",
    "xact_rollback": "server-wide, only in the run's totals",
}
SCENARIO_LINE_TITLE = (
    "commits and rollbacks: how the server ended the scenario's own transactions; harness: "
    "the time the harness took around the scenario (preparing it, and checking after it)"
)


def build_report(reports: Path) -> Path:
    """Write ``reports/report.html`` from ``reports/run.json`` alone.

    Raises ReportError (failspec.report.record) when there is no run record to read.
    """
    run = load_run(reports)
    path = reports / REPORT
    path.write_text(render(run), encoding="utf-8")
    return path


def render(run: Run) -> str:
    environment = Environment(
        loader=PackageLoader("failspec.report"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["figure"] = figure
    environment.filters["anchor"] = anchor
    environment.filters["as_text"] = as_text
    environment.globals["metrics_line"] = metrics_line
    environment.globals["metrics_line_title"] = SCENARIO_LINE_TITLE
    environment.globals["totals"] = TOTALS
    return environment.get_template("report.html.j2").render(run=run)


def figure(value: Any, key: str) -> str:
    """A metric with its unit, from the unit its key names (duration_s, overhead_ms_median)."""
    unit = _UNIT.search(key)
    if unit and unit[1] == "ms":
        return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.1f} ms"
    if unit:
        return f"{value:.1f} s" if value >= 10 else f"{value:.2f} s"
    return f"{value:,}" if isinstance(value, int) else str(value)


_UNIT = re.compile(r"_(ms|s)(?:_|$)")


def metrics_line(metrics: dict[str, Any]) -> str:
    """A scenario's figures on one line: 'took 0.10 s · 5 commits · 1 rollback · …'
    (a figure that is only worth saying when it is not zero is left out when it is)."""
    shown = (show(metrics[key]) for key, show in SCENARIO_LINE.items() if key in metrics)
    return " · ".join(part for part in shown if part)


def as_text(value: Any) -> str:
    """Any JSON value as readable text (a string as it is)."""
    return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)


def anchor(location: str) -> str:
    """An id for a scenario's place on the page, from its location (file:line)."""
    return "scenario-" + re.sub(r"[^A-Za-z0-9]+", "-", location).strip("-")
