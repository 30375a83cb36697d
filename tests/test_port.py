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


def _behave(tmp_path: Path, data_layer: str, location: str, *more: str) -> tuple[dict, dict, int]:
    """Run behave on one scenario with ``data_layer``: (that scenario's record, the run's
    record, behave's exit code)."""
    junit = tmp_path / "junit"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("FAILSPEC_MISSING_CAPABILITIES", None)
    done = subprocess.run(
        [sys.executable, "-m", "behave", "-D", "backend=embedded", "-D", f"data_layer={data_layer}",
         *more, "--junit", "--junit-directory", str(junit), "--show-skipped", "-f", "plain",
         location],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    record = json.loads((tmp_path / "run.json").read_text())
    scenarios = [s for f in record["features"] for r in f["rules"] for s in r["scenarios"]]
    [scenario] = [s for s in scenarios if s["location"] == location]
    return scenario, record, done.returncode


BETWEEN_LEGS_SCENARIO = "features/transfers.atomic.feature:40"


@pytest.mark.server
def test_a_scenario_needing_a_capability_the_layer_lacks_is_skipped_with_the_reason(tmp_path):
    scenario, record, code = _behave(tmp_path, BARE, BETWEEN_LEGS_SCENARIO)
    assert scenario["status"] == "skipped", scenario
    assert scenario["skip_reason"] == (
        f"the data layer {BARE} offers no point between a transfer's legs (between_legs)"
    )
    assert scenario["missing_capability"] == "between_legs"
    # NOT CHECKED, and not green: nothing acknowledged it as absent.
    entry = record["outcomes"]["not_checked"]["between_legs"]
    assert entry["scenarios"] == 1 and entry["acknowledged"] is False
    assert entry["rules"] == [
        "A transfer that fails at any point leaves both balances as they were"
    ]
    assert code == 1
    assert record["server"]["data_layer"] == BARE
    assert record["data_layer"]["factory"] == BARE
    assert record["data_layer"]["offers"] == []
    assert record["outcomes"]["green"] is False and record["outcomes"]["exit_code"] == code
    # JUnit: the <skipped> carries the reason (behave writes it bare).
    import xml.etree.ElementTree as ET

    suite = ET.parse(tmp_path / "junit" / "TESTS-transfers.atomic.xml").getroot()
    messages = [s.get("message") for s in suite.iter("skipped")]
    assert (
        "NOT CHECKED: lacks between_legs: the data layer "
        f"{BARE} offers no point between a transfer's legs (between_legs)"
    ) in messages


@pytest.mark.server
def test_a_run_that_acknowledges_the_missing_capability_is_green(tmp_path):
    scenario, record, code = _behave(
        tmp_path, BARE, BETWEEN_LEGS_SCENARIO, "-D", "missing_capabilities=between_legs"
    )
    assert scenario["status"] == "skipped"
    assert record["outcomes"]["not_checked"]["between_legs"]["acknowledged"] is True
    assert code == 0


@pytest.mark.server
def test_the_same_scenario_runs_on_a_layer_that_offers_it(tmp_path):
    scenario, record, code = _behave(tmp_path, port.REFERENCE, BETWEEN_LEGS_SCENARIO)
    assert scenario["status"] == "passed", scenario
    assert record["outcomes"]["not_checked"] == {} and code == 0
    assert record["server"]["data_layer"] == port.REFERENCE


@pytest.mark.server
def test_a_layer_that_does_not_flag_a_connection_it_threw_away_fails_naming_the_port_rule(
    tmp_path,
):
    scenario, _, _ = _behave(
        tmp_path, "tests.fixtures.unflagged_layer:factory",
        "features/operations.retries.feature:44", "-D", "driver=psycopg",
    )  # fmt: skip
    assert scenario["status"] == "failed", scenario
    assert f"data layer port: {port.CONNECTION_INVALIDATED}" in scenario["why"]
    assert "see DataLayer.pay" in scenario["why"]


def test_missing_capabilities_takes_the_short_names_of_the_port():
    from failspec.harness.errors import SetupError
    from failspec.harness.servers.settings import Settings

    settings = Settings.from_sources(
        {}, {"FAILSPEC_MISSING_CAPABILITIES": "deadline, unit_of_work"}
    )
    assert settings.missing_capabilities == {"deadline", "unit_of_work"}
    with pytest.raises(SetupError, match="no capability of the data-layer port: 'dedline'"):
        Settings.from_sources({"missing_capabilities": "dedline"}, {})


def test_acknowledging_a_capability_the_layer_offers_stops_the_run():
    from failspec.harness import hooks
    from failspec.harness.errors import SetupError
    from failspec.harness.servers.settings import Settings

    settings = Settings.from_sources(
        {"data_layer": "examples.psycopg_ledger:factory", "driver": "psycopg",
         "missing_capabilities": "deadline,between_legs"}, {},
    )  # fmt: skip
    offered = port.probe(psycopg_ledger.factory, "psycopg")
    with pytest.raises(SetupError, match="lacks between_legs, which it offers"):
        hooks._check_acknowledged(settings, offered)
    hooks._check_acknowledged(Settings.from_sources({"missing_capabilities": "deadline"}, {}),
                              port.probe(bare_layer.factory, "psycopg2"))  # fmt: skip


def _record(*scenarios: dict, acknowledged: tuple[str, ...] = ()) -> dict:
    from failspec.report import record

    run = {
        "data_layer": {
            "factory": BARE,
            "offers": [],
            "lacks": {
                port.NAMES[c]: {"capability": c, "leaves_unchecked": port.LEAVES_UNCHECKED[c]}
                for c in port.CAPABILITIES
            },
            "acknowledged_missing": list(acknowledged),
        },
        "features": [{"rules": [{"title": "R", "scenarios": list(scenarios)}]}],
    }
    rule = run["features"][0]["rules"][0]
    rule["verdict"] = record.verdict(
        record.NOT_CHECKED if s["missing_capability"] else s["status"] for s in scenarios
    )
    run["outcomes"] = record.outcomes(run)
    return run


def _scenario(status: str, missing: str | None = None) -> dict:
    return {"location": "f.feature:1", "name": "n", "status": status, "missing_capability": missing}


def test_the_closing_line_counts_what_was_not_checked_and_the_exit_code_follows():
    from failspec.report import closing

    run = _record(_scenario("passed"), _scenario("skipped", "deadline"), _scenario("skipped"))
    assert closing.closing_line(run) == (
        "behave: 1 passed, 0 failed, 2 skipped; NOT CHECKED for lack of a capability of the "
        "data layer: 1 scenario (1 Rule) without deadline"
    )
    assert "-D missing_capabilities=deadline" in closing.unacknowledged_line(run)
    acknowledged = _record(_scenario("passed"), _scenario("skipped", "deadline"),
                           acknowledged=("deadline",))  # fmt: skip
    assert closing.closing_line(acknowledged).endswith("(1 Rule, acknowledged) without deadline")
    assert closing.unacknowledged_line(acknowledged) == ""
    # A skip for any other reason (no server control, no root) is no capability's.
    assert closing.unacknowledged_line(_record(_scenario("passed"), _scenario("skipped"))) == ""


def test_a_rule_with_a_scenario_not_checked_is_not_checked_though_the_rest_pass():
    run = _record(_scenario("passed"), _scenario("skipped", "deadline"), acknowledged=("deadline",))
    assert run["outcomes"]["guarantees"]["unchecked"] == 1


@pytest.mark.server
@pytest.mark.parametrize(
    ("data_layer", "driver"),
    [(port.REFERENCE, "psycopg2"), ("examples.psycopg_ledger:factory", "psycopg")],
)
def test_the_commits_that_change_the_ledger_are_counted_by_the_server_for_any_layer(
    tmp_path, data_layer, driver
):
    # A transfer whose first attempt loses its connection between the legs (rolled back)
    # and whose retry commits: one transaction changed the ledger, on either layer (the
    # example commits through the driver, which SQLAlchemy's events never see).
    scenario, _, _ = _behave(
        tmp_path, data_layer, "features/operations.retries.feature:44", "-D", f"driver={driver}"
    )
    assert scenario["status"] == "passed", scenario
    assert scenario["metrics"]["ledger_commits"] == 1, scenario["metrics"]


def test_the_report_says_what_was_not_checked_for_lack_of_which_capability(tmp_path):
    from failspec.harness.guards.metrics import Metrics
    from failspec.report import html, record

    scenario = {**_scenario("skipped", "deadline"), "tags": [], "steps": [], "duration_s": 0}
    run = _record({**scenario, "status": "passed", "missing_capability": None}, scenario)
    run.update(format=record.FORMAT, setup_error=None, stopped=None)
    run["metrics"] = Metrics("embedded", "18.6").as_json()["run"]
    run["server"] = {"backend": "embedded", "version": "18.6", "driver": "psycopg",
                     "data_layer": BARE}  # fmt: skip
    run["features"][0].update(name="F", file="f.feature", description=[])
    record.write(tmp_path, run)
    page = html.build_report(tmp_path).read_text()
    assert f'data layer <strong id="data-layer">{BARE}</strong>' in page
    assert "Not green: 1 scenario NOT CHECKED" in page
    assert "without <strong>deadline</strong>" in page
    assert port.LEAVES_UNCHECKED[port.DEADLINE] in page
    assert "0 of 1 guarantees hold" in page


def test_the_banner_names_the_data_layer_and_what_it_lacks():
    from failspec.harness import hooks
    from failspec.harness.servers.settings import Settings

    reference = Settings.from_sources({}, {})
    assert hooks.data_layer_banner(reference, frozenset(port.CAPABILITIES)) == (
        f"failspec: data layer {port.REFERENCE} (offers every optional capability)"
    )
    example = Settings.from_sources(
        {"data_layer": "examples.psycopg_ledger:factory", "driver": "psycopg"}, {}
    )
    offered = port.probe(psycopg_ledger.factory, "psycopg")
    line = hooks.data_layer_banner(example, offered)
    assert line.startswith("failspec: data layer examples.psycopg_ledger:factory (lacks ")
    assert "not acknowledged: deadline, unit_of_work" in line
    acknowledged = Settings.from_sources(
        {"data_layer": "examples.psycopg_ledger:factory", "driver": "psycopg",
         "missing_capabilities": "deadline,unit_of_work"}, {},
    )  # fmt: skip
    assert hooks.data_layer_banner(acknowledged, offered).endswith(
        "(lacks deadline, unit_of_work: acknowledged with missing_capabilities)"
    )


def test_the_lock_order_every_layer_keeps_is_stated_where_a_layer_author_reads():
    """The deadlocks feature's queueing Rule runs without ``lock_in_order`` and requires
    name order: the port must say name order is the default, not "the layer's own way",
    and must not count that Rule among what a layer without the capability leaves
    unchecked (only the Rules whose scenarios lock the source first need it)."""
    feature = (ROOT / "features" / "concurrency.deadlocks.feature").read_text()
    rules = feature.split("  Rule: ")[1:]
    source_first = "the ledger locks a transfer's source account first"
    queueing = [r for r in rules if "never deadlocks" in r.splitlines()[0]]
    assert queueing and all(source_first not in rule for rule in queueing)
    assert "layer's own way" not in port.__doc__ + (port.Resources.__doc__ or "")
    resources = (ROOT / "src" / "failspec" / "ledger" / "port.py").read_text()
    assert "the layer's own way" not in resources
    transfer = port.DataLayer.transfer.__doc__ or ""
    assert "name order" in transfer and "FOR NO KEY UPDATE" in transfer
    assert "queue" not in port.LEAVES_UNCHECKED[port.LOCK_ORDER]
    assert "source first" in port.LEAVES_UNCHECKED[port.LOCK_ORDER]


def test_the_application_counts_each_call_into_the_data_layer_and_knows_which_runs():
    from failspec.harness.scenario.application import Application

    app = Application(workspace=None)  # type: ignore[arg-type]
    seen: list[str | None] = []

    class Raising:
        def pay(self, payment):
            seen.append(app.running_operation)
            raise RuntimeError("every operation raises")

        def transfer(self, transfer):
            return "done"

    layer = Raising()
    app._count_calls(layer)
    with pytest.raises(RuntimeError):
        layer.pay(None)
    assert layer.transfer(None) == "done"
    assert app.layer_calls == ["pay", "transfer"] and seen == ["pay"]
    assert app.running_operation is None
    assert port.connection_invalidated_rule("transfer").endswith("broken in DataLayer.transfer")
    assert port.connection_invalidated_rule("pay") == port.CONNECTION_INVALIDATED


def _record_of(tmp_path: Path, location: str) -> dict:
    """The run record of behave on ``location`` with the reference ledger."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(
        [sys.executable, "-m", "behave", "-D", "backend=embedded", "--junit",
         "--junit-directory", str(tmp_path / "junit"), "-f", "plain", location],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return json.loads((tmp_path / "run.json").read_text())


@pytest.mark.server
def test_the_record_says_which_scenarios_went_through_the_data_layer(tmp_path):
    record = _record_of(tmp_path, "features/operations.idempotency.feature")
    scenarios = [s for f in record["features"] for r in f["rules"] for s in r["scenarios"]]
    assert scenarios and all(s["uses_data_layer"] for s in scenarios)
    assert record["outcomes"]["guarantees_without_data_layer"]["holds"] == 0
    record = _record_of(tmp_path, "features/queries.invalid.feature")
    scenarios = [s for f in record["features"] for r in f["rules"] for s in r["scenarios"]]
    assert scenarios and not any(s["uses_data_layer"] for s in scenarios)
    assert record["outcomes"]["guarantees_through_data_layer"]["holds"] == 0
