"""JUnit XML as CI reads it: no warning per item, and a file valid for the junit_family in force.

Under xunit2 (pytest's default) the items' properties sit in the <testsuite>'s <properties>, named
``<test name>.<property>``; under xunit1 each <testcase> keeps its own. The schema is our own minimal
statement of the xunit2 rules relied on (tests/support/junit_xunit2_minimal.xsd).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas  # noqa: F401 - loaded once here: pytester's in-process runs would each load their own
import pytest
import xmlschema

from support.arena_project import fixed_answers_config

XUNIT2 = xmlschema.XMLSchema(str(Path(__file__).parent / "support" / "junit_xunit2_minimal.xsd"))
PASSING_GATE, FAILING_GATE = "test_gate[beats-good--vs--bad]", "test_gate[beats-bad--vs--good]"


@pytest.fixture
def project(arena_project):
    """Two questions, two models answering from files, a gate that passes and one that fails."""
    config = fixed_answers_config(arena_project, 2, {"good": 20, "bad": 2})
    config["gates"] = [{"model": "good", "beats": "bad"}, {"model": "bad", "beats": "good"}]
    arena_project.write(config)
    return arena_project


def suite_properties(root: ET.Element) -> dict[str, str]:
    return {p.get("name"): p.get("value") for p in root.find("testsuite").findall("properties/property")}


def cases(root: ET.Element) -> dict[str, ET.Element]:
    return {case.get("name"): case for case in root.iter("testcase")}


def test_default_family_is_warning_free_valid_and_keeps_properties_and_the_gate_message(project):
    result = project.run("-W", "error", "--junitxml=junit.xml", "-v")
    result.assert_outcomes(passed=3, failed=1)  # no "warnings" noun: none was emitted (-W error would fail items)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.no_fnmatch_line("*record_property*")
    path = project.root / "junit.xml"
    XUNIT2.validate(str(path))
    root = ET.parse(path).getroot()
    properties = suite_properties(root)
    assert properties["test_battle[q001-good--vs--bad].verdict"] == "model_a"
    assert properties["test_battle[q002-good--vs--bad].cached"] == "False"
    assert float(properties[f"{PASSING_GATE}.gate_threshold"]) == 0
    assert "significantly below" in properties[f"{FAILING_GATE}.gate"]
    failure = cases(root)[FAILING_GATE].find("failure")
    assert "bad - good: BT rating difference" in failure.get("message")
    assert "significantly below -margin" in failure.get("message")
    assert all(case.find("properties") is None for case in root.iter("testcase"))


def test_xunit1_keeps_each_items_properties_in_its_testcase(project):
    result = project.run("-W", "error", "-o", "junit_family=xunit1", "--junitxml=junit.xml")
    result.assert_outcomes(passed=3, failed=1)
    root = ET.parse(project.root / "junit.xml").getroot()
    battle = cases(root)["test_battle[q001-good--vs--bad]"]
    assert {p.get("name"): p.get("value") for p in battle.iter("property")}["verdict"] == "model_a"
    assert "gate_ci" in {p.get("name") for p in cases(root)[FAILING_GATE].iter("property")}
    # (only the run's own figures, the judge's biases, are the suite's)
    assert {k for k in suite_properties(root) if not k.startswith("judge_")} == set()
    # The schema holds the xunit2 rule: per-testcase properties are what it rejects.
    with pytest.raises(xmlschema.XMLSchemaValidationError, match="properties"):
        XUNIT2.validate(str(project.root / "junit.xml"))


# -- the other reports CI pipelines publish ---------------------------------------------------------------

def test_pytest_html_report_carries_the_rating_table(project):
    project.run("--html=report.html", "--self-contained-html").assert_outcomes(passed=3, failed=1)
    page = (project.root / "report.html").read_text(encoding="utf-8")
    table = page[page.index('<table id="arena-ratings">'):]
    table = table[:table.index("</table>")]
    assert "<th>rank</th><th>model</th><th>BT rating</th><th>95% CI</th>" in table
    assert "<td>1</td><td>good</td>" in table and "<td>2</td><td>bad</td>" in table


def test_allure_shows_each_parameter_by_its_item_id(project):
    project.run("--alluredir=allure").assert_outcomes(passed=3, failed=1)
    results = [json.loads(path.read_text()) for path in (project.root / "allure").glob("*-result.json")]
    shown = {param["name"]: set() for result in results for param in result.get("parameters", [])}
    for result in results:
        for param in result.get("parameters", []):
            shown[param["name"]].add(param["value"])
    assert shown == {"arena_battle": {"q001-good--vs--bad", "q002-good--vs--bad"},
                     "arena_gate": {"beats-good--vs--bad", "beats-bad--vs--good"}}
