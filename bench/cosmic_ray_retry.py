"""Operator-level mutants of the retry policy, by cosmic-ray, scored beside the catalogue's.

cosmic-ray (pinned in requirements-dev.txt) makes every operator-level change it knows to
src/failspec/ledger/retry.py (a comparison flipped, a number changed, ``+`` for ``-``, a
``break`` for a ``continue``...), one at a time, and runs a test command after each: the
mutant is killed when the command fails. The command here is the unit tests of the
policy (tests/test_retry.py) and then the features that exercise retries, run with
``behave --stop`` (only pass/fail counts):
features/operations.retries.feature, concurrency.deadlocks.feature,
network.faults.feature, server.faults.feature. ``--spec-only`` drops the unit tests, to
see what the specification alone catches.

Everything runs in a temporary copy of the tree (cosmic-ray edits the module in place),
with ``PYTHONPATH=<copy>/src`` so the copy's code is what runs.

Run from the repository root::

    .venv/bin/python bench/cosmic_ray_retry.py [--spec-only] [--from-head] [--keep]

It prints each survivor's diff, the counts, the score (killed / all mutants) and the
wall time, and writes reports/cosmic-ray-retry.json. Measured at commit e203257
(2026-11-30, load average 5-8 from other runs): 80 mutants, 76 killed in 134 s; the 4
survivors are equivalent: ``range(1, attempts << 1)`` and ``range(1, attempts + 2)`` (the
loop always ends at attempt == attempts, by a return or a raise), ``attempt != attempts``
and ``attempt is not attempts`` for ``attempt < attempts`` (the same for 1..attempts;
small ints are cached). ``--spec-only`` at 4483b24: the same 76 killed in 166 s (the
note "gave up after N attempts" is now read by a scenario; at e203257 it was not, and
inverting ``if self.transient(error)`` before it survived).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULE = "src/failspec/ledger/retry.py"
UNIT_TESTS = ("tests/test_retry.py",)
FEATURES = (
    "features/operations.retries.feature",
    "features/concurrency.deadlocks.feature",
    "features/network.faults.feature",
    "features/server.faults.feature",
)
COPIED = ("src", "features", "tests", "pyproject.toml")
REPORT = ROOT / "reports" / "cosmic-ray-retry.json"

CONFIG = """[cosmic-ray]
module-path = "{module}"
timeout = {timeout}
excluded-modules = []
test-command = "{command}"

[cosmic-ray.distributor]
name = "local"
"""


def copy_tree(into: Path, from_head: bool) -> None:
    """Copy what the test command needs (COPIED) into ``into``, from the working tree or
    from the commit HEAD."""
    if from_head:
        archive = subprocess.run(
            ["git", "archive", "--format=tar", "HEAD", *COPIED],
            cwd=ROOT, check=True, capture_output=True,
        )  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
        return
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, into / name, ignore=ignore)
        else:
            shutil.copy2(source, into / name)


def test_script(tree: Path, bin_dir: Path, spec_only: bool) -> Path:
    """The test command cosmic-ray runs in ``tree`` after each mutation: exit 0 = survived."""
    behave = [
        str(bin_dir / "behave"), "-D", "backend=embedded", "--stop", "-f", "null",
        "--junit-directory", str(tree.parent / "reports" / "junit"), *FEATURES,
    ]  # fmt: skip
    lines = [
        "#!/usr/bin/env bash",
        "set -e",
        f"cd {tree}",
        f"export PYTHONPATH={tree / 'src'} PYTHONDONTWRITEBYTECODE=1",
    ]
    if not spec_only:
        pytest = [str(bin_dir / "pytest"), "-q", "-x", "-p", "no:cacheprovider", *UNIT_TESTS]
        lines.append(" ".join(pytest) + " >/dev/null 2>&1")
    lines.append(" ".join(behave) + " >/dev/null 2>&1")
    script = tree / "mutant-test.sh"
    script.write_text("\n".join(lines) + "\n")
    script.chmod(0o755)
    return script


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--spec-only", action="store_true", help="no unit tests, only behave")
    parser.add_argument("--from-head", action="store_true", help="copy HEAD, not the work tree")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per mutant")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy")
    parser.add_argument("--report", type=Path, default=REPORT)
    args = parser.parse_args(argv)
    bin_dir = Path(sys.executable).parent
    cosmic_ray = bin_dir / "cosmic-ray"
    if not cosmic_ray.exists():
        print(f"cosmic_ray_retry: no {cosmic_ray}; install requirements-dev.txt", file=sys.stderr)
        return 2

    started = time.monotonic()
    home = Path(tempfile.mkdtemp(prefix="failspec-cosmic-ray-"))
    try:
        tree = home / "tree"
        tree.mkdir()
        copy_tree(tree, args.from_head)
        script = test_script(tree, bin_dir, args.spec_only)
        (tree / "cr.toml").write_text(
            CONFIG.format(module=MODULE, timeout=args.timeout, command=script)
        )
        env = {**os.environ, "PYTHONPATH": str(tree / "src")}

        def cr(*words: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [str(cosmic_ray), *words], cwd=tree, env=env, capture_output=True, text=True
            )

        for step in (("init", "cr.toml", "session.sqlite"), ("baseline", "cr.toml")):
            done = cr(*step)
            if done.returncode != 0:
                print(f"cosmic_ray_retry: cosmic-ray {step[0]} failed:\n{done.stdout}"
                      f"{done.stderr}", file=sys.stderr)  # fmt: skip
                return 2
        cr("exec", "cr.toml", "session.sqlite")
        dump = cr("dump", "session.sqlite").stdout.splitlines()
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    wall = round(time.monotonic() - started, 1)

    results = [json.loads(line) for line in dump if line.strip()]
    outcomes = Counter((r or {}).get("test_outcome", "not run") for _, r in results)
    survivors = [r["diff"] for _, r in results if r and r.get("test_outcome") == "survived"]
    for diff in survivors:
        print("SURVIVED\n" + "\n".join(diff.splitlines()[1:]) + "\n")
    total = len(results)
    killed = outcomes.get("killed", 0)
    print(
        f"cosmic-ray on {MODULE}: {total} mutants, killed {killed}, survived "
        f"{outcomes.get('survived', 0)}, other {total - killed - outcomes.get('survived', 0)} "
        f"({dict(outcomes)}); score {killed / total if total else 0:.1%} (killed / all); "
        f"wall time {wall:.0f} s; test command: "
        f"{'' if args.spec_only else 'tests/test_retry.py, then '}behave --stop on "
        f"{len(FEATURES)} features"
    )
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(
        json.dumps(
            {
                "module": MODULE,
                "spec_only": args.spec_only,
                "features": FEATURES,
                "unit_tests": [] if args.spec_only else UNIT_TESTS,
                "wall_seconds": wall,
                "outcomes": dict(outcomes),
                "survivors": survivors,
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
