"""harness.evidence.matrix's implementation x spec statement view, on Allure results written as
allure-pytest writes them (the labels fixtures/report.py and fixtures/spec.py give a CNI spec test)."""
import json

from harness.evidence import matrix

SPEC_022 = "SPEC-022 MUST"  # A plugin must exit with a return code of 0 on success, and non-zero on failure.
SPEC_123 = "SPEC-123 SHOULD"


def result(path, name, build, status, statements, message="", deviation=False):
    labels = [{"name": "implementation", "value": f"cni:bridge ({build})"}]
    labels += [{"name": "spec_level", "value": s} for s in statements]
    if deviation:
        labels.append({"name": "known deviation", "value": build})
    path.joinpath(f"{name}-{build}-result.json").write_text(json.dumps(
        {"name": name, "fullName": name, "status": status, "labels": labels,
         "statusDetails": {"message": message}}))


def test_each_statement_gets_the_worst_outcome_of_the_tests_checking_it_in_each_build(tmp_path):
    result(tmp_path, "a", "cni-plugins@1.9.1", "passed", [SPEC_022, SPEC_123])
    result(tmp_path, "b", "cni-plugins@1.9.1", "failed", [SPEC_022])
    result(tmp_path, "a", "cni-plugins@0.9.0", "passed", [SPEC_022, SPEC_123])
    result(tmp_path, "c", "cni-plugins@0.9.0", "skipped", [SPEC_123])  # checked nothing
    table = matrix.clause_matrix(str(tmp_path))
    assert table == {SPEC_022: {"cni-plugins@0.9.0": "passed", "cni-plugins@1.9.1": "failed"},
                     SPEC_123: {"cni-plugins@0.9.0": "passed", "cni-plugins@1.9.1": "passed"}}
    text = matrix.clause_matrix_text(table)
    assert "2 statements, 1 passed wherever checked" in text and "SPEC-022 MUST" in text
    assert "SPEC-123" not in text.split("\n", 2)[2]  # passed everywhere: counted, not listed


def test_a_deviation_is_the_statements_its_text_names_and_the_others_held(tmp_path):
    message = ("XFAIL reason: known deviation of bridge (cni-plugins@1.9.1): its error objects have no cniVersion; "
               "spec-v1.0.0 SHOULD: \"Plugins should output a JSON object with the following keys if they "
               "encounter an error\"")  # the clause quoted, its id not named
    result(tmp_path, "d", "cni-plugins@1.9.1", "unknown", [SPEC_022, SPEC_123], message, deviation=True)
    table = matrix.clause_matrix(str(tmp_path), {"SPEC-123": "Plugins should output a JSON object with the "
                                                 "following keys if they encounter an error:"})
    assert table[SPEC_123] == {"cni-plugins@1.9.1": "deviation"}
    assert table[SPEC_022] == {"cni-plugins@1.9.1": "passed"}  # the twin: named by nothing, it held
