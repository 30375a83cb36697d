"""JUnit XML beyond what behave writes: a run that could not start, and reading problems back.

behave writes no JUnit when before_all ends the run (hooks.abort_setup exits at once); CI
would then see no report, or a stale one. ``write_setup_error`` leaves one testcase in
<error> instead, so the run is red in JUnit as it is by its exit code.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

SETUP_REPORT = "TESTS-setup.xml"
SETUP_CLASSNAME = "setup"
SETUP_TESTCASE = "before_all"


def write_setup_error(directory: str | Path, message: str) -> Path:
    """Write ``<directory>/TESTS-setup.xml``: one testsuite, one testcase in <error>."""
    suite = ET.Element(
        "testsuite",
        name=SETUP_CLASSNAME,
        tests="1",
        errors="1",
        failures="0",
        skipped="0",
        time="0",
    )
    case = ET.SubElement(suite, "testcase", classname=SETUP_CLASSNAME, name=SETUP_TESTCASE)
    error = ET.SubElement(case, "error", type="SetupError", message=message)
    error.text = f"failspec: cannot run: {message}"
    path = Path(directory) / SETUP_REPORT
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
    return path


def read_setup_error(directory: Path) -> str | None:
    """The message of ``write_setup_error``'s report in ``directory``, if there is one."""
    path = directory / SETUP_REPORT
    if not path.exists():
        return None
    error = ET.parse(path).getroot().find("testcase/error")
    return error.get("message", "") if error is not None else None


def read_problems(directory: Path) -> dict[tuple[str, str], str]:
    """(classname, testcase name) -> "Type: message" of each failed or errored testcase."""
    problems = {}
    for report in sorted(directory.glob("*.xml")):
        for case in ET.parse(report).getroot().iter("testcase"):
            problem = case.find("error")
            if problem is None:
                problem = case.find("failure")
            if problem is not None:
                message = f"{problem.get('type', 'Error')}: {problem.get('message', '')}"
                problems[(case.get("classname", ""), case.get("name", ""))] = message
    return problems


def problem_of(problems: dict[tuple[str, str], str], feature: str, scenario: str) -> str | None:
    """The problem of a scenario of a feature: behave names the class '<file>.<feature>'."""
    for (classname, name), message in problems.items():
        if name == scenario and (classname == feature or classname.endswith(f".{feature}")):
            return message
    return None
