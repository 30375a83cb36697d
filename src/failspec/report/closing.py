"""``python -m failspec.report.closing <reports-dir>``: the run's closing line, from
<reports-dir>/run.json alone: 'behave: N passed, N failed, N skipped' (and ', N not
finished, N not run' when the run stopped early: the scenario the stop ended, and those it
never reached). A run that could not start closes 'behave: not run (setup error)' (the
reason is the 'failspec: cannot run: …' line above it). Scenarios skipped because the
data layer lacks an optional capability of the port follow, named as NOT CHECKED:
'; NOT CHECKED for lack of a capability of the data layer: 14 scenarios (5 Rules) without
deadline, 5 (1 Rule) without unit_of_work'. Where scenarios failed, a line names where
(at most ten: 'failing: features/a.feature:12, …'). The next line splits the guarantees (Rules):
'guarantees through the data layer mylayer:factory: 40 of 52 hold, 12 fail; of PostgreSQL
and the driver (the data layer not called): 51 of 51 hold'.

Exits 1 when the record holds no scenario at all (a run that tested nothing is not green),
when scenarios were not checked for lack of a capability that ``-D missing_capabilities``
does not acknowledge as absent (a second line says which, and the setting that
acknowledges them), or when there is no record to read.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from failspec.report import record


def closing_line(run: dict[str, Any]) -> str:
    """The closing line of a run record (see failspec.report.record)."""
    if run.get("setup_error") is not None:
        return "behave: not run (setup error)"
    counts = run["outcomes"]["scenarios"]
    passed, skipped = counts[record.PASSED], counts[record.SKIPPED]
    failed = counts[record.FAILED]
    not_finished, not_run = counts[record.NOT_FINISHED], counts[record.NOT_RUN]
    line = f"behave: {passed} passed, {failed} failed, {skipped} skipped"
    if not_finished or not_run:
        line += f", {not_finished} not finished, {not_run} not run"
    unchecked = run["outcomes"].get("not_checked") or {}
    if unchecked:
        parts = []
        for index, (name, entry) in enumerate(unchecked.items()):
            scenarios = entry["scenarios"] if index else _count(entry["scenarios"], "scenario")
            rules = _count(len(entry["rules"]), "Rule")
            acknowledged = ", acknowledged" if entry["acknowledged"] else ""
            parts.append(f"{scenarios} ({rules}{acknowledged}) without {name}")
        line += "; NOT CHECKED for lack of a capability of the data layer: " + ", ".join(parts)
    return line


def guarantees_line(run: dict[str, Any]) -> str:
    """How many guarantees (Rules) hold, split into those that went through the data
    layer and those of PostgreSQL and the driver alone, which hold whatever layer runs
    ('' for a record without the split, or without Rules)."""
    outcomes = run["outcomes"]
    through = outcomes.get("guarantees_through_data_layer")
    without = outcomes.get("guarantees_without_data_layer")
    layer = (run.get("data_layer") or {}).get("factory")
    if through is None or without is None or layer is None or run.get("stopped") is not None:
        # A record from before the split, of a run that loaded no data layer, or of one
        # that stopped early (no verdict on the guarantees: its first line says so).
        return ""
    halves = []
    if sum(through.values()):
        halves.append(f"guarantees through the data layer {layer}: {_verdicts(through)}")
    if sum(without.values()):  # none on a run of a few scenarios through the layer
        halves.append(
            f"of PostgreSQL and the driver (the data layer not called): {_verdicts(without)}"
        )
    return "; ".join(halves)


def _verdicts(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    text = f"{counts['holds']} of {total} hold"
    if counts["fails"]:
        text += f", {counts['fails']} fail"
    if counts["unchecked"]:
        text += f", {counts['unchecked']} not checked"
    return text


def unacknowledged_line(run: dict[str, Any]) -> str:
    """Why a run whose scenarios all passed is not green: the capabilities the data layer
    lacks, not acknowledged, and what that leaves unchecked ('' when there are none)."""
    unchecked = run["outcomes"].get("not_checked") or {}
    names = record.unacknowledged(run)
    if not names:
        return ""
    what = "; ".join(
        f"without {name}, not checked: {unchecked[name]['leaves_unchecked']}" for name in names
    )
    return (
        f"not green: the data layer lacks {', '.join(names)} ({what}). If it truly lacks "
        f"{'them' if len(names) > 1 else 'it'}, say so: "
        f"-D missing_capabilities={','.join(names)} "
        "(or FAILSPEC_MISSING_CAPABILITIES)"
    )


#: How many failing scenarios the closing lines name; the report has them all.
FAILING_NAMED = 10


def failing_line(run: dict[str, Any]) -> str:
    """Where the failing scenarios are ('failing: features/a.feature:12, …'), at most
    :data:`FAILING_NAMED` of them; '' when none failed."""
    failing = [s["location"] for s in record.scenarios(run) if s["status"] == record.FAILED]
    if not failing:
        return ""
    more = len(failing) - FAILING_NAMED
    named = ", ".join(failing[:FAILING_NAMED])
    return f"failing: {named}" + (f" and {more} more (reports/report.html)" if more > 0 else "")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def tested_nothing(run: dict[str, Any]) -> bool:
    """Whether the run neither started nor held any scenario."""
    return run.get("setup_error") is None and not any(run["outcomes"]["scenarios"].values())


def main(argv: list[str]) -> int:
    reports = Path(argv[0] if argv else "reports")
    try:
        run = record.read(reports)
    except record.ReportError as error:
        print(f"behave: no closing line: {error}")
        return 1
    print(closing_line(run))
    failing = failing_line(run)
    if failing:
        print(f"behave: {failing}")
    guarantees = guarantees_line(run)
    if guarantees:
        print(f"behave: {guarantees}")
    unacknowledged = unacknowledged_line(run)
    if unacknowledged:
        print(f"behave: {unacknowledged}")
    return 1 if tested_nothing(run) or unacknowledged else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
