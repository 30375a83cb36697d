"""The run's metrics: totals, the slowest scenarios, the JSON and the closing summary."""

from __future__ import annotations

import json
from pathlib import Path

from failspec.harness.metrics import Metrics, ScenarioMetrics


def _metrics() -> Metrics:
    metrics = Metrics("embedded", "18.6")
    for i, duration in enumerate([0.5, 2.0, 0.1]):
        metrics.add(
            ScenarioMetrics(
                f"features/x.feature:{i}",
                "X",
                f"s{i}",
                "passed",
                duration,
                3.0,
                i + 1,
                commits=2,
                rollbacks=1,
                xact_commit=5,
                xact_rollback=1,
                rows_changed=4,
            )
        )
    metrics.add(ScenarioMetrics("features/x.feature:9", "X", "skipped one", "skipped"))
    return metrics


def test_totals_leave_out_skipped_scenarios() -> None:
    totals = _metrics().totals()
    assert totals["duration_s"] == 2.6
    assert totals["commits"] == 6
    assert totals["peak_connections"] == 3
    assert totals["overhead_ms_median"] == 3.0


def test_the_slowest_scenarios_come_first() -> None:
    assert [s.name for s in _metrics().slowest()][:2] == ["s1", "s0"]


def test_the_json_holds_the_run_and_every_scenario(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    _metrics().write(path)
    data = json.loads(path.read_text())
    assert data["run"]["backend"] == "embedded"
    assert data["run"]["slowest"][0]["location"] == "features/x.feature:1"
    assert len(data["scenarios"]) == 4
    assert data["scenarios"][3]["status"] == "skipped"


def test_the_summary_is_two_lines_naming_totals_and_the_slowest() -> None:
    lines = _metrics().summary()
    assert len(lines) == 2
    assert "4 scenarios" in lines[0]
    assert lines[1].startswith("metrics: slowest: 2.00 s s1")
