"""The CNI spec to the clause (issue 13, "Every check names its clause and level").

- harness/cni/spec/statements.yaml is what its generator reads from the mirror of containernetworking/cni
  (checked only where the mirror is; CI has none, so there it skips in one line).
- Every statement is covered by a test's spec marker, or says why no plugin binary can be held to it,
  or names the issue-13 item that will check it; one with none of these is UNCOVERED, and fails here.
- Outcomes, on a plugin of ours (tests/cni_plugins/gc-demo): a failed SHOULD is a deviation at SHOULD level
  (terminal, JUnit XML, Allure, the matrix) and the run passes; ``--strict`` fails it; a failed MUST fails.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from harness.cni import spec
from harness.cni.spec import coverage, extract
from harness.errors import NetconformError
from harness.evidence import matrix
from test_expectations import spec_suite  # the spec suite on gc-demo, its conflist and paths

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIRROR = os.environ.get("NETCONFORM_CNI_MIRROR", "/work/.mirror/containernetworking+cni/repo")


def committed() -> list[dict]:
    import yaml
    with open(extract.STATEMENTS, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def test_the_statements_file_is_what_the_mirror_says():
    if not os.path.isdir(MIRROR):
        pytest.skip(f"no mirror of containernetworking/cni at {MIRROR} (NETCONFORM_CNI_MIRROR): the committed file stands")
    fresh, data = extract.candidates(MIRROR), committed()
    assert extract.merge(fresh, data) == data, "statements.yaml differs from the mirror: " \
        "run python -m harness.cni.spec.extract MIRROR and judge the new statements"


def test_a_sentence_is_split_and_levelled_as_rfc_2119_says():
    markdown = ("## Section 2\n\n### Errors\n\nA plugin must exit non-zero (e.g. 1) on failure. It should print an "
                "error.\nThe runtime MUST NOT retry.\n\n- `ifname`: it may be long\n\nError Code|Error Description\n"
                "---|---\n `4`|Invalid variables. The error message must contain the names.\n\n```\nmust not "
                "count\n```\n")
    found = [(section, sentence, extract.level_of(sentence)) for section, sentence in extract.sentences(markdown)]
    assert found == [("Section 2 > Errors", "A plugin must exit non-zero (e.g. 1) on failure.", "MUST"),
                     ("Section 2 > Errors", "It should print an error.", "SHOULD"),
                     ("Section 2 > Errors", "The runtime MUST NOT retry.", "MUST NOT"),
                     ("Section 2 > Errors", "`ifname`: it may be long", "MAY"),
                     ("Section 2 > Errors", "The error message must contain the names.", "MUST")], found
    assert extract.level_of("no key word here") is None
    assert extract.level_of("a daemon required for connectivity") is None  # describes, does not require
    assert extract.level_of("should be provided, even if not strictly required.") == "SHOULD"
    assert extract.level_of("Required environment parameters:") == "MUST"


def test_every_statement_is_covered_untestable_or_pending():
    table = coverage.rows()
    uncovered = [statement.cite() for statement, kind, _ in table if kind == "uncovered"]
    assert not uncovered, "statements with no test, no reason and no pending item:\n" + "\n".join(uncovered)
    both = [s.id for s, kind, _ in table if kind == "covered" and (s.untestable or s.pending)]
    assert not both, f"covered by a test, yet judged untestable or pending (stale judgement): {both}"
    assert all((s.untestable or s.pending or "").strip() for s, kind, _ in table if kind != "covered")
    assert len(table) == len(committed()) and {s.level for s, _, _ in table} <= set(spec.LEVELS)


def test_a_statement_with_neither_a_test_nor_a_reason_is_uncovered(tmp_path):
    """The twin: suites whose only marker names SPEC-022 leave SPEC-021 (no judgement) UNCOVERED."""
    (tmp_path / "test_mine.py").write_text('import pytest\n\n@pytest.mark.spec("SPEC-022")\ndef test_x():\n    pass\n')
    table = {statement.id: (kind, what) for statement, kind, what in coverage.rows(str(tmp_path))}
    assert table["SPEC-022"] == ("covered", "test_mine.py::test_x") and table["SPEC-021"] == ("uncovered", "UNCOVERED")
    assert table["SPEC-001"][0] == "untestable" and "uncovered" in coverage.summary(coverage.rows(str(tmp_path)))


MINE = "import pytest\n\n@pytest.mark.spec({})\ndef test_x():\n    pass\n"


@pytest.mark.parametrize("source,says", [
    (MINE.format('"SPEC-999"'), "names 'SPEC-999', which harness/cni/spec/statements.yaml"),
    (MINE.format("IDS"), "takes statement ids as string literals"),
    ('import pytest\npytestmark = [pytest.mark.spec("SPEC-022")]\n', "a spec marker on a module or class is not read"),
], ids=["unknown", "not-literal", "module"])
def test_a_marker_the_table_cannot_read_is_one_line(tmp_path, source, says):
    (tmp_path / "test_mine.py").write_text(source)
    with pytest.raises(NetconformError, match=says) as raised:
        coverage.rows(str(tmp_path))
    assert "\n" not in str(raised.value)


def test_the_coverage_command_prints_every_statement_and_a_summary_per_level():
    done = subprocess.run([sys.executable, "-m", "harness", "spec", "coverage"], cwd=PROJECT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert sum(1 for line in lines if line.startswith(("SPEC-", "CONV-"))) == len(committed())
    assert "SPEC-036\t1.0.0,1.1.0\tMUST\tcni/test_spec.py::test_del_removes_what_add_made_and_a_del_of_what_is_not_there_succeeds" in done.stdout
    assert "\tnot testable on a plugin binary: runtime-side" in done.stdout
    # Only a statement the file calls pending is printed so (none is left once every testable one is checked;
    # a checked one is printed with its tests).
    printed = {line.split("\t")[0] for line in lines if "\tpending: " in line}
    assert printed <= {entry["id"] for entry in committed() if entry.get("pending")}
    assert lines[-6].startswith("all: ") and [line.split(":")[0] for line in lines[-5:]] == list(spec.LEVELS)


def test_an_unknown_id_in_a_marker_stops_the_run_in_one_line(tmp_path):
    (tmp_path / "test_mine.py").write_text('import pytest\n\n@pytest.mark.spec("SPEC-999")\ndef test_x():\n    pass\n')
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--netconform",
                           str(tmp_path / "test_mine.py")], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    errors = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("ERROR")]
    assert done.returncode == 4 and errors == ["ERROR: test_mine.py::test_x: pytest.mark.spec: unknown CNI spec "
                                               "statement 'SPEC-999' (harness/cni/spec/statements.yaml holds "
                                               "SPEC-001..CONV-021)"], done.stdout + done.stderr


def test_a_failed_should_is_a_deviation_in_the_terminal_junit_allure_and_the_matrix(tmp_path):
    """gc-demo's error objects lack cniVersion (SPEC-123, SHOULD): the run passes; its twin in the same run,
    VERSION, passes as passed."""
    results, junit = tmp_path / "allure", tmp_path / "junit.xml"
    done = spec_suite(tmp_path, "-k", "(error_objects or version_answers) and 1.1.0", f"--alluredir={results}",
                      f"--junitxml={junit}")
    assert done.returncode == 0, done.stdout[-3000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert "1 passed" in summary and "1 deviation at SHOULD level" in summary and "failed" not in summary, summary
    assert "DEVIATION suites/cni/test_spec.py::test_error_objects_carry_the_cni_version[cni://gc-demo-1.1.0]: deviation " \
           "at SHOULD level: SPEC-123 SHOULD (SPEC.md 1.0.0, 1.1.0, Section 5: Result Types > Error): Plugins should " \
           "output a JSON object with the following keys if they encounter an error: | gc-demo: SPEC-123, SPEC-174: error " \
           "cniVersion None, asked in 1.1.0" in done.stdout, done.stdout
    cases = {case.get("name").split("[")[0]: case for case in ET.parse(junit).iter("testcase")}
    properties = [(p.get("name"), p.get("value")) for p in cases["test_error_objects_carry_the_cni_version"].iter("property")]
    assert ("spec_level", "SPEC-123 SHOULD") in properties and ("spec_clause", spec.lookup(["SPEC-123"])[0].cite()) \
        in properties, properties
    assert not any("SPEC-174" in value for name, value in properties if name.startswith("spec_")), \
        "a 0.4.0 statement on a 1.1.0 test"
    written = {}
    for path in results.glob("*-result.json"):
        result = json.loads(path.read_text())
        written[result["fullName"].split("#")[-1]] = result
    deviation, passed = written["test_error_objects_carry_the_cni_version"], written["test_version_answers_the_supported_versions"]
    assert deviation["status"] == "unknown" and {"name": "deviation at SHOULD level", "value": "deviation at SHOULD level"} \
        in deviation["labels"] and {"name": "spec_level", "value": "SPEC-123 SHOULD"} in deviation["labels"], deviation
    assert passed["status"] == "passed" and {"name": "spec_level", "value": "SPEC-122 MUST"} in passed["labels"], passed
    categories = json.loads((results / "categories.json").read_text())
    assert any(c["name"] == "deviation at SHOULD level" and c["matchedStatuses"] == ["unknown"] for c in categories)
    by_area = matrix.matrix(str(results))
    assert by_area["CNI spec"]["deviation"] == 1 and by_area["CNI spec"]["passed"] == 1, by_area
    assert by_area["CNI spec"]["skipped"] == 0 and by_area["CNI spec"]["failed"] == 0, by_area


def test_strict_makes_a_failed_should_a_failure(tmp_path):
    done = spec_suite(tmp_path, "-k", "error_objects and 1.1.0", "--strict")
    assert done.returncode == 1 and "1 failed" in done.stdout and "deviation" not in done.stdout.splitlines()[-1], \
        done.stdout[-3000:]
    assert "SPEC-123, SPEC-174: error cniVersion None, asked in 1.1.0" in done.stdout, done.stdout[-3000:]


def test_a_failed_must_fails_without_strict(tmp_path):
    """gc-demo's ADD without CNI_CONTAINERID succeeds: exit 0 for a request it must refuse (SPEC-022)."""
    done = spec_suite(tmp_path, "-k", "faulty and no-containerid and 1.1.0", suite="suites/cni/test_spec_errors.py")
    assert done.returncode == 1 and "1 failed" in done.stdout, done.stdout[-3000:]
    assert "SPEC-022, SPEC-174: exit 0, not a failure" in done.stdout and "DEVIATION" not in done.stdout, \
        done.stdout[-3000:]
