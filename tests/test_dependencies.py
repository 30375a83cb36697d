"""Every third-party package the project's code imports is declared, pinned, in
requirements.txt or requirements-dev.txt: an import that works only because another
package happens to pull its distribution in breaks when that package changes its own."""

import ast
import re
import sys
from importlib.metadata import distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Where the project's Python code lives (tests/fixtures included: behave loads it).
CODE = ("src", "features", "tests", "bench", "scripts", "tools", "examples")
#: Top-level names that are the project's own: the package, the test suite, the example
#: data layers and the scripts (the tests import both).
OWN = {"failspec", "tests", "examples", "scripts"}


def _normal(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported() -> dict[str, set[str]]:
    """Top-level module names imported by absolute imports -> files importing them."""
    found: dict[str, set[str]] = {}
    for directory in CODE:
        for path in sorted((ROOT / directory).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


def _providers() -> dict[str, set[str]]:
    """Top-level module name -> the installed distributions that provide it, from their
    top_level.txt and their RECORD (as Python 3.11's packages_distributions(); 3.10's
    reads only top_level.txt, which PyHamcrest's wheel lacks)."""
    providers: dict[str, set[str]] = {}
    for distribution in distributions():
        names = set((distribution.read_text("top_level.txt") or "").split())
        for file in distribution.files or ():
            top = file.parts[0]
            if len(file.parts) > 1 and top != ".." and not top.endswith(".dist-info"):
                names.add(top)
            elif len(file.parts) == 1 and file.suffix == ".py":
                names.add(file.stem)
        for name in names:
            providers.setdefault(name, set()).add(distribution.metadata["Name"])
    return providers


def _declared() -> dict[str, str]:
    """Distribution name (normalised) -> its line, from both requirements files."""
    declared = {}
    for file in ("requirements.txt", "requirements-dev.txt"):
        for line in (ROOT / file).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith("-"):
                declared[_normal(re.split(r"[=<>!~;\[ ]", line, maxsplit=1)[0])] = line
    return declared


def test_every_imported_third_party_package_is_declared_and_pinned():
    providers = _providers()
    declared = _declared()
    undeclared = []
    for module, files in sorted(_imported().items()):
        if module in OWN or module in sys.stdlib_module_names:
            continue
        names = sorted(_normal(d) for d in providers.get(module, {module}))
        line = next((declared[n] for n in names if n in declared), None)
        if line is None or "==" not in line:
            undeclared.append(f"{module} ({', '.join(names)}) in {', '.join(sorted(files))}")
    assert not undeclared, "imported but not pinned in requirements*.txt: " + "; ".join(undeclared)


def test_the_check_sees_the_imports_it_must():
    imported = _imported()
    # docker and parse are imported only by a few modules, lazily or in steps.
    assert {"docker", "parse", "sqlalchemy", "behave"} <= set(imported)
    assert "src/failspec/harness/servers/container.py" in imported["docker"]
