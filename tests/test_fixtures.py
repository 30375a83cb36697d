"""One cleanup path: a scenario's resources are behave fixtures, closed by behave's own
cleanup in the order failspec.harness.scenario.fixtures.TEARDOWN writes down, with the
guards looking only after everything made after them is closed.

The scenario is prepared by the real hook code (failspec.harness.hooks._prepare) on
behave's real Context; the resources are stand-ins that record when they are closed."""

from __future__ import annotations

import types
from typing import Any

import pytest
from behave import use_fixture
from behave.runner import Context

from failspec.harness import hooks
from failspec.harness.scenario import fixtures
from failspec.harness.scenario.fixtures import GuardFailed, Guards, held
from failspec.ledger import port

#: What each stand-in is called in fixtures.TEARDOWN.
NAMES = {
    "step": "the steps' resources, latest first",
    "ServerFaults": "server faults",
    "Network": "network",
    "Interleaving": "sessions",
    "Application": "application",
    "guards": "guards",
    "schema": "schema",
}


class _Config:
    def should_capture_hooks(self) -> bool:
        return False


class _Runner:
    config = _Config()


def _recording(closed: list[str], name: str, fail: bool = False) -> type:
    class Resource:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.instance_options: dict[str, Any] = {}

        def close(self) -> None:
            closed.append(name)
            if fail:
                raise RuntimeError(f"{name} would not close")

        def url(self) -> str:  # Network.url(); the others' url is assigned
            return "postgresql://proxy"

    Resource.__name__ = name
    return Resource


@pytest.fixture
def scene(monkeypatch: pytest.MonkeyPatch) -> tuple[Context, Any, list[str]]:
    closed: list[str] = []
    for name in ("ServerFaults", "Interleaving", "Application"):
        monkeypatch.setattr(hooks, name, _recording(closed, name))
    monkeypatch.setattr(hooks, "Network", _recording(closed, "Network"))
    monkeypatch.setattr(hooks, "Auditor", lambda workspace: None)
    monkeypatch.setattr(hooks, "database_counters", lambda admin: None)
    monkeypatch.setattr(
        hooks, "_check", lambda context, scenario, stopping, problems: closed.append("guards")
    )
    run = types.SimpleNamespace(
        admin=None,
        workspace=lambda name: types.SimpleNamespace(name=name),
        retire=lambda workspace: closed.append("schema"),
    )
    runner = _Runner()
    context = Context(runner)
    context._runner = runner  # Context keeps a weak proxy; keep the runner alive
    context.run = run
    context.settings = types.SimpleNamespace(timeout_scale=1.0, data_layer=port.REFERENCE)
    context.data_layer = port.reference
    context.run_metrics = types.SimpleNamespace(last_counters=None)
    context.scenario_metrics = types.SimpleNamespace(overhead_ms=0.0)
    context.server = None
    context.stopping = hooks.Stopping()
    scenario = types.SimpleNamespace(name="a scenario", effective_tags={hooks.NETWORK})
    context._push("scenario")
    return context, scenario, closed


def test_a_scenario_is_taken_down_in_the_written_order(scene: Any) -> None:
    context, scenario, closed = scene
    hooks._prepare(context, scenario)
    first = use_fixture(held, context, _recording(closed, "step")())
    use_fixture(held, context, first, lambda: closed.append("step"))  # a later step's
    assert closed == []
    context._pop()
    assert closed[:2] == ["step", "step"]
    assert tuple(dict.fromkeys(NAMES[name] for name in closed)) == fixtures.TEARDOWN


def test_the_order_written_down_is_the_setup_reversed() -> None:
    steps = "the steps' resources"
    setup = [steps if name == steps else name for name in fixtures.SETUP]
    teardown = [steps if name.startswith(steps) else name for name in fixtures.TEARDOWN]
    assert teardown == setup[::-1]


def test_a_resource_that_will_not_close_neither_stops_the_others_nor_goes_unreported(
    scene: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    context, scenario, closed = scene
    monkeypatch.setattr(hooks, "Interleaving", _recording(closed, "Interleaving", fail=True))
    seen: list[list[str]] = []
    monkeypatch.setattr(
        hooks,
        "_check",
        lambda context, scenario, stopping, problems: seen.append(list(problems)),
    )
    hooks._prepare(context, scenario)
    context._pop()
    assert closed == ["ServerFaults", "Network", "Interleaving", "Application", "schema"]
    assert seen == [["closing the sessions failed: RuntimeError: Interleaving would not close"]]


def test_what_a_scenario_leaks_on_purpose_is_closed_after_the_guards_have_seen_it(
    scene: Any,
) -> None:
    context, scenario, closed = scene
    hooks._prepare(context, scenario)
    guards: Guards = context.guards
    guards.leave(lambda: closed.append("the leak"))
    context._pop()
    assert closed.index("guards") < closed.index("the leak") < closed.index("schema")


def test_what_was_left_on_purpose_all_closes_and_a_failure_to_close_it_is_reported(
    scene: Any,
) -> None:
    context, scenario, closed = scene
    hooks._prepare(context, scenario)
    guards: Guards = context.guards

    def refuse() -> None:
        closed.append("refused")
        raise RuntimeError("it would not close")

    guards.leave(lambda: closed.append("the first leak"))
    guards.leave(refuse)
    with pytest.raises(GuardFailed, match="left on purpose failed: RuntimeError: it would not"):
        context._pop()
    assert closed[-3:] == ["refused", "the first leak", "schema"]
