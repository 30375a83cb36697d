"""How long a request waits when the database goes silent, and what ends the wait."""

from behave import given, then, use_fixture
from hamcrest import assert_that, equal_to, greater_than

import failspec.harness.gherkin_types  # noqa: F401  (registers the parameter types)
from failspec.harness.driver_matrix import observed
from failspec.harness.faults import hangs
from failspec.harness.faults.hangs import Cell, Hang
from failspec.harness.faults.network import PacketLoss
from failspec.harness.scenario.application import skip_without
from failspec.harness.scenario.fixtures import held
from failspec.ledger import port


@given(
    "the application probes a quiet connection after {idle:d} second, then every {interval:d} second, giving up after {count:d} unanswered probe"
)
def step_keepalives(context, idle, interval, count):
    context.app.connect_args.update(
        keepalives=1, keepalives_idle=idle, keepalives_interval=interval, keepalives_count=count
    )


@given("{fault:Silence} during {phase:Phase}")
def step_silence_during(context, fault, phase):
    if fault == hangs.CUT and (reason := PacketLoss.unavailable()) is not None:
        context.scenario.skip(f"a cut network needs real packet loss: {reason}")
        return
    if phase == hangs.COMMIT and skip_without(context, port.BEFORE_COMMIT):
        return
    context.hang = hang = Hang(
        context.app, context.workspace, context.network, context.server_faults,
        phase=phase, fault=fault, timeout=context.settings.seconds(3),
    )  # fmt: skip
    use_fixture(held, context, hang)
    hang.arm()


@then("the payment {result:Result}, its wait ended by an answer at once: {ended:Ended}")
def step_answered_at_once(context, result, ended):
    cell = step_wait_ended_by(context, result, hangs.BOUNDS["an answer at once"])
    assert_that(cell.outcome, equal_to(ended), "how the request ended")


@then("the payment {result:Result}, its wait ended by an answer at once: {expected:PerDriver}")
def step_answered_at_once_per_driver(context, result, expected):
    cell = _measured(context, result, hangs.BOUNDS["an answer at once"])
    failure = f"{context.hang.fault} during {context.hang.phase}"
    seen = observed(context.outcome, cell.outcome)
    context.driver_matrix.record(failure, expected, seen, str(context.scenario.location))
    assert_that(cell.outcome, equal_to(expected.expected), "how the request ended")


@then("the payment fails, its wait ended by {bound:Bound}, reported as {expected:PerDriver}")
def step_wait_ended_by_per_driver(context, bound, expected):
    cell = _measured(context, "fails", bound)
    failure = f"{context.hang.fault} during {context.hang.phase}"
    seen = observed(context.outcome, cell.outcome)
    context.driver_matrix.record(failure, expected, seen, str(context.scenario.location))
    assert_that(cell.outcome, equal_to(expected.expected), f"what {bound.words} fails with")


@then("the payment {result:Result}, its wait ended by {bound:Bound}")
def step_wait_ended_by(context, result, bound):
    cell = _measured(context, result, bound)
    if bound.condition is not None:
        assert_that(cell.outcome, equal_to(bound.condition), f"what {bound.words} fails with")
    return cell


def _measured(context, result, bound):
    """The hang's cell: its outcome as stated (``result``), its wait as long as ``bound``."""
    hang, outcome = context.hang, context.outcome
    hang.finish()
    settings = hangs.Settings.of(context.app)
    cell = Cell.measure(bound, settings, outcome.elapsed, hangs.outcome_of(outcome.error),
                        scenario=str(context.scenario.location),
                        scale=context.settings.timeout_scale)  # fmt: skip
    context.hang_matrix.record(hang.phase, hang.fault, cell)
    assert_that("succeeds" if outcome.succeeded else "fails", equal_to(result), outcome.describe())
    assert cell.within, f"{hang.phase}, {hang.fault}: {cell.describe()}"
    return cell


@then(
    "the payment fails, unbounded by any client setting, its wait ended by the data layer's deadline"
)
def step_unbounded_but_deadline(context):
    hang, outcome = context.hang, context.outcome
    hang.finish()
    settings = hangs.Settings.of(context.app)
    deadline = hangs.BOUNDS["the data layer's deadline"]
    cell = Cell.measure(
        deadline, settings, outcome.elapsed, hangs.outcome_of(outcome.error), unbounded=True,
        scenario=str(context.scenario.location), scale=context.settings.timeout_scale,
    )  # fmt: skip
    context.hang_matrix.record(hang.phase, hang.fault, cell)
    assert_that(cell.outcome, equal_to("deadline_exceeded"), outcome.describe())
    assert cell.within, f"{hang.phase}, {hang.fault}: {cell.describe()}"
    words, seconds = hangs.longest_client_bound(settings)
    assert_that(
        outcome.elapsed,
        greater_than((1 + hangs.TOLERANCE) * seconds),
        f"the wait (s), past the longest client bound, {words} ({seconds:.2f} s) and "
        f"{hangs.TOLERANCE:.0%}: no client setting ended it",
    )
