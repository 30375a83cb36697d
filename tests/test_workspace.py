"""A clean schema per scenario, with the scenario's identity on every connection."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from failspec.harness.guards import books
from failspec.harness.scenario.workspace import Run, application_name
from failspec.ledger import Ledger

pytestmark = pytest.mark.server


def test_each_scenario_gets_its_own_uniquely_named_schema(run):
    first, second = run.workspace("one"), run.workspace("two")
    try:
        assert first.schema != second.schema
        assert first.schema.startswith(f"fs_{run.id}_")
        assert {first.schema, second.schema} <= set(run.schemas())
    finally:
        first.close()
        second.close()
    assert first.schema not in run.schemas()


def test_the_next_schema_is_prepared_while_the_current_scenario_runs(server):
    run = Run(server, prepare=Ledger.create_tables)
    try:
        current = run.workspace("current")
        run._ready[0].result()  # the worker prepares the next one without being asked
        assert len(run.schemas()) == 2
        with current.observe() as conn:
            # the ledger's table is there, empty
            assert books.fingerprint(conn, current.schema).count == 0
        run.retire(current)
    finally:
        assert run.close() == []
    assert run.schemas() == []


def test_a_retired_workspace_is_dropped_behind_the_run(server):
    run = Run(server)
    try:
        workspace = run.workspace("finished")
        run.retire(workspace)
        run._retiring[0].result()
        assert workspace.schema not in run.schemas()
    finally:
        run.close()


def test_a_failing_preparation_surfaces_in_the_scenario_that_needed_it(server):
    def broken(conn):
        conn.execute(sa.text("CREATE TABLE broken (x no_such_type)"))

    run = Run(server, prepare=broken)
    try:
        with pytest.raises(sa.exc.ProgrammingError, match="no_such_type"):
            run.workspace("unlucky")
    finally:
        run.close()
    assert run.schemas() == []


def test_every_connection_carries_the_schema_and_the_scenario_name(run):
    workspace = run.workspace("Paying twice is refused")
    try:
        with workspace.engine().connect() as conn:
            path, name = conn.execute(
                sa.text(
                    "SELECT current_setting('search_path'), current_setting('application_name')"
                )
            ).one()
        assert path == workspace.schema
        assert name == workspace.application_name
        assert name.endswith("Paying twice is refused")
    finally:
        workspace.close()


def test_closing_drops_the_schema_even_with_a_connection_left_in_a_transaction(run):
    workspace = run.workspace("leaky")
    engine = workspace.engine()
    leaked = engine.connect()
    leaked.execute(sa.text("CREATE TABLE t (x int)"))  # holds a lock until the transaction ends
    workspace._engines.clear()  # as if the scenario forgot all about it
    workspace.close()
    assert workspace.schema not in run.schemas()
    assert workspace.open_backends() == []
    leaked.invalidate()
    engine.dispose()


def test_the_run_drops_only_its_own_schemas(run, server):
    admin = server.engine(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text("CREATE SCHEMA fs_otherrun_1"))
    try:
        forgotten = run.workspace("forgotten")  # never closed: the run must drop it
        assert run.close() == [forgotten.schema]
        with admin.connect() as conn:
            names = conn.execute(sa.text("SELECT nspname FROM pg_namespace")).scalars().all()
        assert "fs_otherrun_1" in names
        assert not [n for n in names if n.startswith(f"fs_{run.id}_")]
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text("DROP SCHEMA fs_otherrun_1"))
        admin.dispose()


def test_application_names_fit_postgresql_and_stay_ascii():
    name = application_name("abcd1234", 12, "Zahlung über " + "x" * 100)
    assert len(name.encode()) <= 63
    assert name.startswith("fs:abcd1234:12 Zahlung ?ber")
