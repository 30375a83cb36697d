"""The harness's rooms import one way, top to bottom (README, "Layout"): hooks →
concurrency | guards | faults → scenario → servers → postgres → the kernel. A room
imports only rooms below it, never one beside it or above; the kernel modules import no
room. Imports inside functions and under ``TYPE_CHECKING`` count too: a cycle put off
until run time is still a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

HARNESS = Path(__file__).resolve().parent.parent / "src" / "failspec" / "harness"

#: Each room's level: a room may import a room of a lower level only.
LEVELS = {
    "concurrency": 3,
    "guards": 3,
    "faults": 3,
    "scenario": 2,
    "servers": 1,
    "postgres": 0,
}
#: The small kernel every room uses: it imports no room.
KERNEL = ("activity", "errors", "outcomes", "processes", "waiting")


def harness_imports(path: Path) -> set[str]:
    """The first name under ``failspec.harness`` of every module ``path`` imports
    (``failspec.harness.faults.packet_filter`` → ``faults``; ``from failspec.harness
    import postgres`` → ``postgres``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[:2] == ["failspec", "harness"] and len(parts) > 2:
                found.add(parts[2])
    return found


def room_modules(room: str) -> list[Path]:
    return sorted((HARNESS / room).rglob("*.py"))


@pytest.mark.parametrize("room", sorted(LEVELS))
def test_a_room_imports_only_the_rooms_below_it(room):
    wrong = {
        f"{path.relative_to(HARNESS)} imports {other}/"
        for path in room_modules(room)
        for other in harness_imports(path)
        if other in LEVELS and other != room and LEVELS[other] >= LEVELS[room]
    }
    assert not wrong, sorted(wrong)


@pytest.mark.parametrize("module", KERNEL)
def test_the_kernel_imports_no_room(module):
    rooms = harness_imports(HARNESS / f"{module}.py") & set(LEVELS)
    assert not rooms, f"{module}.py imports {sorted(rooms)}"


def test_every_room_of_the_harness_has_a_level():
    rooms = {p.name for p in HARNESS.iterdir() if (p / "__init__.py").is_file()}
    assert rooms == set(LEVELS)


def test_an_import_of_a_room_above_is_found(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "from failspec.harness import postgres, waiting\n"
        "def f():\n"
        "    from failspec.harness.scenario.workspace import dead_runs_notice\n"
    )
    assert harness_imports(module) == {"postgres", "waiting", "scenario"}
