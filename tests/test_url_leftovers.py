"""On somebody's own server (the url backend) the suite names what killed runs left there,
and drops none of it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import sqlalchemy as sa

from failspec.harness import servers, waiting
from failspec.harness.scenario.workspace import dead_runs_notice
from failspec.harness.servers.settings import Settings

pytestmark = pytest.mark.server

KILLED_RUN = """
import os
from failspec.harness import servers
from failspec.harness.servers.settings import Settings
from failspec.harness.scenario.workspace import Run
run = Run(servers.start(Settings(backend="url", db_url=os.environ["FAILSPEC_TEST_URL"])))
run.workspace("a scenario the run was killed in")
print(run.id, flush=True)
input()
"""


def schemas(server: servers.Server, pattern: str) -> list[str]:
    engine = server.engine()
    try:
        with engine.connect() as conn:
            return list(
                conn.execute(
                    sa.text("SELECT nspname FROM pg_namespace WHERE nspname LIKE :p ORDER BY 1"),
                    {"p": pattern},
                ).scalars()
            )
    finally:
        engine.dispose()


def execute(server: servers.Server, sql: str) -> None:
    engine = server.engine(isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(sql))
    finally:
        engine.dispose()


def sessions_of(server: servers.Server, run_id: str) -> int:
    engine = server.engine()
    try:
        with engine.connect() as conn:
            return conn.execute(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE :n"),
                {"n": f"failspec:{run_id}:%"},
            ).scalar_one()
    finally:
        engine.dispose()


def test_the_banner_names_the_schemas_a_killed_run_left_and_how_to_drop_them(server, run):
    url = server.endpoint.url().render_as_string(hide_password=False)
    killed = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True, env={**os.environ, "FAILSPEC_TEST_URL": url},
    )  # fmt: skip
    dead_id = killed.stdout.readline().strip()
    assert dead_id, "the run that is to be killed did not start"
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    killed.stdin.close()
    killed.stdout.close()
    live = run.workspace("a scenario of a run still going")
    execute(server, "CREATE SCHEMA fs_notours")  # a name like ours, not of our form
    try:
        waiting.until(lambda: sessions_of(server, dead_id) == 0, timeout=10, what="its end")
        left = schemas(server, f"fs\\_{dead_id}\\_%")
        assert left  # its scenario's (and the next one's, if it was made ahead in time)

        notice = dead_runs_notice(servers.start(Settings(backend="url", db_url=url)))

        assert notice.startswith("\nfailspec: ")  # a line of its own under the banner
        assert f"{', '.join(left)}." in notice
        assert f"DROP SCHEMA {', '.join(left)} CASCADE;" in notice
        assert live.schema not in notice and "fs_notours" not in notice
        assert schemas(server, f"fs\\_{dead_id}\\_%") == left  # named, never dropped
    finally:
        for schema in [*schemas(server, f"fs\\_{dead_id}\\_%"), "fs_notours"]:
            execute(server, f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        run.retire(live)


def test_the_banner_says_nothing_more_when_no_run_left_anything(server):
    url = server.endpoint.url().render_as_string(hide_password=False)
    assert dead_runs_notice(servers.start(Settings(backend="url", db_url=url))) == ""
