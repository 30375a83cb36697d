"""Whole runs of behave, as a user starts them: cleanup and bad input, end to end."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from failspec.harness import embedded, waiting

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "features"


def behave(*args: str, env: dict[str, str] | None = None, timeout: float = 120):
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "behave", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    return done, time.monotonic() - started


def scenario_schemas(server) -> list[str]:
    engine = server.engine()
    try:
        with engine.connect() as conn:
            return list(
                conn.execute(
                    sa.text("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, 'fs_')")
                ).scalars()
            )
    finally:
        engine.dispose()


def scenario_connections(server) -> list[str]:
    """Connections named for a scenario (``fs:<run>:<n> …``) still on the server."""
    engine = server.engine()
    try:
        with engine.connect() as conn:
            return list(
                conn.execute(
                    sa.text(
                        "SELECT application_name FROM pg_stat_activity "
                        "WHERE starts_with(application_name, 'fs:')"
                    )
                ).scalars()
            )
    finally:
        engine.dispose()


@pytest.mark.server
def test_nothing_is_left_when_steps_fail_break_or_a_hook_fails(server, tmp_path):
    url = server.endpoint.url().render_as_string(hide_password=False)
    done, _ = behave(
        str(FIXTURE), "-D", "backend=url", "-f", "plain",
        "--junit-directory", str(tmp_path / "junit"), env={"DATABASE_URL": url},
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "1 scenario passed, 1 failed, 1 error, 1 hook_error" in output, output
    assert "HOOK-ERROR in after_scenario: GuardFailed: the scenario left behind" in output
    assert scenario_schemas(server) == []
    assert scenario_connections(server) == []
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    statuses = [s["status"] for s in metrics["scenarios"]]
    assert statuses == ["passed", "failed", "error", "hook_error"]
    evidence = json.loads((tmp_path / "evidence.json").read_text())
    broke = evidence[str(FIXTURE.relative_to(ROOT) / "run.feature") + ":10"]
    assert "a transaction left open" in broke["leaks"][1]
    assert server.endpoint.password not in output
    assert "failspec: backend=url" in output


def test_an_unknown_backend_is_one_line_and_a_non_zero_exit():
    done, took = behave(str(FIXTURE), "-D", "backend=oracle")
    assert done.returncode != 0
    assert took < 10
    assert done.stderr.strip().splitlines() == [
        "failspec: cannot run: unknown backend 'oracle': use one of auto, docker, embedded, "
        "url (-D backend=... or FAILSPEC_BACKEND)"
    ]
    assert "Traceback" not in done.stdout + done.stderr


def test_an_unreachable_url_fails_fast_without_echoing_the_password():
    done, took = behave(
        str(FIXTURE), "-D", "backend=url",
        env={"DATABASE_URL": "postgresql://u:hunter2-secret@127.0.0.1:1/db"},
    )  # fmt: skip
    assert done.returncode != 0
    assert took < 10
    assert "cannot connect" in done.stderr
    assert "hunter2-secret" not in done.stdout + done.stderr


@pytest.mark.server
def test_a_run_that_selects_no_scenario_is_not_green(server):
    url = server.endpoint.url().render_as_string(hide_password=False)
    done, _ = behave(
        str(FIXTURE), "-D", "backend=url", "--tags", "@nothing-has-this", "-f", "plain",
        "--no-junit", env={"DATABASE_URL": url},
    )  # fmt: skip
    assert done.returncode != 0
    assert "no scenario ran" in done.stdout + done.stderr


@pytest.mark.server
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_run_stops_its_server_and_leaves_nothing(sig, tmp_path):
    marker = tmp_path / "server.json"
    run = subprocess.Popen(
        [sys.executable, "-m", "behave", str(ROOT / "tests" / "fixtures" / "interrupt"),
         "-D", "backend=embedded", "--no-junit", "-f", "plain"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "FAILSPEC_TEST_MARKER": str(marker)},
    )  # fmt: skip
    try:
        waiting.until(lambda: marker.exists() and marker.read_text(), timeout=60, what="start")
        server = json.loads(marker.read_text())
        run.send_signal(sig)
        output, _ = run.communicate(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode != 0, output
    assert not embedded.pid_alive(server["pid"]) or embedded._is_zombie(server["pid"])
    assert not Path(server["base"]).exists()
    with pytest.raises(ConnectionRefusedError):  # the proxy no longer listens
        socket.create_connection(("127.0.0.1", server["proxy_port"]), timeout=1).close()
    if server["dropping"]:
        rules = subprocess.run(["iptables", "-S", "INPUT"], capture_output=True, text=True)
        assert f"failspec-packet-loss:{server['behave_pid']}" not in rules.stdout
