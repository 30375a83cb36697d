"""Run one parallel run (or one shard): start the workers, relay their output, pass
INT and TERM on to them, and merge their reports into one set.

``python -m failspec.parallel [--jobs N|auto] [--shard K/N] [--into DIR]
[--durations FILE] -- [behave arguments]``; ``./run-spec`` calls it when ``--jobs`` (or
``FAILSPEC_JOBS``) asks for more than one worker, or ``--shard`` is given, and then
builds the HTML report and the closing line from DIR, as after a serial run.

Each worker ``wK`` writes its reports under ``DIR/workers/wK/`` (its JUnit, behave.json,
run.json, console.log) and is given its scenarios as behave's locations (``FILE:LINE``; also kept in
``DIR/workers/wK/scenarios.txt``): behave's ``@FILE`` would look for the steps beside
that file. Its output reaches the console
line by line, each line whole and prefixed ``[wK]``, so workers never interleave within
a line.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from failspec.harness.errors import SetupError
from failspec.harness.servers.settings import Settings
from failspec.parallel import selection as selecting
from failspec.parallel import split
from failspec.report import partitions, record
from failspec.report.model import ReportError

#: The environment twin of ``--jobs``.
JOBS_VARIABLE = "FAILSPEC_JOBS"
#: Where each worker's reports go, under the run's reports directory.
WORKERS_DIR = "workers"
#: The last run's figures, which ./run-spec keeps before it removes the stale reports.
PREVIOUS_METRICS = "previous-metrics.json"
#: The signals passed on to every worker (each then stops as a serial run does).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


#: progress3's line for a scenario that did not run here: indented, its name, then the
#: two spaces after which the steps' marks would come, and none.
NOT_HERE = re.compile(r" {4}\S.*\S {2}")


class UsageError(Exception):
    """A bad --jobs, --shard or FAILSPEC_JOBS: one line says which and why."""


def jobs_from(value: str | None) -> int:
    """The number of workers ``value`` asks for: a positive integer, or ``auto`` (the
    cores this process may run on). None or empty: 1. Raises UsageError otherwise."""
    if value is None or value.strip() == "":
        return 1
    if value.strip() == "auto":
        return max(1, len(os.sched_getaffinity(0)))
    if not re.fullmatch(r"[0-9]+", value.strip()) or int(value) < 1:
        raise UsageError(
            f"--jobs (or {JOBS_VARIABLE}) must be a positive integer or auto, not {value!r}"
        )
    return int(value)


def shard_from(value: str | None) -> tuple[int, int] | None:
    """``K/N`` as (K, N), with 1 ≤ K ≤ N; None for none. Raises UsageError otherwise."""
    if value is None or value == "":
        return None
    match = re.fullmatch(r"([0-9]+)/([0-9]+)", value.strip())
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise UsageError(f"--shard must be K/N with 1 <= K <= N, e.g. 2/4, not {value!r}")
    return int(match.group(1)), int(match.group(2))


@dataclass
class Worker:
    """One behave process of the run: its number (1-based), its scenarios, its reports."""

    number: int
    locations: list[str]
    directory: Path
    process: subprocess.Popen[str] | None = None
    relay: threading.Thread | None = None
    exit_code: int | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def name(self) -> str:
        return f"w{self.number}"


@dataclass
class Plan:
    """What a parallel run (or shard) will do: the workers' shares, the run's features,
    the shard it is (None: the whole run), and how the split was balanced."""

    parts: list[split.Part]
    features: list[str]
    options: list[str]
    shard: tuple[int, int] | None
    balanced_by: str
    whole_files: list[str]
    #: Every scenario the command line selects, in every shard.
    selected: set[str] = field(default_factory=set)


def plan(
    args: Sequence[str],
    jobs: int,
    shard: tuple[int, int] | None,
    durations: Path | None,
    previous: Path | None,
) -> Plan:
    """The plan of a run of behave's ``args`` on ``jobs`` workers (of shard ``shard``).

    A shard's share is computed from ``durations`` alone (None: by count), so every
    machine computes the same shares; the workers of one machine are balanced by
    ``previous`` (the last run's metrics.json) where it exists. Feature files whose
    scenarios the tag expression leaves out all go whole to the first worker (of the first
    shard), so the reports list them, skipped, as a serial run's do."""
    chosen = selecting.select(args)
    if jobs > 1:
        _check_sharable(chosen.userdata)
    items = chosen.items
    selected = {item.location for item in items}
    with_items = {item.location.rsplit(":", 1)[0] for item in items}
    whole = [file for file in chosen.features if file not in with_items]
    if shard is not None:
        by_shard = split.durations(durations) if durations is not None else {}
        share = set(split.shard(items, by_shard, *shard).locations)
        items = [item for item in items if item.location in share]
        if shard[0] != 1:
            whole = []
    measured = remembered(previous) if previous is not None else {}
    parts = [part for part in split.split(items, measured, jobs) if part.locations]
    if not parts:
        parts = [split.Part([], 0.0)]
    known = sum(1 for item in items if item.location in measured)
    balanced_by = (
        f"the last measured durations ({known} of {len(items)} known)" if known else "count"
    )
    return Plan(parts, chosen.features, chosen.options, shard, balanced_by, whole, selected)


#: Every scenario's last measured duration, kept across runs beside the reports: a run of
#: one feature must not make the next whole run forget the others' durations.
DURATIONS = "durations.json"


def remembered(previous: Path) -> dict[str, float]:
    """The durations kept in ``durations.json`` beside ``previous`` (the last run's
    metrics.json), updated with ``previous``'s own and written back."""
    kept = previous.parent / DURATIONS
    try:
        known = {str(k): float(v) for k, v in json.loads(kept.read_text()).items()}
    except (OSError, ValueError, TypeError, AttributeError):
        known = {}
    known.update(split.durations(previous))
    if known:
        with contextlib.suppress(OSError):
            kept.write_text(json.dumps(known, indent=1, sort_keys=True) + "\n")
    return known


def run(
    args: Sequence[str],
    *,
    jobs: int,
    shard: tuple[int, int] | None,
    into: Path,
    durations: Path | None = None,
    previous: Path | None = None,
    out: IO[str] = sys.stdout,
) -> int:
    """Run ``args`` (behave's arguments) as :func:`plan` says, merge the workers' reports
    into ``into`` and return the run's exit code: 128 + the signal for a run a signal
    stopped (130, 143), 2 when a worker could not start, 1 when a scenario failed or a
    report could not be merged, else 0."""
    began = time.monotonic()
    the_plan = plan(args, jobs, shard, durations, previous)
    env = dict(os.environ)
    if not _gives_seed(args) and not env.get("FAILSPEC_SEED"):
        env["FAILSPEC_SEED"] = str(secrets.randbelow(2**31))  # one seed for every worker
    workers_dir = into / WORKERS_DIR
    # Nothing of an earlier run there may be merged: its workers' files, its merged JUnit.
    shutil.rmtree(workers_dir, ignore_errors=True)
    for stale in (into / "junit").glob("TESTS-*.xml"):
        stale.unlink()
    workers = []
    for number, part in enumerate(the_plan.parts, start=1):
        directory = workers_dir / f"w{number}"
        directory.mkdir(parents=True, exist_ok=True)
        locations = list(part.locations)
        if number == 1:
            locations += the_plan.whole_files
        workers.append(Worker(number, locations, directory))
    what = f"shard {shard[0]}/{shard[1]}: " if shard else ""
    total = sum(len(p.locations) for p in the_plan.parts)
    print(
        f"failspec: {what}{total} scenarios on {len(workers)} worker(s), balanced by "
        f"{the_plan.balanced_by}: "
        + ", ".join(
            f"{w.name} {len(p.locations)} (~{p.expected_s:.0f} s)"
            for w, p in zip(workers, the_plan.parts, strict=True)
        ),
        file=out,
        flush=True,
    )
    lock = threading.Lock()
    received: list[int] = []

    def pass_on(signum: int, frame: object) -> None:
        received.append(signum)
        for worker in workers:
            if worker.process is not None and worker.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(signum)

    previous_handlers = {s: signal.signal(s, pass_on) for s in STOP_SIGNALS}
    try:
        for worker in workers:
            _start(worker, the_plan, env, lock, out)
        if received:  # a signal while they started: the last ones may have missed it
            pass_on(received[0], None)
        partitions.prepare()  # while the workers run: the merge is then quick
        for worker in workers:
            if worker.process is not None:
                worker.exit_code = _wait(worker.process)
                if worker.relay is not None:
                    worker.relay.join()
    finally:
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)
    code = _merge(workers, the_plan, into, time.monotonic() - began, out)
    return _exit_code(workers, received, code)


def _check_sharable(userdata: dict[str, str]) -> None:
    """Raise UsageError for settings that several workers on one machine cannot share: a
    fixed port (each worker starts a server of its own, so the second would find the port
    taken) and ``backend=url`` (the workers would share the one server, where a scenario
    that takes every connection slot refuses the other workers' connections). A setting
    the settings refuse anyway is left for the workers to report."""
    try:
        settings = Settings.from_sources(userdata, os.environ)
    except SetupError:
        return
    if settings.pg_port is not None:
        raise UsageError(
            "pg_port names one port, and each parallel worker starts a server of its own: "
            "leave pg_port unset for --jobs above 1"
        )
    if settings.backend == "url":
        raise UsageError(
            "backend=url: parallel workers would share the one server, where the scenarios "
            "that take every connection slot refuse the other workers' connections; run it "
            "with --jobs 1 (or shards, each on a server of its own)"
        )


def _gives_seed(args: Sequence[str]) -> bool:
    return any(re.search(r"(^|-D|=)seed=", arg) for arg in args) or any(
        a == "-D" and b.startswith("seed=") for a, b in itertools.pairwise(args)
    )


def _start(
    worker: Worker, the_plan: Plan, env: dict[str, str], lock: threading.Lock, out: IO[str]
) -> None:
    """Start ``worker``'s behave, in a process group of its own (a terminal's Ctrl-C
    reaches it once, from here), its output relayed line by line."""
    scenarios = worker.directory / "scenarios.txt"
    scenarios.write_text("".join(f"{location}\n" for location in worker.locations))
    console = [] if any(_is_format(a) for a in the_plan.options) else ["-f", "progress3"]
    command = [
        sys.executable, "-m", "behave",
        "-f", "json", "-o", str(worker.directory / "behave.json"),
        *console, "--show-skipped", "--no-summary", *the_plan.options,
        "--junit-directory", str(worker.directory / "junit"),
        *worker.locations,
    ]  # fmt: skip
    worker.process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**env, "FAILSPEC_WORKER": worker.name},
        start_new_session=True,
    )
    worker.relay = threading.Thread(
        target=_relay, args=(worker, lock, out), name=f"relay-{worker.name}", daemon=True
    )
    worker.relay.start()


def _is_format(arg: str) -> bool:
    return arg in ("-f", "--format") or (arg.startswith(("--format=", "-f")) and arg != "-f")


def _relay(worker: Worker, lock: threading.Lock, out: IO[str]) -> None:
    """Each whole line of the worker's output to the console, prefixed with its name, and
    to its console.log; not the lines progress3 writes for the scenarios given to other
    workers (a scenario's name and no step: :data:`NOT_HERE`)."""
    assert worker.process is not None and worker.process.stdout is not None
    with open(worker.directory / "console.log", "w", encoding="utf-8") as log:
        for line in worker.process.stdout:
            log.write(line)
            if NOT_HERE.fullmatch(line.rstrip("\n")):
                continue
            with lock:
                out.write(f"[{worker.name}] {line}" if line.strip() else line)
                out.flush()


def _wait(process: subprocess.Popen[str]) -> int:
    """The process's exit code, waiting again when a signal handler interrupted the wait."""
    while True:
        try:
            return process.wait()
        except InterruptedError:  # pragma: no cover - PEP 475 retries; kept for clarity
            continue


def _merge(workers: list[Worker], the_plan: Plan, into: Path, wall_s: float, out: IO[str]) -> int:
    """Merge the workers' records, JUnit and behave.json into ``into``; 0, or 1 with one
    line when they cannot be merged."""
    parts: list[tuple[str, dict[str, Any]]] = []
    for worker in workers:
        try:
            data = record.read(worker.directory)
        except ReportError as error:
            print(
                f"failspec: worker {worker.name} left no record (exit code {worker.exit_code}): "
                f"{error}; its output: {worker.directory / 'console.log'}",
                file=sys.stderr,
                flush=True,
            )
            return 1
        data["partition"] = {
            "kind": "worker",
            "index": worker.number,
            "of": len(workers),
            "locations": [loc for loc in worker.locations if ":" in loc],
            "features": the_plan.features,
        }
        record.write(worker.directory, data)
        parts.append((str(worker.directory / record.RUN_RECORD), data))
    keep = None
    try:
        merged = partitions.merge(parts, wall_s=wall_s)
        if the_plan.shard is not None:
            keep = _shard_keeps(the_plan, workers)
            merged = partitions.keep_only(merged, keep)
            merged["partition"] = {
                "kind": "shard",
                "index": the_plan.shard[0],
                "of": the_plan.shard[1],
                "locations": [loc for w in workers for loc in w.locations if ":" in loc],
                "features": the_plan.features,
                "workers": len(workers),
            }
        partitions.write(into, merged)
        located = [
            (w.directory / "junit", data) for w, (_, data) in zip(workers, parts, strict=True)
        ]
        partitions.merge_junit(located, merged, into / "junit", keep)
        partitions.merge_behave_json(
            [
                (w.directory / "behave.json", data)
                for w, (_, data) in zip(workers, parts, strict=True)
            ],
            into / "behave.json",
            keep,
        )
    except ReportError as error:
        print(f"failspec: cannot merge the workers' reports: {error}", file=sys.stderr, flush=True)
        return 1
    metrics = merged.get("metrics")
    if metrics:
        totals = metrics["totals"]
        print(
            f"metrics: merged: {metrics['scenarios']} scenarios, {totals['duration_s']:.1f} s in "
            f"scenarios on {len(workers)} worker(s), {metrics['duration_s']:.1f} s wall",
            file=out,
            flush=True,
        )
    return 0


def _shard_keeps(the_plan: Plan, workers: list[Worker]) -> Callable[[str], bool]:
    """Which scenarios a shard's reports hold: its own, and (the first shard) those the
    command line does not select, which a serial run's reports list as skipped."""
    assert the_plan.shard is not None
    mine = {location for worker in workers for location in worker.locations}
    first = the_plan.shard[0] == 1
    return lambda location: location in mine or (first and location not in the_plan.selected)


def _exit_code(workers: list[Worker], received: list[int], merge_code: int) -> int:
    codes = [w.exit_code for w in workers if w.exit_code is not None]
    if received:
        return 128 + received[0]
    stopped = [c for c in codes if c > 128 or c < 0]
    if stopped:
        return 128 + abs(stopped[0]) if stopped[0] < 0 else stopped[0]
    if 2 in codes:
        return 2
    if any(codes) or merge_code:
        return 1
    return 0
