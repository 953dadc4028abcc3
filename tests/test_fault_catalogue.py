"""Verdict power: every fault of the catalogue makes the suites fail, and the
unmodified datapath makes none fail. The kill table (fault -> the tests that caught
it) is written to reports/kill-table.txt and printed at the end of the run.
"""
import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree

import pytest

from pytest_netconform.faults import CATALOGUE

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KILL_TABLE = os.path.join(PROJECT, "reports", "kill-table.txt")
SUITE_TIMEOUT = 900  # seconds: a whole suites/ run; pyproject's 120 s per test is for one test


def run_suites(tmp_path, *extra) -> tuple[int, dict[str, str]]:
    """Run the document suites; return pytest's exit code and test id -> outcome."""
    junit = tmp_path / "junit.xml"
    done = subprocess.run([sys.executable, "-m", "pytest", "suites/", "-q", "-p", "no:cacheprovider",
                           "--ignore=suites/cni", "-n", "2", f"--junitxml={junit}", f"--basetemp={tmp_path / 'run'}",
                           *extra], cwd=PROJECT, capture_output=True, text=True, timeout=SUITE_TIMEOUT)
    outcomes = {}
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        name = f"{case.get('classname').rsplit('.', 1)[-1]}::{case.get('name')}"
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = child.tag
        outcomes[name] = outcome
    return done.returncode, outcomes


@pytest.mark.timeout(SUITE_TIMEOUT)
def test_the_unmodified_datapath_fails_nothing(tmp_path):
    code, outcomes = run_suites(tmp_path)
    bad = sorted(name for name, outcome in outcomes.items() if outcome in ("failure", "error"))
    assert code == 0 and not bad, f"false failures without any fault: {bad}"


@pytest.mark.timeout(SUITE_TIMEOUT)
@pytest.mark.parametrize("fault", sorted(CATALOGUE))
def test_each_fault_is_caught_by_a_failing_test(fault, tmp_path):
    code, outcomes = run_suites(tmp_path, "--fault", fault)
    caught = sorted(name for name, outcome in outcomes.items() if outcome == "failure")
    broken = sorted(name for name, outcome in outcomes.items() if outcome == "error")
    os.makedirs(os.path.dirname(KILL_TABLE), exist_ok=True)
    with open(KILL_TABLE, "a") as table:
        shown = [name.replace("::test_", "::") for name in caught[:3]]
        table.write(f"{fault:28} {len(caught):3} failed: {', '.join(shown)}{' ...' if len(caught) > 3 else ''}\n")
    assert caught, f"fault {fault} ({CATALOGUE[fault][0]}) was caught by no test" + (
        f"; errors: {broken[:5]}" if broken else "")
