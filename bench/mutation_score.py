"""The specification's mutation score: how many realistic data-layer bugs it catches.

Each file ``mutants/NN-name.patch`` is one bug of the system under specification (the
ledger, its retry policy, its ORM unit of work, the application's engine and pool
settings): a few header lines, then a unified diff against the repository root that
``git apply`` accepts (it skips the text before the first ``diff --git``)::

    Why: <one sentence: what a real engineer would have been thinking>
    Kind: ledger|retry|orm|settings
    Equivalent: <optional: why no run can observe it>

For each mutant the runner copies the working tree (src, features, pyproject.toml) to a
temporary directory, applies the patch there, and runs the whole specification in that
copy with behave (``-D backend=embedded``, ``PYTHONPATH=<copy>/src``, so the copy's code
runs, not the editable install's; every copy is checked for that before its run). First
the unmutated copy runs: it must be green, or the runner stops. Verdicts:

* killed     scenarios failed or errored (guards and hooks included) in the full run, and
             again when only those scenarios were run a second time;
* flaky      the full run was red, the re-run of its red scenarios green;
* survived   the run was green;
* equivalent the run was green and the patch says why no run can observe it (a mutant
             marked equivalent that is killed counts as killed, and is flagged);
* stale      the patch does not apply to the current tree (an error, never a kill).

The score is killed / (killed + survived + flaky). One line per mutant, the totals, the
score and the wall time are printed; reports/mutation-score.json keeps them all.

Run from the repository root::

    .venv/bin/python bench/mutation_score.py                    # the whole catalogue
    .venv/bin/python bench/mutation_score.py --jobs 2           # two mutants at a time
    .venv/bin/python bench/mutation_score.py --only no-jitter 07-no-retry-on-deadlock
    .venv/bin/python bench/mutation_score.py --list             # the catalogue, no runs
    .venv/bin/python bench/mutation_score.py -D timeout_scale=2 # more -D go to behave

Exit status: 0 when every mutant was judged, 1 when some patch is stale, 2 when the
unmutated specification is not green (nothing else is run then).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTANTS = ROOT / "mutants"
REPORT = ROOT / "reports" / "mutation-score.json"
#: What behave needs of the tree: the package, the specification, its configuration.
COPIED = ("src", "features", "pyproject.toml")
KINDS = ("ledger", "retry", "orm", "settings")
VERDICTS = ("killed", "survived", "equivalent", "flaky", "stale")
#: The package whose file must come from the copy (see check_copy_wins). Its __init__
#: imports nothing, so a mutant that breaks a module cannot break the probe; every other
#: module of the package is found through its __path__.
PROBE_MODULE = "failspec"


# -- the catalogue -------------------------------------------------------------------------


@dataclass(frozen=True)
class Mutant:
    """One patch of the catalogue and what its header says about it."""

    name: str
    path: Path
    why: str
    kind: str
    equivalent: str | None = None


class CatalogueError(ValueError):
    """A patch whose header is missing a line or says something the runner cannot use."""


def parse_header(text: str) -> dict[str, str]:
    """The ``Key: value`` lines before the first ``diff --git`` line, keys lower-cased.

    Blank lines and lines without a ``Key:`` are ignored; a later key wins.
    """
    header: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("diff --git "):
            break
        match = re.match(r"^([A-Za-z][A-Za-z -]*):\s*(.*?)\s*$", line)
        if match:
            header[match.group(1).strip().lower()] = match.group(2)
    return header


def read_mutant(path: Path) -> Mutant:
    """The mutant in ``path``. Raises CatalogueError when ``Why``/``Kind`` are missing,
    the kind is unknown, or the file holds no diff."""
    text = path.read_text()
    header = parse_header(text)
    if "diff --git " not in text:
        raise CatalogueError(f"{path.name}: no 'diff --git' in the patch")
    for key in ("why", "kind"):
        if not header.get(key):
            raise CatalogueError(f"{path.name}: no '{key.capitalize()}:' line in the header")
    if header["kind"] not in KINDS:
        raise CatalogueError(f"{path.name}: kind {header['kind']!r} is not one of {KINDS}")
    return Mutant(path.stem, path, header["why"], header["kind"], header.get("equivalent") or None)


def catalogue(directory: Path = MUTANTS) -> list[Mutant]:
    """Every ``*.patch`` of ``directory``, in name order."""
    return [read_mutant(p) for p in sorted(directory.glob("*.patch"))]


def select(mutants: Sequence[Mutant], names: Iterable[str]) -> list[Mutant]:
    """The mutants ``names`` asks for: a full name (``07-no-jitter``), the name without its
    number (``no-jitter``), or a file name. Raises CatalogueError for a name that
    matches none."""
    chosen: list[Mutant] = []
    for wanted in names:
        wanted = Path(wanted).name.removesuffix(".patch")
        found = [m for m in mutants if wanted in (m.name, m.name.split("-", 1)[-1])]
        if not found:
            raise CatalogueError(f"no mutant named {wanted!r} in {MUTANTS}")
        chosen.extend(m for m in found if m not in chosen)
    return chosen


# -- what a run said ----------------------------------------------------------------------


@dataclass(frozen=True)
class Red:
    """A scenario that failed or errored, as behave's JUnit report names it."""

    feature: str
    scenario: str
    kind: str  # "failure" or "error" (behave reports hook errors as errors)


def red_scenarios(junit_directory: Path) -> list[Red]:
    """The failed or errored test cases of every ``TESTS-*.xml`` in ``junit_directory``,
    in file order, each with its feature file's name (``TESTS-<name>.xml``). A skipped
    test case is not red."""
    found: list[Red] = []
    for report in sorted(junit_directory.glob("TESTS-*.xml")):
        feature = report.stem.removeprefix("TESTS-")
        root = ET.parse(report).getroot()
        suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
        for suite in suites:
            for case in suite.iter("testcase"):
                kind = next(
                    (child.tag for child in case if child.tag in ("failure", "error")), None
                )
                if kind is None and case.get("status") in ("failed", "error", "hook_error"):
                    kind = "error" if "error" in str(case.get("status")) else "failure"
                if kind is not None:
                    found.append(Red(feature, case.get("name", "").strip(), kind))
    return found


def rerun_locations(text: str) -> list[str]:
    """The ``features/x.feature:LINE`` lines of behave's rerun formatter output."""
    return [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


@dataclass
class RunResult:
    """One behave run: its exit status, its red scenarios and where they are."""

    returncode: int
    red: list[Red]
    locations: list[str]
    seconds: float
    timed_out: bool = False

    @property
    def green(self) -> bool:
        """Exit status 0, nothing red and no timeout: behave's and the JUnit's word agree."""
        return self.returncode == 0 and not self.red and not self.timed_out

    def describe(self) -> list[str]:
        """The red scenarios in words, or why the run is red when JUnit names none."""
        if self.timed_out:
            return [f"(the run did not finish within {self.seconds:.0f} s)"]
        if self.red:
            return [f"{r.feature}: {r.scenario}" for r in self.red]
        if self.returncode != 0:
            return [f"(behave exited {self.returncode}; JUnit names no red scenario)"]
        return []


def verdict(first: RunResult | None, confirm: RunResult | None, equivalent: bool) -> str:
    """The verdict on a mutant from its full run and the re-run of its red scenarios.

    ``first`` None: the patch did not apply (stale). A green first run: survived, or
    equivalent when the patch says so. A red first run: killed when the confirmation is
    red too (or was not needed: a run that timed out), flaky when it was green.
    """
    if first is None:
        return "stale"
    if first.green:
        return "equivalent" if equivalent else "survived"
    if first.timed_out or confirm is None or not confirm.green:
        return "killed"
    return "flaky"


@dataclass
class Outcome:
    """What the runner concluded about one mutant."""

    name: str
    kind: str
    why: str
    verdict: str
    seconds: float
    equivalent: str | None = None
    red: list[str] = field(default_factory=list)
    locations: list[str] = field(default_factory=list)
    confirmed_red: list[str] = field(default_factory=list)
    flag: str | None = None
    error: str | None = None


def summary(outcomes: Sequence[Outcome]) -> dict[str, object]:
    """Counts per verdict and the score: killed / (killed + survived + flaky).

    A stale mutant is not judged and counts in neither; score None when nothing was judged.
    """
    counts = {v: sum(o.verdict == v for o in outcomes) for v in VERDICTS}
    judged = counts["killed"] + counts["survived"] + counts["flaky"]
    return {**counts, "score": round(counts["killed"] / judged, 4) if judged else None}


# -- running the specification in a copy ---------------------------------------------------


@dataclass(frozen=True)
class Runner:
    """How to run behave in a copy of the tree."""

    behave: Path
    defines: tuple[str, ...] = ()
    timeout: float = 600.0
    #: A commit to copy (``git archive``) instead of the working tree.
    commit: str | None = None
    keep: bool = False
    #: Where copies come from: a snapshot taken once (see snapshot), so the unmutated run
    #: and every mutant see the same tree while others edit the working tree.
    source: Path = ROOT

    def snapshot(self, into: Path) -> Runner:
        """This runner, copying from a snapshot of the tree taken now into ``into``."""
        return replace(self, source=self.copy_tree(into), commit=None)

    def copy_tree(self, into: Path) -> Path:
        """A copy of what behave needs (COPIED) in ``into/tree``: from ``source``, or from
        ``commit``."""
        tree = into / "tree"
        tree.mkdir()
        if self.commit is not None:
            archive = subprocess.run(
                ["git", "archive", "--format=tar", self.commit, *COPIED],
                cwd=ROOT, check=True, capture_output=True,
            )  # fmt: skip
            subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
            return tree
        ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
        for name in COPIED:
            source = self.source / name
            if source.is_dir():
                shutil.copytree(source, tree / name, ignore=ignore)
            else:
                shutil.copy2(source, tree / name)
        return tree

    @staticmethod
    def apply(patch: Path, tree: Path) -> str | None:
        """Apply ``patch`` inside ``tree``; None when it applied, else git's complaint.

        GIT_CEILING_DIRECTORIES keeps git from taking a repository above the copy for
        its own (inside one, ``git apply`` would silently skip paths outside the cwd).
        """
        env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(tree.parent)}
        done = subprocess.run(
            ["git", "apply", "--verbose", str(patch)],
            cwd=tree, env=env, capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0:
            return (done.stderr or done.stdout).strip()
        return None

    def env(self, tree: Path) -> dict[str, str]:
        """The environment of a run in ``tree``: its own src first on the import path."""
        return {**os.environ, "PYTHONPATH": str(tree / "src"), "PYTHONDONTWRITEBYTECODE": "1"}

    def check_copy_wins(self, tree: Path) -> None:
        """Fail unless behave's interpreter, in ``tree``'s environment, imports failspec
        from ``tree``: the editable install's .pth puts the original src after
        PYTHONPATH on sys.path; this proves it for every copy."""
        python = self.behave.with_name("python")
        done = subprocess.run(
            [str(python), "-c", f"import {PROBE_MODULE} as m; print(m.__file__)"],
            cwd=tree, env=self.env(tree), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        where = Path(done.stdout.strip() or "?").resolve()
        if done.returncode != 0 or tree.resolve() not in where.parents:
            raise RuntimeError(
                f"the copy's code does not run: {PROBE_MODULE} comes from {where}, "
                f"not {tree} ({done.stderr.strip()[-300:]})"
            )

    def behave_run(self, tree: Path, label: str, locations: Sequence[str] = ()) -> RunResult:
        """Run behave in ``tree`` on ``locations`` (default: every feature); its reports go
        to ``<tree>/../<label>/``. A run past the timeout is stopped (SIGTERM, which the
        hooks turn into a clean stop, then SIGKILL) and reported as timed out."""
        out = tree.parent / label
        out.mkdir()
        defines = [arg for d in ("backend=embedded", *self.defines) for arg in ("-D", d)]
        command = [
            str(self.behave), *defines, "--junit", "--junit-directory", str(out / "junit"),
            "-f", "progress", "-o", str(out / "progress.txt"),
            "-f", "rerun", "-o", str(out / "rerun.txt"),
            *locations,
        ]  # fmt: skip
        started = time.monotonic()
        with (out / "behave.log").open("w") as log:
            process = subprocess.Popen(
                command, cwd=tree, env=self.env(tree), stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
            timed_out = False
            try:
                process.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                _stop(process)
        seconds = time.monotonic() - started
        rerun = out / "rerun.txt"
        return RunResult(
            process.returncode,
            red_scenarios(out / "junit") if (out / "junit").is_dir() else [],
            rerun_locations(rerun.read_text()) if rerun.exists() else [],
            seconds,
            timed_out,
        )

    def judge(self, mutant: Mutant, workdir: Path) -> Outcome:
        """Copy, patch, run, and confirm a red run by running its red scenarios again."""
        started = time.monotonic()
        home = Path(tempfile.mkdtemp(prefix=f"{mutant.name}-", dir=workdir))
        outcome = Outcome(mutant.name, mutant.kind, mutant.why, "stale", 0.0, mutant.equivalent)
        try:
            tree = self.copy_tree(home)
            complaint = self.apply(mutant.path, tree)
            if complaint is not None:
                outcome.error = f"the patch does not apply: {complaint}"
                return outcome
            self.check_copy_wins(tree)
            first = self.behave_run(tree, "run")
            confirm = None
            if not first.green and not first.timed_out:
                # The red scenarios alone; no location (a run that failed before any
                # scenario) means the whole specification again.
                confirm = self.behave_run(tree, "confirm", first.locations)
            outcome.verdict = verdict(first, confirm, mutant.equivalent is not None)
            outcome.red = first.describe()
            outcome.locations = first.locations
            outcome.confirmed_red = confirm.describe() if confirm else []
            if outcome.verdict == "killed" and mutant.equivalent:
                outcome.flag = "marked equivalent, but the specification kills it"
        finally:
            outcome.seconds = round(time.monotonic() - started, 1)
            if not self.keep:
                shutil.rmtree(home, ignore_errors=True)
        return outcome


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a run that overran: SIGTERM to its process group, SIGKILL after 30 s."""
    for sig, grace in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


# -- the command ---------------------------------------------------------------------------


def slowest_first(mutants: Sequence[Mutant], report: Path) -> list[Mutant]:
    """The mutants, those that took longest in the last report first (unknown ones before
    all), so that parallel jobs do not end with one long mutant running alone."""
    try:
        last = {m["name"]: float(m["seconds"]) for m in json.loads(report.read_text())["mutants"]}
    except (OSError, ValueError, KeyError, TypeError):
        last = {}
    return sorted(mutants, key=lambda m: -last.get(m.name, float("inf")))


def line(outcome: Outcome) -> str:
    """One line per mutant: name, verdict, the first red scenarios, seconds."""
    shown = outcome.confirmed_red or outcome.red
    detail = "; ".join(shown[:2]) + (f" (+{len(shown) - 2} more)" if len(shown) > 2 else "")
    if outcome.verdict == "stale":
        detail = outcome.error or ""
    elif outcome.verdict == "flaky":
        detail = "red, then green when re-run: " + detail
    if outcome.flag:
        detail = f"[{outcome.flag}] {detail}"
    return f"{outcome.name:<44} {outcome.verdict:<10} {outcome.seconds:6.1f} s  {detail}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these mutants")
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at a time (default 1)")
    parser.add_argument("--list", action="store_true", help="print the catalogue and stop")
    parser.add_argument("-D", "--define", action="append", default=[], metavar="NAME=VALUE",
                        help="more behave userdata, e.g. timeout_scale=2")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds one behave run may take (default 600)")  # fmt: skip
    parser.add_argument("--from-head", action="store_true",
                        help="copy the committed tree (HEAD), not the working tree")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the temporary copies")
    parser.add_argument("--report", type=Path, default=REPORT, help=f"default {REPORT}")
    parser.add_argument("--behave", type=Path, default=Path(sys.executable).with_name("behave"))
    args = parser.parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # one line per mutant, as it is judged

    try:
        mutants = catalogue()
        if args.only:
            mutants = select(mutants, args.only)
    except CatalogueError as error:
        print(f"mutation_score: {error}", file=sys.stderr)
        return 2
    if args.list:
        for m in mutants:
            print(f"{m.name:<44} {m.kind:<9} {'(equivalent) ' if m.equivalent else ''}{m.why}")
        return 0

    # The commit the tree is at (or is copied from) when the snapshot is taken: others may
    # commit while the mutants run.
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    commit = head if args.from_head else None
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", *COPIED], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    source = "HEAD" if commit else "working tree" + (" (with uncommitted changes)" if dirty else "")
    runner = Runner(args.behave, tuple(args.define), args.timeout, commit, args.keep)
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    wall = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="failspec-mutants-"))
    print(f"mutation_score: {len(mutants)} mutant(s), {args.jobs} at a time, copies in {workdir}")
    try:
        runner = runner.snapshot(Path(tempfile.mkdtemp(prefix="snapshot-", dir=workdir)))
        baseline_home = Path(tempfile.mkdtemp(prefix="unmutated-", dir=workdir))
        tree = runner.copy_tree(baseline_home)
        runner.check_copy_wins(tree)
        baseline = runner.behave_run(tree, "run")
        print(f"{'(unmutated)':<44} {'green' if baseline.green else 'RED':<10} "
              f"{baseline.seconds:6.1f} s  {'; '.join(baseline.describe()[:3])}")  # fmt: skip
        if not baseline.green:
            kept = Path(tempfile.mkdtemp(prefix="failspec-unmutated-"))
            shutil.copytree(baseline_home / "run", kept / "run")
            print("mutation_score: the unmutated specification is not green; nothing to "
                  f"measure (its reports: {kept / 'run'})", file=sys.stderr)  # fmt: skip
            return 2
        if not args.keep:
            shutil.rmtree(baseline_home, ignore_errors=True)

        printing = threading.Lock()

        def judge(mutant: Mutant) -> Outcome:
            try:
                outcome = runner.judge(mutant, workdir)
            except Exception as error:  # a broken copy or run is reported, not fatal
                failed = f"the runner failed: {error}"
                outcome = Outcome(mutant.name, mutant.kind, mutant.why, "stale", 0.0,
                                  mutant.equivalent, error=failed)  # fmt: skip
            with printing:
                print(line(outcome), flush=True)
                if outcome.verdict == "stale":
                    print(f"mutation_score: STALE {mutant.name}: {outcome.error}", file=sys.stderr)
            return outcome

        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            outcomes = list(pool.map(judge, slowest_first(mutants, args.report)))
        outcomes.sort(key=lambda o: o.name)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    wall_seconds = round(time.monotonic() - wall, 1)
    totals = summary(outcomes)
    score = totals["score"]
    print(
        f"killed {totals['killed']}, survived {totals['survived']}, equivalent "
        f"{totals['equivalent']}, flaky {totals['flaky']}, stale {totals['stale']}; score "
        f"{'n/a' if score is None else f'{score:.1%}'} (killed / non-equivalent); "
        f"wall time {wall_seconds:.0f} s ({args.jobs} job(s); "
        f"unmutated run {baseline.seconds:.0f} s)"
    )
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(
        json.dumps(
            {
                "started_at": started_at,
                "commit": head,
                "source": source,
                "jobs": args.jobs,
                "defines": args.define,
                "wall_seconds": wall_seconds,
                "unmutated_seconds": round(baseline.seconds, 1),
                "totals": totals,
                "mutants": [asdict(o) for o in outcomes],
            },
            indent=2,
        )
        + "\n"
    )
    print(f"mutation_score: wrote {args.report}")
    return 1 if totals["stale"] else 0


if __name__ == "__main__":
    sys.exit(main())
