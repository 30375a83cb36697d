"""The merge of a split run's parts (failspec.report.partitions): the record, the JUnit
and the counts equal the serial run's; a scenario given twice, a part missing, or parts of
different splits are refused."""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from failspec.report import partitions, record
from failspec.report.model import ReportError

FEATURE = "features/a.feature"
NAMES = {3: "pays", 7: "transfers", 11: "refuses", 15: "crashes"}


def scenario(line: int, status: str, duration: float = 0.5) -> dict[str, Any]:
    return {
        "location": f"{FEATURE}:{line}",
        "name": NAMES[line],
        "tags": [],
        "status": status,
        "skip_reason": None,
        "duration_s": duration,
        "why": None,
        "error": None,
        "steps": [],
        "metrics": None
        if status == "skipped"
        else {
            "location": f"{FEATURE}:{line}",
            "feature": "A",
            "name": NAMES[line],
            "status": status,
            "duration_s": duration,
            "overhead_ms": 10.0,
            "peak_connections": line,
            "commits": 1,
            "rollbacks": 0,
            "commits_unknown": 0,
            "xact_commit": 2,
            "xact_rollback": 0,
            "rows_changed": 1,
            "skip_reason": None,
        },
        "evidence": None,
    }


def part(index: int, mine: list[int], statuses: dict[int, str]) -> dict[str, Any]:
    """A worker's record: every scenario of the feature, those of others skipped."""
    rules = [
        {
            "title": "one",
            "location": f"{FEATURE}:2",
            "tags": [],
            "description": [],
            "verdict": None,
            "scenarios": [scenario(n, statuses[n] if n in mine else "skipped") for n in (3, 7)],
        },
        {
            "title": "two",
            "location": f"{FEATURE}:10",
            "tags": [],
            "description": [],
            "verdict": None,
            "scenarios": [scenario(n, statuses[n] if n in mine else "skipped") for n in (11, 15)],
        },
    ]
    for rule in rules:
        rule["verdict"] = record.verdict(s["status"] for s in rule["scenarios"])
    data = record.setup_error("")
    data.update(setup_error=None, server={"backend": "embedded", "version": "18", "driver": "x"})
    data["features"] = [
        {
            "name": "A",
            "file": FEATURE,
            "location": f"{FEATURE}:1",
            "tags": [],
            "description": [],
            "rules": rules,
        }
    ]
    data["outcomes"] = record.outcomes(data)
    data["metrics"] = {
        "backend": "embedded",
        "server_version": "18",
        "scenarios": len(mine),
        "duration_s": 2.0,
        "totals": {},
        "slowest": [],
    }
    data["isolation_matrix"] = (
        {"G2-item": {"serializable": "prevented"}}
        if index == 1
        else {"G2-item": {"serializable": "allowed", "repeatable read": "allowed"}}
    )
    data["partition"] = {
        "kind": "worker",
        "index": index,
        "of": 2,
        "locations": [f"{FEATURE}:{n}" for n in mine],
        "features": [FEATURE],
    }
    return data


STATUSES = {3: "passed", 7: "failed", 11: "passed", 15: "passed"}


def parts() -> list[tuple[str, dict[str, Any]]]:
    return [("w1", part(1, [3, 15], STATUSES)), ("w2", part(2, [7, 11], STATUSES))]


def test_the_merged_record_counts_every_scenario_once_as_a_serial_run_would():
    merged = partitions.merge(parts(), wall_s=3.0)
    assert merged["outcomes"]["scenarios"] == {
        "passed": 3,
        "failed": 1,
        "skipped": 0,
        "not_finished": 0,
        "not_run": 0,
    }
    assert [r["verdict"] for r in merged["features"][0]["rules"]] == ["fails", "holds"]
    assert [s["status"] for s in record.scenarios(merged)] == [
        "passed",
        "failed",
        "passed",
        "passed",
    ]
    assert merged["metrics"]["scenarios"] == 4
    assert merged["metrics"]["totals"]["commits"] == 4
    assert merged["metrics"]["totals"]["peak_connections"] == 15
    assert merged["metrics"]["duration_s"] == 3.0
    assert merged["isolation_matrix"] == {
        "G2-item": {"serializable": "allowed", "repeatable read": "allowed"}
    }


def test_a_scenario_given_to_two_parts_is_refused():
    given = parts()
    given[1][1]["partition"]["locations"].append(f"{FEATURE}:3")
    with pytest.raises(ReportError, match="given to two parts"):
        partitions.merge(given)


def test_a_missing_part_or_parts_of_different_splits_are_refused():
    with pytest.raises(ReportError, match="not all here"):
        partitions.merge(parts()[:1])
    other = parts()
    other[1][1]["partition"]["of"] = 3
    with pytest.raises(ReportError, match="different splits"):
        partitions.merge(other)


def test_a_record_that_is_no_part_is_refused():
    plain = parts()
    del plain[0][1]["partition"]
    with pytest.raises(ReportError, match="not a part"):
        partitions.merge(plain)


def junit_file(directory: Path, data: dict[str, Any]) -> None:
    suite = ET.Element("testsuite", name="a.A", tests="4")
    for s in record.scenarios(data):
        case = ET.SubElement(
            suite,
            "testcase",
            classname="a.A",
            name=s["name"],
            status=s["status"],
            time=str(s["duration_s"]),
        )
        if s["status"] == "skipped":
            ET.SubElement(case, "skipped")
        if s["status"] == "failed":
            ET.SubElement(case, "failure", message="no")
    directory.mkdir(parents=True)
    ET.ElementTree(suite).write(directory / "TESTS-a.xml", encoding="utf-8")


def test_the_merged_junit_has_each_scenario_once_from_the_worker_that_ran_it(tmp_path: Path):
    given = parts()
    located = []
    for source, data in given:
        junit_file(tmp_path / source, data)
        located.append((tmp_path / source, data))
    merged = partitions.merge(given)
    partitions.merge_junit(located, merged, tmp_path / "merged")
    suite = ET.parse(tmp_path / "merged" / "TESTS-a.xml").getroot()
    cases = [(c.get("name"), c.get("status")) for c in suite.iter("testcase")]
    assert cases == [
        ("pays", "passed"),
        ("transfers", "failed"),
        ("refuses", "passed"),
        ("crashes", "passed"),
    ]
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("4", "1", "0")


def test_a_junit_file_that_does_not_hold_its_records_scenarios_is_refused(tmp_path: Path):
    given = parts()
    located = []
    for source, data in given:
        short = copy.deepcopy(data)
        short["features"][0]["rules"] = short["features"][0]["rules"][:1]
        junit_file(tmp_path / source, short)
        located.append((tmp_path / source, data))
    with pytest.raises(ReportError, match="holds 2 testcases"):
        partitions.merge_junit(located, partitions.merge(given), tmp_path / "merged")


def test_the_merged_record_of_a_whole_run_is_no_part_and_merges_as_a_driver_run():
    merged = partitions.merge(parts())
    assert merged["partition"]["kind"] == "merged"
    assert not partitions.is_partition(merged)
    assert partitions.is_partition(parts()[0][1])


def test_shards_that_keep_only_their_own_scenarios_merge_into_the_serial_record():
    whole = partitions.merge(parts())
    shards = []
    for source, data in parts():
        mine = set(data["partition"]["locations"])
        kept = partitions.keep_only(data, mine.__contains__)
        kept["partition"] = {**data["partition"], "kind": "shard"}
        assert kept["outcomes"]["scenarios"]["skipped"] == 0  # the other shard's: not here
        shards.append((source, kept))
    merged = partitions.merge(shards)
    assert merged["outcomes"] == whole["outcomes"]
    assert [s["location"] for s in record.scenarios(merged)] == [
        s["location"] for s in record.scenarios(whole)
    ]


def test_a_rule_with_a_scenario_skipped_for_a_missing_capability_is_not_checked_when_merged():
    # Rule "two": 11 passes on w2, 15 is skipped on w1 for lack of the data layer's deadline.
    # A serial run records that Rule as not checked, never as holding (record.rule_verdict).
    statuses = {**STATUSES, 15: "skipped", 7: "passed"}
    w1, w2 = part(1, [3, 15], statuses), part(2, [7, 11], statuses)
    w1["features"][0]["rules"][1]["scenarios"][1]["missing_capability"] = "deadline"
    merged = partitions.merge([("w1", w1), ("w2", w2)], wall_s=3.0)
    assert [r["verdict"] for r in merged["features"][0]["rules"]] == ["holds", "unchecked"]
    assert merged["outcomes"]["guarantees"] == {"holds": 1, "fails": 0, "unchecked": 1}
