"""Verdict power: every fault of the catalogue makes the suites fail, and the
unmodified datapath makes none fail. The kill table (fault -> the tests that caught
it) is written to reports/kill-table.txt and printed at the end of the run.

Besides the document suites, the CNI datapath suites run on a configuration of the corpus
(harness/cni/corpus/kubenet.conflist: a bridge with portmap and kube-proxy's mark chain) on the
installed plugins: there a fault breaks what the plugins built after each ADD, and wherever it
broke something in that configuration's labs (the ``netconform fault`` property of a test), a
test of that configuration must fail. (kind's ptp, kindnet.conflist, is caught the same way:
``--cni-conf`` it to see; left out here for time.)
"""
import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree

import pytest

from harness.cni.conf import corpus_dir
from pytest_netconform.faults import CATALOGUE, FAULT_PROPERTY

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KILL_TABLE = os.path.join(PROJECT, "reports", "kill-table.txt")
CORPUS = ("kubenet",)  # a bridge configuration of the corpus (with portmap, kube-proxy's mark chain): the CNI faults' ground
CNI_SUITES = ("suites/cni/test_spec.py", "suites/cni/test_spec_args.py", "suites/cni/test_spec_ipam.py",
              "suites/cni/test_spec_status.py", "suites/cni/test_spec_check.py", "suites/cni/test_spec_dhcp.py",
              "suites/cni/test_spec_errors.py", "suites/cni/test_spec_chain.py",
              "suites/cni/test_spec_delegation.py")  # left out: the spec suites check the protocol, not the datapath
# Faults whose change to a corpus configuration's labs is no change of its datapath (an equivalent
# mutant there), with why; anywhere else they must still be caught.
EQUIVALENT_IN_CORPUS = {
    ("arp-ignore-strict", "kubenet"): "kubenet's gateway address is on cbr0, the interface its pods' ARP comes in by, "
                                      "and the host's uplink address on eth0, where the internet's comes in: "
                                      "arp_ignore=1 still answers both",
}
SUITE_TIMEOUT = 900  # seconds: a whole suites/ run; pyproject's 120 s per test is for one test


def run_suites(tmp_path, *extra) -> tuple[int, dict[str, str], dict[str, list[str]]]:
    """Run the document suites, and the CNI datapath suites on the CORPUS configurations; return
    pytest's exit code, test id -> outcome, and test id -> what a fault broke in its labs."""
    junit = tmp_path / "junit.xml"
    corpus = [arg for name in CORPUS for arg in ("--cni-conf", os.path.join(corpus_dir(), f"{name}.conflist"))]
    done = subprocess.run([sys.executable, "-m", "pytest", "suites/", "-q", "-p", "no:cacheprovider",
                           *[f"--ignore={suite}" for suite in CNI_SUITES], *corpus, "-n", "2",
                           f"--junitxml={junit}", f"--basetemp={tmp_path / 'run'}", *extra],
                          cwd=PROJECT, capture_output=True, text=True, timeout=SUITE_TIMEOUT)
    outcomes, broken = {}, {}
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        name = f"{case.get('classname').rsplit('.', 1)[-1]}::{case.get('name')}"
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = child.tag
        outcomes[name] = outcome
        broken[name] = [prop.get("value") for prop in case.iter("property") if prop.get("name") == FAULT_PROPERTY]
    return done.returncode, outcomes, broken


def of_configuration(name: str, outcomes: dict) -> dict:
    """The outcomes of the tests of one corpus configuration (its test ids name it: cni://kubenet)."""
    return {test: outcome for test, outcome in outcomes.items() if f"[cni://{name}]" in test or f"[cni://{name}-" in test}


@pytest.mark.timeout(SUITE_TIMEOUT)
def test_the_unmodified_datapath_fails_nothing(tmp_path):
    code, outcomes, _ = run_suites(tmp_path)
    bad = sorted(name for name, outcome in outcomes.items() if outcome in ("failure", "error"))
    assert code == 0 and not bad, f"false failures without any fault: {bad}"
    for name in CORPUS:  # the corpus configurations' tests ran here, so a fault's silence there means something
        assert "passed" in of_configuration(name, outcomes).values(), f"no test of corpus {name} passed: {outcomes}"


@pytest.mark.timeout(SUITE_TIMEOUT)
@pytest.mark.parametrize("fault", sorted(CATALOGUE))
def test_each_fault_is_caught_by_a_failing_test(fault, tmp_path):
    code, outcomes, broken = run_suites(tmp_path, "--fault", fault)
    caught = sorted(name for name, outcome in outcomes.items() if outcome == "failure")
    errors = sorted(name for name, outcome in outcomes.items() if outcome == "error")
    os.makedirs(os.path.dirname(KILL_TABLE), exist_ok=True)
    with open(KILL_TABLE, "a") as table:
        shown = [name.replace("::test_", "::") for name in caught[:3]]
        table.write(f"{fault:28} {len(caught):3} failed: {', '.join(shown)}{' ...' if len(caught) > 3 else ''}\n")
    assert caught, f"fault {fault} ({CATALOGUE[fault][0]}) was caught by no test" + (
        f"; errors: {errors[:5]}" if errors else "")
    for name in CORPUS:
        if (fault, name) in EQUIVALENT_IN_CORPUS:
            continue
        tests = of_configuration(name, outcomes)
        what = sorted({line for test in tests for line in broken[test]})
        assert not what or "failure" in tests.values(), \
            f"fault {fault} broke {what[:5]} in corpus {name}'s labs, yet none of its {len(tests)} tests failed"
