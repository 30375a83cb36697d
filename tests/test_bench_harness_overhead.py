"""bench/harness_overhead.py drives the real hooks with stand-ins for behave's objects; it
broke silently once when the hooks changed (a new context attribute, the guards moved into
the fixtures). A short run keeps it honest: it must complete and time every phase."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.server
def test_the_harness_overhead_bench_runs_between_the_current_hooks():
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "harness_overhead.py"), "--rounds", "2",
         "--server-rounds", "1"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-2000:]
    for phase in ("guard: leaks", "guard: fingerprint + conservation", "counting", "targets"):
        assert phase in done.stdout
