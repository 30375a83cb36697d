"""reports/report.html: one self-contained page for people who do not read code.

The page opens from disk with no network: inline CSS, no script. Sections whose input
file a run did not write (isolation matrix, metrics, evidence) are left out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from failspec.report.model import Run, load_run

REPORT = "report.html"

# metrics.json keys, as a reader says them; a key not listed here is shown as it is.
_TOTALS = {
    "duration_s": "duration",
    "overhead_ms": "harness overhead",
    "xact_commit": "commits",
    "xact_rollback": "rollbacks",
    "rows_changed": "rows changed",
    "peak_connections": "connections at peak",
}


def build_report(reports: Path, base: Path | None = None) -> Path:
    """Write ``reports/report.html`` from the run's files in ``reports``.

    ``base`` is the directory behave ran in (default: the current one).
    """
    run = load_run(reports, base or Path.cwd())
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
    environment.globals["metrics_line"] = metrics_line
    environment.globals["totals"] = _TOTALS
    return environment.get_template("report.html.j2").render(run=run)


def figure(value: Any, key: str) -> str:
    """A metric with its unit, from the unit its key ends with (_s, _ms)."""
    if key.endswith("_ms"):
        return f"{value:.1f} ms"
    if key.endswith("_s"):
        return f"{value:.2f} s"
    return str(value)


def metrics_line(metrics: dict[str, Any]) -> str:
    """A scenario's metrics on one line: 'duration 0.10 s · commits 5 · rollbacks 1 · …'."""
    return " · ".join(
        f"{label} {figure(metrics[key], key)}" for key, label in _TOTALS.items() if key in metrics
    )
