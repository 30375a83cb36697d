"""The records of one run split into parts — parallel workers on one machine, or shards
on several — merged into the record the run would have had, had it run serially.

This is a different merge from failspec.report.merge (runs of different drivers side by
side): here every part ran different scenarios of the same run, so the merged record is
their union. Each part's record carries a ``partition`` (written by failspec.parallel):

* ``kind``: ``"worker"`` (a process of one parallel run) or ``"shard"`` (a CI job's
  share, which may itself have run on several workers);
* ``index`` and ``of``: which part of how many (1-based);
* ``locations``: the scenarios this part was given (file:line), in the run's order;
* ``features``: every feature file of the run, in the run's order (the same in every
  part).

Every part's record holds every scenario of the feature files it was given (those given
to another part as skipped), so each scenario is taken from the part it was given to,
and a scenario given to none (left out by the tag expression) from any. The verdicts,
the counts, the metrics' totals and the matrices are computed again from the union; a
scenario given to two parts, or parts that disagree on the split, are refused
(ReportError), so nothing is counted twice or lost.
"""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from failspec.report import junit, record
from failspec.report.model import ReportError

#: The kinds of part a record may be.
KINDS = ("worker", "shard")
#: The isolation matrix's verdict that one observed variant makes final (a scenario that
#: saw the anomaly once wins over one that did not): failspec.harness.concurrency.isolation.
ALLOWED = "allowed"
#: The harness's files of one run, which a merged run writes too (as hooks.after_all does).
MATRIX_FILES = {
    "isolation_matrix": "isolation-matrix.json",
    "hang_matrix": "hang-matrix.json",
    "replication_matrix": "replication-matrix.json",
    "isolation_generated": "isolation-generated.json",
    "driver_matrix": "driver-matrix.json",
}


def is_partition(data: dict[str, Any]) -> bool:
    """Whether ``data`` (a run record) is one part of a split run: a worker's or a
    shard's (not the merged record of a whole run, which is a run like a serial one)."""
    partition = data.get("partition")
    return isinstance(partition, dict) and partition.get("kind") in KINDS


def merge(
    records: Sequence[tuple[str, dict[str, Any]]], *, wall_s: float | None = None
) -> dict[str, Any]:
    """One record from the parts' ``records`` (each: where it came from, the record), as
    the module's docstring says. ``wall_s``: the whole run's wall time (s), for the
    metrics (default: the longest part's).

    Raises ReportError when a record is no part, the parts are of different kinds or
    splits, a part is missing or given twice, or a scenario was given to two parts.
    """
    if not records:
        raise ReportError("no part's record to merge")
    parts = [(source, data) for source, data in records]
    for source, data in parts:
        if not is_partition(data):
            raise ReportError(f"{source} is not a part of a split run (no partition)")
    kinds = {data["partition"]["kind"] for _, data in parts}
    counts = {data["partition"]["of"] for _, data in parts}
    if len(kinds) != 1 or len(counts) != 1:
        raise ReportError("the records are parts of different splits: " + _described(parts))
    indices = sorted(data["partition"]["index"] for _, data in parts)
    of = counts.pop()
    if indices != list(range(1, of + 1)):
        raise ReportError(f"the parts of a split into {of} are not all here: " + _described(parts))
    orders = {tuple(data["partition"].get("features", [])) for _, data in parts}
    if len(orders) != 1:
        raise ReportError("the parts were split from different feature files: " + _described(parts))
    parts.sort(key=lambda part: part[1]["partition"]["index"])
    errors = [(source, data["setup_error"]) for source, data in parts if data.get("setup_error")]
    if errors:
        merged = record.setup_error("; ".join(f"{source}: {error}" for source, error in errors))
        merged["partition"] = _partition(parts)
        return merged
    owner: dict[str, int] = {}
    for index, (source, data) in enumerate(parts):
        for location in data["partition"]["locations"]:
            if location in owner:
                raise ReportError(
                    f"{location} was given to two parts: {parts[owner[location]][0]} and {source}"
                )
            owner[location] = index
    merged = copy.deepcopy(parts[0][1])
    merged["features"] = _features(parts, owner, list(orders.pop()))
    for feature in merged["features"]:
        for rule in feature["rules"]:
            rule["verdict"] = record.rule_verdict(rule["scenarios"])
    merged["outcomes"] = record.outcomes(merged)
    merged["stopped"] = _stopped([data for _, data in parts])
    merged["server"] = next((data["server"] for _, data in parts if data.get("server")), None)
    datas = [data for _, data in parts]
    merged["isolation_matrix"] = _isolation([d.get("isolation_matrix") for d in datas])
    merged["hang_matrix"] = _cells([d.get("hang_matrix") for d in datas], "hangs")
    merged["replication_matrix"] = _cells(
        [d.get("replication_matrix") for d in datas], "replication"
    )
    merged["isolation_generated"] = _generated([d.get("isolation_generated") for d in datas])
    merged["driver_matrix"] = _drivers([d.get("driver_matrix") for d in datas])
    merged["metrics"] = _metrics(merged, datas, wall_s)
    merged["partition"] = _partition(parts)
    return merged


def _described(parts: Iterable[tuple[str, dict[str, Any]]]) -> str:
    return ", ".join(
        f"{source} ({data['partition']['kind']} {data['partition']['index']}/"
        f"{data['partition']['of']})"
        if is_partition(data)
        else source
        for source, data in parts
    )


def _partition(parts: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """What the merged record says of the parts it holds."""
    first = parts[0][1]["partition"]
    return {
        "kind": "merged",
        "of_kind": first["kind"],
        "parts": [
            {
                "record": source,
                "index": data["partition"]["index"],
                "scenarios": len(data["partition"]["locations"]),
            }
            for source, data in parts
        ],
        "features": list(first.get("features", [])),
        "locations": [loc for _, data in parts for loc in data["partition"]["locations"]],
    }


def _line(location: str) -> int:
    return int(location.rsplit(":", 1)[1])


def _features(
    parts: Sequence[tuple[str, dict[str, Any]]], owner: dict[str, int], order: list[str]
) -> list[dict[str, Any]]:
    """Every feature of the parts in the run's order, its Rules and scenarios in the
    file's order (by line), each scenario from its owner (one given to none: from any
    part that holds it). A part may hold every scenario of its files (a worker's record)
    or only its own (a shard's, see :func:`keep_only`)."""
    by_location: list[dict[str, dict[str, Any]]] = [
        {s["location"]: s for s in record.scenarios(data)} for _, data in parts
    ]
    skeletons: dict[str, dict[str, Any]] = {}
    rules: dict[str, dict[str, dict[str, Any]]] = {}
    chosen: dict[str, dict[str, dict[str, Any]]] = {}  # file -> rule location -> scenarios
    for index, (_, data) in enumerate(parts):
        for feature in data["features"]:
            skeletons.setdefault(feature["file"], feature)
            for rule in feature["rules"]:
                rules.setdefault(feature["file"], {}).setdefault(rule["location"], rule)
                into = chosen.setdefault(feature["file"], {}).setdefault(rule["location"], {})
                for scenario in rule["scenarios"]:
                    mine = owner.get(scenario["location"])
                    if mine == index or (mine is None and scenario["location"] not in into):
                        into[scenario["location"]] = scenario
    for location, index in owner.items():
        if location not in by_location[index]:
            raise ReportError(f"{parts[index][0]} was given {location} but does not hold it")
    files = [f for f in order if f in skeletons] + [f for f in skeletons if f not in order]
    features = []
    for file in files:
        feature = {k: copy.deepcopy(v) for k, v in skeletons[file].items() if k != "rules"}
        feature["rules"] = []
        for location in sorted(rules[file], key=_line):
            rule = {k: copy.deepcopy(v) for k, v in rules[file][location].items()}
            taken = chosen[file][location]
            rule["scenarios"] = [copy.deepcopy(taken[at]) for at in sorted(taken, key=_line)]
            feature["rules"].append(rule)
        features.append(feature)
    return features


def keep_only(data: dict[str, Any], keep: Callable[[str], bool]) -> dict[str, Any]:
    """``data`` (a record) with only the scenarios whose location ``keep`` accepts, and
    only the Rules and features left with one; verdicts and counts computed again. A
    shard keeps its own scenarios, so its reports count each scenario of the run in one
    shard only."""
    kept = dict(data)
    features = []
    for feature in data["features"]:
        rules = []
        for rule in feature["rules"]:
            scenarios = [s for s in rule["scenarios"] if keep(s["location"])]
            if scenarios:
                verdict = record.rule_verdict(scenarios)
                rules.append({**rule, "scenarios": scenarios, "verdict": verdict})
        if rules:
            features.append({**feature, "rules": rules})
    kept["features"] = features
    kept["outcomes"] = record.outcomes(kept)
    return kept


def _stopped(datas: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """How the run stopped early, from the parts that did (None: none did): the first
    part's cause, every part's unfinished and never-run scenarios."""
    stops = [data["stopped"] for data in datas if data.get("stopped")]
    if not stops:
        return None
    unfinished = [s["not_finished"] for s in stops if s.get("not_finished")]
    return {
        "cause": stops[0]["cause"],
        "signal": stops[0].get("signal"),
        "exit_code": stops[0].get("exit_code"),
        "not_finished": unfinished[0] if unfinished else None,
        "not_finished_all": unfinished,
        "finished": sum(int(s.get("finished", 0)) for s in stops),
        "selected": sum(int(s.get("selected", 0)) for s in stops),
        "not_run": [loc for s in stops for loc in s.get("not_run", [])],
    }


def _order(kind: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The harness's order of a matrix's rows and columns (the order its as_json writes),
    imported here lazily: the harness defines it, and the report otherwise needs none of
    the harness."""
    if kind == "hangs":
        from failspec.harness.faults import hangs

        return tuple(hangs.PHASES), tuple(hangs.FAULTS)
    from failspec.harness.faults import replication

    return tuple(replication.LEVELS), tuple(replication.FAILURES)


def prepare() -> None:
    """Import now what :func:`merge` imports lazily (the harness's matrix orders and
    metrics: ~0.6 s), e.g. while the workers run, so the merge itself is quick."""
    _order("hangs")
    _order("replication")
    from failspec.harness.guards import metrics  # noqa: F401


def _sorted(keys: Iterable[str], order: Sequence[str]) -> list[str]:
    present = list(dict.fromkeys(keys))
    return [k for k in order if k in present] + [k for k in present if k not in order]


def _isolation(matrices: Sequence[dict[str, dict[str, str]] | None]) -> dict[str, Any] | None:
    """{anomaly: {level: verdict}}: a cell any part found allowed is allowed."""
    merged: dict[str, dict[str, str]] = {}
    for matrix in matrices:
        for anomaly, row in (matrix or {}).items():
            into = merged.setdefault(anomaly, {})
            for level, verdict in row.items():
                if into.get(level) != ALLOWED:
                    into[level] = verdict
    return merged or None


def _cells(
    matrices: Sequence[dict[str, dict[str, Any]] | None], kind: str
) -> dict[str, Any] | None:
    """{row: {column: cell}} of the hang or replication matrix: each cell from the part
    that measured it (a later part's measurement of the same cell wins, as a later
    scenario's does in one run), in the harness's order."""
    merged: dict[str, dict[str, Any]] = {}
    for matrix in matrices:
        for row, cells in (matrix or {}).items():
            merged.setdefault(row, {}).update(copy.deepcopy(cells))
    if not merged:
        return None
    rows, columns = _order(kind)
    return {
        row: {column: merged[row][column] for column in _sorted(merged[row], columns)}
        for row in _sorted(merged, rows)
    }


def _generated(matrices: Sequence[dict[str, Any] | None]) -> dict[str, Any] | None:
    """The generated workloads: every part's transactions and findings added up, per
    workload and level (the parts ran with one seed, failspec.parallel sees to it)."""
    present = [m for m in matrices if m]
    if not present:
        return None
    seeds = {m.get("seed") for m in present}
    if len(seeds) != 1:
        raise ReportError(
            f"the parts ran generated workloads with different seeds: {sorted(map(str, seeds))}"
        )
    workloads: dict[str, dict[str, Any]] = {}
    for matrix in present:
        for workload, levels in matrix["workloads"].items():
            for level, row in levels.items():
                into = workloads.setdefault(workload, {}).get(level)
                if into is None:
                    workloads[workload][level] = copy.deepcopy(row)
                    continue
                for key in ("transactions", "committed"):
                    into[key] += row[key]
                into["duration_s"] = round(into["duration_s"] + row["duration_s"], 3)
                for key in ("aborted", "forms"):
                    for name, count in row[key].items():
                        into[key][name] = into[key].get(name, 0) + count
                for kind, cell in row["anomalies"].items():
                    have = into["anomalies"].setdefault(kind, copy.deepcopy(cell))
                    if have is not cell and have != cell:
                        have["found"] = have.get("found", 0) + cell.get("found", 0)
                        have["example"] = have.get("example") or cell.get("example")
                        have["expected"] = have.get("expected") or cell.get("expected")
    return {"seed": seeds.pop(), "workloads": workloads}


def _drivers(matrices: Sequence[dict[str, dict[str, Any]] | None]) -> dict[str, Any] | None:
    """{failure: cell} of the driver matrix: every part's observations."""
    merged: dict[str, dict[str, Any]] = {}
    for matrix in matrices:
        for failure, cell in (matrix or {}).items():
            into = merged.setdefault(failure, copy.deepcopy(cell))
            into["expected"].update(cell.get("expected", {}))
            into["observed"].update(copy.deepcopy(cell.get("observed", {})))
    return merged or None


def _metrics(
    merged: dict[str, Any], datas: Sequence[dict[str, Any]], wall_s: float | None
) -> dict[str, Any] | None:
    """The run's figures (metrics' ``run``) from every scenario's, as one run adds them
    up (failspec.harness.guards.metrics.Metrics, whose totals are the definition)."""
    from failspec.harness.guards.metrics import Metrics, ScenarioMetrics

    runs = [data["metrics"] for data in datas if data.get("metrics")]
    if not runs:
        return None
    entries = [s["metrics"] for s in record.scenarios(merged) if s.get("metrics")]
    figures = Metrics(runs[0]["backend"], runs[0]["server_version"])
    figures.scenarios = [ScenarioMetrics(**entry) for entry in entries]
    run = figures.as_json()["run"]
    run["duration_s"] = round(
        wall_s if wall_s is not None else max(r["duration_s"] for r in runs), 3
    )
    return dict(run)


def metrics_file(merged: dict[str, Any]) -> dict[str, Any] | None:
    """What reports/metrics.json holds for the merged run (as Metrics.as_json())."""
    if merged.get("metrics") is None:
        return None
    entries = [s["metrics"] for s in record.scenarios(merged) if s.get("metrics")]
    return {"run": merged["metrics"], "scenarios": entries}


def write(directory: Path, merged: dict[str, Any]) -> None:
    """Write the merged record and the files one run writes beside it: run.json,
    metrics.json, the matrices, evidence.json and, for a run that stopped early,
    stopped-early.json (failspec.report.junit)."""
    directory.mkdir(parents=True, exist_ok=True)
    record.write(directory, merged)
    figures = metrics_file(merged)
    if figures is not None:
        (directory / "metrics.json").write_text(json.dumps(figures, indent=2) + "\n")
    for key, name in MATRIX_FILES.items():
        if merged.get(key):
            text = json.dumps(
                merged[key], indent=2, ensure_ascii=False, sort_keys=key == "driver_matrix"
            )
            (directory / name).write_text(text + "\n", encoding="utf-8")
    evidence = {s["location"]: s["evidence"] for s in record.scenarios(merged) if s.get("evidence")}
    if evidence:
        (directory / "evidence.json").write_text(json.dumps(evidence, indent=2) + "\n")
    if merged.get("stopped"):
        junit.write_stopped_early(directory, merged["stopped"])


# -- JUnit and behave's JSON -----------------------------------------------------------------


def merge_junit(
    parts: Sequence[tuple[Path, dict[str, Any]]],
    merged: dict[str, Any],
    into: Path,
    keep: Callable[[str], bool] | None = None,
) -> list[Path]:
    """Write one JUnit file per feature of ``merged`` into ``into`` from the parts' JUnit
    directories (each part: its directory, its record), each testcase from the part its
    scenario was given to. A part's file holds a testcase for each scenario its record
    holds of that feature, in the file's order (behave writes them so; a shard keeps its
    own), so its n-th testcase is the record's n-th scenario by line. ``keep``: only the
    scenarios whose location it accepts (a shard's). Returns the files written. Raises
    ReportError when a part's file does not hold the scenarios its record does."""
    owner = {
        location: index
        for index, (_, data) in enumerate(parts)
        for location in data["partition"]["locations"]
    }
    held = [
        {f["file"]: sorted((s["location"] for s in _scenarios_of(f)), key=_line)
         for f in data["features"]}
        for _, data in parts
    ]  # fmt: skip
    written: list[Path] = []
    into.mkdir(parents=True, exist_ok=True)
    files = [_suites(directory) for directory, _ in parts]
    for feature in merged["features"]:
        cases: dict[str, dict[int, ET.Element]] = {}  # location -> part -> testcase
        name = ""
        base: ET.Element | None = None
        for index, suites in enumerate(files):
            found = _junit_of(feature, suites)
            if found is None:
                continue
            locations = held[index].get(feature["file"], [])
            if not locations:
                continue  # not this part's feature: a file of another run's, left there
            name, tree = found
            base = base if base is not None else tree.getroot()
            testcases = tree.getroot().findall("testcase")
            if len(testcases) != len(locations):
                raise ReportError(
                    f"{parts[index][0] / name} holds {len(testcases)} testcases, "
                    f"its record {len(locations)} scenarios of {feature['file']}"
                )
            for location, case in zip(locations, testcases, strict=True):
                cases.setdefault(location, {})[index] = case
        if base is None:
            continue
        suite = copy.deepcopy(base)
        for old in suite.findall("testcase"):
            suite.remove(old)
        for scenario in sorted(_scenarios_of(feature), key=lambda s: _line(s["location"])):
            location = scenario["location"]
            if keep is not None and not keep(location):
                continue
            found_in = cases.get(location, {})
            if not found_in:
                raise ReportError(f"no part's JUnit holds {location}")
            taken = found_in.get(owner.get(location, -1), next(iter(found_in.values())))
            if not (taken.get("name") or "").startswith(scenario["name"]):
                raise ReportError(
                    f"{name}: the testcase of {location} is {taken.get('name')!r}, "
                    f"not {scenario['name']!r}"
                )
            suite.append(copy.deepcopy(taken))
        testcases = suite.findall("testcase")
        if not testcases:
            continue
        suite.set("tests", str(len(testcases)))
        suite.set("errors", str(sum(1 for c in testcases if c.find("error") is not None)))
        suite.set("failures", str(sum(1 for c in testcases if c.find("failure") is not None)))
        suite.set("skipped", str(sum(1 for c in testcases if c.find("skipped") is not None)))
        suite.set("time", str(round(sum(float(c.get("time") or 0) for c in testcases), 6)))
        path = into / name
        ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
        written.append(path)
    for directory, _ in parts:  # a setup error's own file, once
        setup = directory / junit.SETUP_REPORT
        if setup.exists() and not (into / junit.SETUP_REPORT).exists():
            (into / junit.SETUP_REPORT).write_bytes(setup.read_bytes())
    return written


def _scenarios_of(feature: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for rule in feature["rules"] for s in rule["scenarios"]]


def _suites(directory: Path) -> dict[str, ET.ElementTree[ET.Element]]:
    """Every JUnit file in ``directory`` by its name (none: an empty mapping)."""
    return {path.name: ET.parse(path) for path in sorted(directory.glob("TESTS-*.xml"))}


def _junit_of(
    feature: dict[str, Any], suites: dict[str, ET.ElementTree[ET.Element]]
) -> tuple[str, ET.ElementTree[ET.Element]] | None:
    """The JUnit file behave wrote for ``feature``: its testsuite is named
    ``<file's path, dotted, without .feature>.<feature's name>``, the path relative to
    behave's base directory (behave's JUnitReporter.make_feature_filename)."""
    stem = "." + str(Path(feature["file"]).with_suffix("")).replace("/", ".")
    for name, tree in suites.items():
        suite = tree.getroot().get("name") or ""
        prefix = suite[: -len(feature["name"]) - 1] if suite.endswith("." + feature["name"]) else ""
        if prefix and stem.endswith("." + prefix):
            return name, tree
    return None


def merge_behave_json(
    parts: Sequence[tuple[Path, dict[str, Any]]],
    into: Path,
    keep: Callable[[str], bool] | None = None,
) -> None:
    """behave's own JSON report (a list of features, each with its ``elements``: a
    background before each scenario, then the scenario) merged the same way: each
    scenario, with the background element before it, from the part it was given to, in
    the file's order; ``keep``: only the scenarios whose location it accepts. Each part's
    path is its behave.json; one that cannot be read counts as empty."""
    owner = {
        location: index
        for index, (_, data) in enumerate(parts)
        for location in data["partition"]["locations"]
    }
    features: dict[str, dict[str, Any]] = {}
    groups: dict[str, dict[str, list[dict[str, Any]]]] = {}  # file -> location -> elements
    for index, (path, _) in enumerate(parts):
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            loaded = []
        for feature in loaded:
            file = feature.get("location", "").rsplit(":", 1)[0]
            features.setdefault(file, feature)
            pending: list[dict[str, Any]] = []
            grouped = groups.setdefault(file, {})
            for element in feature.get("elements", []):
                pending.append(element)
                if element.get("type") == "background":
                    continue
                location = element.get("location", "")
                if owner.get(location) == index or (
                    owner.get(location) is None and location not in grouped
                ):
                    grouped[location] = pending
                pending = []
    order = list(parts[0][1]["partition"].get("features", [])) if parts else []
    result = []
    for file in [f for f in order if f in features] + [f for f in features if f not in order]:
        chosen = [at for at in groups.get(file, {}) if keep is None or keep(at)]
        if not chosen:
            continue
        feature = {k: v for k, v in features[file].items() if k != "elements"}
        feature["elements"] = [e for at in sorted(chosen, key=_line) for e in groups[file][at]]
        result.append(feature)
    into.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
