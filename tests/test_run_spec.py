"""./run-spec passes INT and TERM on to behave, waits for it and still builds the reports.

It runs in a copy of the tree (its own reports/, the same .venv), so the user's reports
are never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from failspec.harness import processes, waiting
from failspec.harness.faults import packet_filter
from failspec.harness.faults.network import PacketLoss
from tests.owned import server_dirs_of

ROOT = Path(__file__).resolve().parent.parent
COPIED = ("src", "features", "scripts", "run-spec", "pyproject.toml", "requirements.txt",
          "requirements-dev.txt", "requirements-dev.lock", "tests/fixtures/interrupt",
          "tests/fixtures/interrupt-parallel")  # fmt: skip


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    copy = tmp_path / "tree"
    for name in COPIED:
        source, target = ROOT / name, copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    if not (ROOT / ".venv" / "bin" / "python").exists():
        pytest.skip("no .venv beside the tree to share (run ./run-tests once)")
    (copy / ".venv").symlink_to(ROOT / ".venv")
    return copy


@pytest.mark.server
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_to_run_spec_alone_stops_behave_and_the_reports_are_built(sig, tree):
    marker = tree / "server.json"
    env = {**os.environ, "FAILSPEC_TEST_MARKER": str(marker), "PYTHONPATH": str(tree / "src"),
           "FAILSPEC_JOBS": "1"}  # fmt: skip
    # A session of its own, as a shell's job is: the signal goes to run-spec only.
    run = subprocess.Popen(
        ["bash", str(tree / "run-spec"), "tests/fixtures/interrupt", "-D", "backend=embedded"],
        cwd=tree, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        start_new_session=True,
    )  # fmt: skip
    try:
        waiting.until(lambda: marker.exists() and marker.read_text(), timeout=60, what="start")
        behave = json.loads(marker.read_text())["behave_pid"]
        run.send_signal(sig)
        output, _ = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode == 128 + sig, output
    assert not processes.pid_alive(behave), output  # behave was stopped, not left running
    name = signal.Signals(sig).name
    assert f"failspec: interrupted by {name}" in output
    reports = tree / "reports"
    assert (reports / "report.html").exists() and (reports / "behave.json").exists(), output
    assert list((reports / "junit").glob("*.xml")), output
    # The report and the closing line, from the run's record: the scenario did not finish.
    assert (reports / "run.json").exists(), output
    assert 'class="badge not_finished">not finished<' in (reports / "report.html").read_text()
    assert "behave: 0 passed, 0 failed, 0 skipped, 1 not finished, 0 not run\n" in output
    # behave's own summary would disagree with the closing line: it is not printed.
    assert "Took " not in output and "scenarios passed" not in output, output
    # The record's verdict is the exit code the run gave.
    outcomes = json.loads((reports / "run.json").read_text())["outcomes"]
    assert (outcomes["green"], outcomes["exit_code"]) == (False, run.returncode)


def rules_of(pids: set[int]) -> list[str]:
    """The packet-loss rules the processes ``pids`` added (none where iptables is not)."""
    if PacketLoss.unavailable() is not None:
        return []
    listed = packet_filter.iptables("-S", "INPUT").stdout.splitlines()
    return [r for r in listed if any(f"{packet_filter.COMMENT}{pid}" in r for pid in pids)]


@pytest.mark.server
def test_ctrl_c_to_a_parallel_run_stops_every_worker_and_leaves_nothing_behind(tree):
    """Two workers, one with its cluster's network partitioned, one with a packet-loss
    rule in force: SIGINT to run-spec reaches both; each stops its servers, its cluster
    and its rule; the merged reports count both scenarios as not finished."""
    markers = tree / "markers"
    markers.mkdir()
    env = {**os.environ, "FAILSPEC_TEST_MARKER": str(markers), "PYTHONPATH": str(tree / "src")}
    run = subprocess.Popen(
        ["bash", str(tree / "run-spec"), "--jobs", "2", "tests/fixtures/interrupt-parallel",
         "-D", "backend=embedded"],
        cwd=tree, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        start_new_session=True,
    )  # fmt: skip
    try:

        def both() -> bool:
            written = list(markers.glob("w*.json"))
            return len(written) == 2 and all(m.read_text() for m in written)

        waiting.until(both, timeout=120, what="both workers in their fault")
        held = [json.loads(m.read_text()) for m in sorted(markers.glob("w*.json"))]
        pids = {h["behave_pid"] for h in held}
        assert len(server_dirs_of(pids)) == 4  # each worker's server, one cluster's two
        run.send_signal(signal.SIGINT)
        output, _ = run.communicate(timeout=90)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode == 130, output
    assert not any(processes.pid_alive(pid) for pid in pids), output
    assert server_dirs_of(pids) == [], output
    assert rules_of(pids) == [], output
    assert "behave: 0 passed, 0 failed, 0 skipped, 2 not finished, 0 not run\n" in output
    assert (tree / "reports" / "report.html").exists(), output
    assert len(list((tree / "reports" / "junit").glob("*.xml"))) == 1, output
