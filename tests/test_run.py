"""Whole runs of behave, as a user starts them: cleanup and bad input, end to end."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import sqlalchemy as sa

from failspec.harness import processes, waiting
from failspec.harness.faults.network import PacketLoss
from failspec.report.html import build_report

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "features"
BLOCKED = ROOT / "tests" / "fixtures" / "blocked"
STOPS = ROOT / "tests" / "fixtures" / "stops"


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
    assert "HOOK-ERROR in the guards fixture: GuardFailed: the scenario left behind" in output
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
    assert not processes.pid_alive(server["pid"]) or processes.is_zombie(server["pid"])
    assert not Path(server["base"]).exists()
    with pytest.raises(ConnectionRefusedError):  # the proxy no longer listens
        socket.create_connection(("127.0.0.1", server["proxy_port"]), timeout=1).close()
    if server["dropping"]:
        rules = subprocess.run(["iptables", "-S", "INPUT"], capture_output=True, text=True)
        assert f"failspec-packet-loss:{server['behave_pid']}" not in rules.stdout


def junit_cases(directory: Path) -> dict[str, ET.Element]:
    """Each testcase of the JUnit reports in ``directory``, by its name."""
    return {
        case.get("name", ""): case
        for path in sorted(directory.glob("*.xml"))
        for case in ET.parse(path).getroot().iter("testcase")
    }


def unacknowledged(port: int) -> bool:
    """Whether a connection to ``port`` on 127.0.0.1 has sent data no one acknowledged
    (its send queue is not empty): a request is sitting in the silent network."""
    sockets = subprocess.run(
        ["ss", "-tnH", "state", "established", "dst", f"127.0.0.1:{port}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return any(int(line.split()[1]) > 0 for line in sockets.splitlines() if line.strip())


@pytest.mark.server
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupt_while_the_driver_is_blocked_stops_the_run_and_says_so(sig, tmp_path):
    # psycopg2 blocked in libpq on a silent network: the KeyboardInterrupt may be raised in
    # its error path and come out as a connection error, which a retrying data layer takes.
    why = PacketLoss.unavailable()
    if why is not None:
        pytest.skip(why)
    marker = tmp_path / "blocked.json"
    reports = tmp_path / "reports"
    run = subprocess.Popen(
        [sys.executable, "-m", "behave", str(BLOCKED), "-D", "backend=embedded",
         "-f", "json", "-o", str(reports / "behave.json"), "-f", "plain",
         "--junit-directory", str(reports / "junit")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "FAILSPEC_TEST_MARKER": str(marker)},
    )  # fmt: skip
    try:
        waiting.until(lambda: marker.exists() and marker.read_text(), timeout=60, what="start")
        port = json.loads(marker.read_text())["proxy_port"]
        waiting.until(lambda: unacknowledged(port), timeout=10, what="a request unacknowledged")
        run.send_signal(sig)
        signalled = time.monotonic()
        output, _ = run.communicate(timeout=60)
        took = time.monotonic() - signalled
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 128 + sig, output
    assert took < 5, output  # the packet loss would heal only after 10 s
    assert not marker.with_suffix(".ran").exists(), output  # no step ran after the signal
    name = signal.Signals(sig).name
    said = f"failspec: interrupted by {name} after 0 of 2 scenarios: 1 not finished, 1 not run"
    assert said in output  # (psycopg2 may print the KeyboardInterrupt it swallowed)

    cases = junit_cases(reports / "junit")
    interrupted = cases["A read retried on a silent network until the run is interrupted"]
    assert interrupted.find("error") is not None, ET.tostring(interrupted)
    assert f"interrupted by {name}" in interrupted.find("error").get("message", "")
    skipped = cases["A scenario after the interrupted one"].find("skipped")
    assert skipped is not None and skipped.get("message") == f"not run: interrupted by {name}"
    closing = subprocess.run(
        [sys.executable, "-m", "failspec.report.closing", str(reports)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert closing == "behave: 0 passed, 0 failed, 0 skipped, 1 not finished, 1 not run\n"

    # The report is rendered from the run's record alone.
    for other in (reports / "behave.json", reports / "stopped-early.json"):
        other.unlink()
    shutil.rmtree(reports / "junit")
    page = build_report(reports).read_text(encoding="utf-8")
    assert f"Interrupted ({name}) after 0 of 2 scenarios" in page
    assert 'class="badge not_finished">not finished<' in page
    assert 'class="badge not_run">not run<' in page
    assert 'class="badge fails"' not in page  # an interrupted scenario is no failed guarantee
    summary = " ".join(re.sub(r"<[^>]+>", " ", page[page.index('id="summary"') :]).split())
    assert "0 of 1 guarantees hold , none fails, 1 not checked." in summary


@pytest.mark.server
def test_a_server_that_dies_mid_run_ends_it_at_once_in_one_line(tmp_path):
    ran = tmp_path / "ran"
    done, took = behave(
        str(STOPS / "server-dies.feature"), "-D", "backend=embedded", "-f", "plain",
        "--junit-directory", str(tmp_path / "junit"), env={"FAILSPEC_TEST_MARKER": str(ran)},
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert took < 30, output
    assert not ran.exists(), output  # no scenario ran on the dead server
    lines = [line for line in output.splitlines() if line.startswith("failspec: the server")]
    assert len(lines) == 1, output
    assert lines[0].startswith("failspec: the server stopped: it refuses connections"), output
    assert lines[0].endswith("the run stopped after 0 of 3 scenarios: 1 not finished, 2 not run")
    assert "Traceback" not in output and "HOOK-ERROR" not in output, output
    cases = junit_cases(tmp_path / "junit")
    killed = cases["The server is killed, as the out-of-memory killer would"]
    assert killed.find("error").get("type") == "ServerStopped"
    for name in ("A second scenario, after it", "A third scenario, after it"):
        reason = cases[name].find("skipped").get("message", "")
        assert reason.startswith("not run: the server stopped: it refuses connections"), reason
    stopped = json.loads((tmp_path / "stopped-early.json").read_text())
    assert stopped["not_run"] == [
        "tests/fixtures/stops/server-dies.feature:6",
        "tests/fixtures/stops/server-dies.feature:9",
    ]
    # The run's record says the same, and the report rendered from it alone shows it.
    assert json.loads((tmp_path / "run.json").read_text())["stopped"] == stopped
    for other in tmp_path.iterdir():
        if other.name != "run.json":
            shutil.rmtree(other) if other.is_dir() else other.unlink()
    page = build_report(tmp_path).read_text(encoding="utf-8")
    assert "Stopped after 0 of 3 scenarios: the server stopped: it refuses connections" in page
    assert page.count('class="badge not_finished">not finished<') == 1
    assert page.count('class="badge not_run">not run<') == 2
    summary = " ".join(re.sub(r"<[^>]+>", " ", page[page.index('id="summary"') :]).split())
    assert "0 of 1 guarantees hold , none fails, 1 not checked." in summary


@pytest.mark.server
def test_a_setup_broken_half_way_is_cleaned_up_and_a_skip_says_why_on_the_console(server, tmp_path):
    url = server.endpoint.url().render_as_string(hide_password=False)
    ran = tmp_path / "ran"
    done, _ = behave(
        str(STOPS / "half-way.feature"), "-D", "backend=url", "-f", "plain",
        "--junit-directory", str(tmp_path / "junit"),
        env={"DATABASE_URL": url, "FAILSPEC_TEST_MARKER": str(ran)},
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "HOOK-ERROR in before_scenario: RuntimeError: setup broken half-way" in output
    assert "AttributeError" not in output and "HOOK-ERROR in after_scenario" not in output
    assert ran.read_text() == "A scenario after them\n"  # the run went on
    assert scenario_schemas(server) == []
    assert scenario_connections(server) == []
    assert (
        "failspec: skipped tests/fixtures/stops/half-way.feature:7 (A scenario that skips "
        "itself): this machine lacks something the scenario needs"
    ) in done.stdout
