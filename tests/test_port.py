"""The data-layer port (failspec.ledger.port): which capabilities a layer offers, how a
factory is checked, and that a scenario needing a capability the layer lacks is skipped
with the reason, never passed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from examples import psycopg_ledger

from failspec.ledger import port
from tests.fixtures import bare_layer

ROOT = Path(__file__).resolve().parent.parent
BARE = "tests.fixtures.bare_layer:factory"


def test_the_reference_ledger_offers_every_capability():
    assert port.probe(port.reference, "psycopg2") == frozenset(port.CAPABILITIES)


def test_a_layer_with_only_the_operations_offers_no_capability():
    assert port.probe(bare_layer.factory, "psycopg2") == frozenset()


def test_the_psycopg_example_offers_all_but_a_deadline_and_an_orm_unit_of_work():
    offered = port.probe(psycopg_ledger.factory, "psycopg")
    assert offered == frozenset(port.CAPABILITIES) - {port.DEADLINE, port.UNIT_OF_WORK}


def test_the_psycopg_example_refuses_another_driver_naming_the_setting():
    with pytest.raises(RuntimeError, match="add -D driver=psycopg"):
        port.probe(psycopg_ledger.factory, "psycopg2")


def test_an_object_without_the_operations_is_not_a_data_layer():
    with pytest.raises(TypeError, match="has no pay, transfer, record_all, import_payments"):
        port.probe(bare_layer.not_a_layer, "psycopg2")


def test_a_factory_is_loaded_by_its_module_and_name():
    assert port.load_factory(BARE) is bare_layer.factory
    assert port.load_factory(port.REFERENCE) is port.reference


def _behave(tmp_path: Path, data_layer: str, location: str) -> dict:
    junit = tmp_path / "junit"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(
        [sys.executable, "-m", "behave", "-D", "backend=embedded", "-D", f"data_layer={data_layer}",
         "--junit", "--junit-directory", str(junit), "--show-skipped", "-f", "plain", location],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    record = json.loads((tmp_path / "run.json").read_text())
    scenarios = [s for f in record["features"] for r in f["rules"] for s in r["scenarios"]]
    [scenario] = [s for s in scenarios if s["location"] == location]
    return scenario


@pytest.mark.server
def test_a_scenario_needing_a_capability_the_layer_lacks_is_skipped_with_the_reason(tmp_path):
    scenario = _behave(tmp_path, BARE, "features/transfers.atomic.feature:40")
    assert scenario["status"] == "skipped", scenario
    assert scenario["skip_reason"] == (
        f"the data layer {BARE} offers no point between a transfer's legs (between_legs)"
    )


@pytest.mark.server
def test_the_same_scenario_runs_on_a_layer_that_offers_it(tmp_path):
    scenario = _behave(tmp_path, port.REFERENCE, "features/transfers.atomic.feature:40")
    assert scenario["status"] == "passed", scenario


def _record(*scenarios: dict) -> dict:
    return {"features": [{"rules": [{"scenarios": list(scenarios)}]}]}


def _scenario(status: str, reason: str | None = None) -> dict:
    return {"location": "f.feature:1", "name": "n", "status": status, "skip_reason": reason}


def test_the_ci_check_takes_exactly_the_documented_missing_capabilities():
    from scripts.check_data_layer_skips import problems

    lacks = "the data layer x:factory offers no request deadline (deadline)"
    record = _record(_scenario("passed"), _scenario("skipped", lacks))
    assert problems(record, {"request deadline"}) == []
    assert problems(record, set()) == [
        "skipped for lack of request deadline, not documented as missing"
    ]
    assert problems(_record(_scenario("passed")), {"request deadline"}) == [
        "no scenario skipped for lack of request deadline: update the README"
    ]
    assert problems(_record(_scenario("failed")), set()) == ["f.feature:1 failed: n"]
