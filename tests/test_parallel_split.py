"""The split of scenarios over workers and shards (failspec.parallel.split): every
scenario exactly once, the same split every time, balanced by the measured durations,
the replication scenarios kept together while they fit in one part's share."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from failspec.parallel import split
from failspec.parallel.selection import options_without_paths
from failspec.parallel.split import Item

ITEMS = [Item(f"features/f{n % 7}.feature:{10 + n}") for n in range(60)] + [
    Item(f"features/replication.failover.feature:{20 + n}", "replication") for n in range(12)
]
DURATIONS = {item.location: 0.1 + ((index * 37) % 11) * 0.3 for index, item in enumerate(ITEMS)}


@pytest.mark.parametrize("parts", [1, 2, 3, 4, 7])
def test_every_scenario_is_in_exactly_one_part(parts):
    chosen = split.split(ITEMS, DURATIONS, parts)
    locations = [loc for part in chosen for loc in part.locations]
    assert sorted(locations) == sorted(item.location for item in ITEMS)
    assert len(locations) == len(set(locations))


@pytest.mark.parametrize("of", [2, 3, 5])
def test_every_scenario_is_in_exactly_one_shard_and_every_machine_agrees(of):
    shards = [split.shard(ITEMS, DURATIONS, k, of).locations for k in range(1, of + 1)]
    again = [
        split.shard(list(ITEMS), dict(reversed(DURATIONS.items())), k, of).locations
        for k in range(1, of + 1)
    ]
    assert shards == again
    every = [loc for shard in shards for loc in shard]
    assert sorted(every) == sorted(i.location for i in ITEMS) and len(every) == len(set(every))


def test_each_part_keeps_the_runs_order():
    order = {item.location: index for index, item in enumerate(ITEMS)}
    for part in split.split(ITEMS, DURATIONS, 3):
        assert part.locations == sorted(part.locations, key=order.__getitem__)


def test_the_parts_are_balanced_by_the_measured_durations():
    items = [Item(f"features/a.feature:{n}") for n in range(1, 11)]
    measured = {items[0].location: 10.0, **{i.location: 1.0 for i in items[1:]}}
    one, two = split.split(items, measured, 2)
    assert sorted([one.expected_s, two.expected_s]) == [9.0, 10.0]
    assert items[0].location in one.locations and len(one.locations) == 1


def test_without_durations_the_parts_share_the_scenarios_by_count():
    loads = [len(p.locations) for p in split.split(ITEMS[:60], {}, 4)]
    assert max(loads) - min(loads) <= 1


def test_the_replication_scenarios_stay_together_while_they_fit_in_a_share():
    for parts in (2, 3):
        holding = [
            p
            for p in split.split(ITEMS, DURATIONS, parts)
            if any("replication" in loc for loc in p.locations)
        ]
        assert len(holding) == 1


def test_replication_scenarios_longer_than_a_share_are_cut_into_consecutive_pieces():
    items = [Item(f"features/r.feature:{n}", "replication") for n in range(1, 9)]
    items += [Item(f"features/a.feature:{n}") for n in range(1, 3)]
    measured = {i.location: 1.0 for i in items}
    parts = split.split(items, measured, 4)
    holding = [[loc for loc in p.locations if "/r." in loc] for p in parts]
    pieces = [piece for piece in holding if piece]
    assert 2 <= len(pieces) <= 4
    for piece in pieces:
        lines = [int(loc.rsplit(":", 1)[1]) for loc in piece]
        assert lines == list(range(lines[0], lines[0] + len(lines)))


def test_a_scenario_no_run_measured_counts_as_the_median(tmp_path: Path):
    metrics = tmp_path / "metrics.json"
    metrics.write_text(
        json.dumps(
            {
                "scenarios": [
                    {
                        "location": "features/a.feature:1",
                        "duration_s": 1.0,
                        "overhead_ms": 0,
                        "status": "passed",
                    },
                    {
                        "location": "features/a.feature:2",
                        "duration_s": 3.0,
                        "overhead_ms": 0,
                        "status": "passed",
                    },
                ]
            }
        )
    )
    measured = split.durations(metrics)
    items = [
        Item("features/a.feature:1"),
        Item("features/a.feature:2"),
        Item("features/b.feature:5"),
    ]
    assert split.expected(items, measured) == [1.0, 3.0, 2.0]
    assert split.durations(tmp_path / "missing.json") == {}


def test_a_shard_outside_one_to_n_is_refused():
    with pytest.raises(ValueError, match="between 1 and N"):
        split.shard(ITEMS, {}, 3, 2)


def test_a_workers_command_line_loses_its_paths_and_junit_directory_and_keeps_the_rest():
    args = [
        "-D",
        "backend=embedded",
        "features/a.feature",
        "--tags",
        "not @slow",
        "--junit-directory",
        "out/junit",
        "features/b.feature:12",
        "-Dseed=4",
        "-k",
    ]
    assert options_without_paths(args) == [
        "-D",
        "backend=embedded",
        "--tags",
        "not @slow",
        "-Dseed=4",
        "-k",
    ]
