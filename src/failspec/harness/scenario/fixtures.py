"""What a scenario holds, as behave fixtures: one cleanup path, in an order written here.

Every resource of a scenario is made by a fixture (a generator: what comes before its
``yield`` makes the resource, what comes after closes it) used through behave's
``use_fixture``, which registers the closing part the moment the resource is made (behave
docs, "Fixtures": "fixture-cleanup is performed after scenario ... when the context layer
is removed"). behave runs a layer's cleanups last-in first-out, after the
``after_scenario`` hook, so a scenario is taken down in the reverse of the order it was
set up (:data:`SETUP`); :data:`TEARDOWN` says it in words, and tests/test_fixtures.py
checks it against behave's own cleanup.

The guards are a fixture too, set up right after the schema: so they look only once
everything the scenario and the harness opened is closed, and the schema goes after them.
A resource's closing that fails does not stop the others: the problem is handed to the
guards, which report it with their own findings (the scenario ends in ``hook_error``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from behave import fixture

from failspec.conditions import first_line
from failspec.harness.scenario.workspace import Workspace

T = TypeVar("T")

#: The order a scenario's resources are made in (before_scenario, then its steps).
SETUP = (
    "schema",
    "guards",
    "application",
    "sessions",
    "network",
    "server faults",
    "the steps' resources",
)

#: The order they are closed in: the reverse of :data:`SETUP`.
TEARDOWN = (
    "the steps' resources, latest first",  # workers, hangs, other clients, sockets
    "server faults",  # a paused server resumed, a stopped one started, rules removed
    "network",  # the fault proxy: its connections cut, its port closed
    "sessions",  # the concurrent sessions T1, T2 …: rolled back, returned, disposed
    "application",  # its pool disposed, its held and forgotten connections closed
    "guards",  # leaks, integrity, money conservation, counting, evidence
    "schema",  # the scenario's engines disposed, stragglers ended, the schema dropped
)


class GuardFailed(AssertionError):
    """What the guards found after a scenario: a changed ledger, a leak, a broken cleanup."""

    #: Whether it was said already (on the console and as the scenario's error).
    reported: bool = False


class Guards:
    """What the guards of one scenario are handed before they look.

    ``problems``: what went wrong closing a resource ("closing … failed: …"), reported
    with the guards' findings; ``left_on_purpose``: closers of what a scenario leaks on
    purpose (an ``@expect-leak`` scenario), run only after the leak guard has seen it.
    """

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.left_on_purpose: list[Callable[[], None]] = []

    def leave(self, close: Callable[[], None]) -> None:
        """Keep ``close`` until the guards have looked: what it closes is a leak the leak
        guard must find. It runs after the guards, before the schema goes."""
        self.left_on_purpose.append(close)

    def note(self, what: str, error: BaseException) -> None:
        """A resource's closing failed with ``error``: one line for the guards' report."""
        if isinstance(error, AssertionError):
            self.problems.append(str(error))
        else:
            self.problems.append(
                f"closing {what} failed: {type(error).__name__}: {first_line(error)}"
            )


@fixture  # type: ignore[untyped-decorator]  # behave is untyped
def schema(context: Any, name: str) -> Iterator[Workspace]:
    """The scenario's schema on the run's server (``context.run``: a
    failspec.harness.scenario.workspace.Run), named after the scenario ``name`` in its
    connections' application_name. Closed last: its engines disposed now, its stragglers
    ended and the schema dropped on the run's worker thread (``Run.retire``).

    Sets ``context.workspace``."""
    workspace: Workspace = context.run.workspace(name)
    context.workspace = workspace
    yield workspace
    context.run.retire(workspace)


@fixture  # type: ignore[untyped-decorator]  # behave is untyped
def guarded(context: Any, check: Callable[[Guards], None]) -> Iterator[Guards]:
    """The scenario's guards: ``check(guards)`` runs once every fixture set up after
    this one is closed (it raises what the guards found: behave then counts the scenario
    as failed). What was left on purpose is closed after it, all of it, whatever it
    raised; a closing that fails then raises :class:`GuardFailed` unless ``check`` did.

    Sets ``context.guards``."""
    guards = context.guards = Guards()
    yield guards
    found: BaseException | None = None
    try:
        check(guards)
    except BaseException as error:
        found = error
        raise
    finally:
        failures = []
        for close in reversed(guards.left_on_purpose):
            try:
                close()
            except Exception as error:  # the others still close
                failures.append(error)
        if failures and found is None:  # what the guards found is the report, if anything
            raise GuardFailed(
                "; ".join(f"closing what was left on purpose failed: {type(e).__name__}: "
                          f"{first_line(e)}" for e in failures)
            )  # fmt: skip


@fixture  # type: ignore[untyped-decorator]  # behave is untyped
def held(
    context: Any, resource: T, close: Callable[[], None] | None = None, what: str | None = None
) -> Iterator[T]:
    """Hold ``resource`` for the scenario and close it when the scenario ends: with
    ``close`` if given, else its ``close()`` method. A failure to close is handed to the
    guards (``context.guards``, see :func:`guarded`) as ``what`` (default: the resource's
    class name), so the next resources still close; without guards it is raised.

    Use it from a step the moment the resource exists:
    ``context.worker = use_fixture(held, context, Worker(...))``."""
    yield resource
    closing = close if close is not None else resource.close  # type: ignore[attr-defined]
    try:
        closing()
    except Exception as error:
        guards: Guards | None = getattr(context, "guards", None)
        if guards is None:
            raise
        guards.note(what or type(resource).__name__, error)
