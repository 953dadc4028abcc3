"""Known deviations as data (harness/impl/expectations): the files load or say in one line what
is wrong; a listed deviation is reported as a known deviation (never skipped), and one that no
longer happens fails; ``--expectations FILE`` applies a user's own file to a user's plugin
(tests/cni_plugins/gc-demo, whose error objects lack cniVersion: its ADD without CNI_CONTAINERID
succeeds)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from harness.evidence import matrix
from harness.impl import catalogue, expectations

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENTRY = {"case": "error-cni-version", "plugin": "gc-demo", "versions": ["1.1.0"], "signature": "error cniVersion None",
         "does": "its ADD without CNI_CONTAINERID succeeds", "spec": "spec-v1.1.0 Error", "level": "SHOULD",
         "clause": "Plugins should output a JSON object with the following keys if they encounter an error"}


def write(tmp_path, text: str) -> str:
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    return str(path)


def test_every_catalogue_expectations_file_loads_and_names_a_catalogue_build():
    builds = catalogue.load()
    files = sorted(os.listdir(expectations.EXPECTATIONS_DIR))
    assert files and all(name.removesuffix(".yaml") in builds for name in files), files
    for name in files:
        assert expectations.for_build(name.removesuffix(".yaml")), name
    portmap = [d for d in expectations.for_build("cni-plugins@1.1.1") if d.case == "check-after-add"]
    assert portmap and portmap[0].upstream == "containernetworking/plugins#819" and portmap[0].level == "MUST"
    assert any(d.upstream == "containernetworking/plugins#1047" for d in expectations.for_build("cni-plugins@1.9.1"))
    assert expectations.for_build("netavark@1.4.0") == () and expectations.for_build(None) == ()


@pytest.mark.parametrize("text,says", [
    ("- just a list\n", "an expectations file is a mapping with one key, deviations: a list"),
    ("deviations: [{: :\n", "not YAML at line 1"),
    ("deviations:\n  - case: no-command\n", "deviation 1 (no-command): missing plugin, versions, signature"),
    (json.dumps({"deviations": [dict(ENTRY, colour="red")]}), "deviation 1 (error-cni-version): unknown colour"),
    (json.dumps({"deviations": [dict(ENTRY, versions="1.1.0")]}), "versions is a list of quoted cniVersions"),
    (json.dumps({"deviations": [dict(ENTRY, level="OUGHT")]}), "level is one of MUST, MUST NOT, SHOULD"),
    (json.dumps({"deviations": [dict(ENTRY, clause="")]}), "clause must be non-empty text"),
    (json.dumps({"deviations": [dict(ENTRY, families=[5])]}), "families is a list of IP versions, 4 and/or 6"),
    (json.dumps({"deviations": [dict(ENTRY, config=["ipMasq"])]}), "config is a mapping of the plugin's configuration"),
])
def test_a_malformed_file_is_one_line_naming_the_file_and_the_entry(tmp_path, text, says):
    path = write(tmp_path, text)
    with pytest.raises(expectations.ExpectationsError) as caught:
        expectations.load(path)
    assert says in str(caught.value) and str(caught.value).startswith(path) and "\n" not in str(caught.value)


def test_a_deviation_for_some_ip_versions_applies_only_to_configurations_of_those(tmp_path):
    dual = expectations.load(write(tmp_path, json.dumps({"deviations": [dict(ENTRY, families=[6, 4])]})))[0]
    assert dual.applies("error-cni-version", "gc-demo", "1.1.0", [4, 6])
    assert not dual.applies("error-cni-version", "gc-demo", "1.1.0", [4])  # its twin: an IPv4-only configuration
    anyway = expectations.load(write(tmp_path, json.dumps({"deviations": [ENTRY]})))[0]
    assert anyway.applies("error-cni-version", "gc-demo", "1.1.0", [4]) and anyway.applies(
        "error-cni-version", "gc-demo", "1.1.0", [4, 6])


def test_a_deviation_of_some_configurations_applies_only_where_the_plugin_is_so_configured(tmp_path):
    """bridge leaves its ipMasq chain after a DEL without the netns: a bridge without ipMasq cannot, so it
    neither expects the deviation nor reports it fixed."""
    masq = expectations.load(write(tmp_path, json.dumps({"deviations": [dict(ENTRY, config={"ipMasq": True})]})))[0]
    assert masq.applies("error-cni-version", "gc-demo", "1.1.0", [4], {"type": "gc-demo", "ipMasq": True})
    assert not masq.applies("error-cni-version", "gc-demo", "1.1.0", [4], {"type": "gc-demo"})  # its twin
    assert masq.applies("error-cni-version", "gc-demo", "1.1.0", [4])  # no configuration given: as before


def test_a_missing_file_is_one_line(tmp_path):
    with pytest.raises(expectations.ExpectationsError, match=r"cannot read the expectations file"):
        expectations.load(str(tmp_path / "absent.yaml"))


def spec_suite(tmp_path, *args: str, suite: str = "suites/cni/test_spec.py") -> subprocess.CompletedProcess:
    conflist = tmp_path / "gc-demo.conflist"
    conflist.write_text(json.dumps({"cniVersion": "1.1.0", "name": "netconform-gc-demo",
                                    "plugins": [{"type": "gc-demo"}]}))
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA",
                           suite, "--cni-conf", str(conflist), "--cni-path", "tests/cni_plugins",
                           "--basetemp", str(tmp_path / "run"), *args],
                          cwd=PROJECT, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                          env=dict(os.environ, COLUMNS="300"))


def test_without_expectations_the_users_deviation_fails(tmp_path):
    # --strict: the missing cniVersion breaks a SHOULD (SPEC-123), a deviation at SHOULD level without it
    # (tests/test_spec_statements.py); here it must not pass as a known deviation.
    done = spec_suite(tmp_path, "-k", "error_objects and 1.1.0", "--strict")
    assert done.returncode == 1 and "1 failed" in done.stdout, done.stdout[-3000:]


def test_expectations_file_makes_the_users_deviation_a_known_deviation(tmp_path):
    done = spec_suite(tmp_path, "-k", "error_objects and 1.1.0", "--expectations",
                      write(tmp_path, json.dumps({"deviations": [ENTRY]})))
    assert done.returncode == 0, done.stdout[-3000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert "1 known deviation" in summary and "skipped" not in summary and "xfailed" not in summary, summary
    assert "DEVIATION suites/cni/test_spec.py::test_error_objects_carry_the_cni_version[cni://gc-demo-1.1.0]: " \
           "known deviation of gc-demo (as --expectations says): its ADD without CNI_CONTAINERID succeeds; " \
           "spec-v1.1.0 Error SHOULD" in done.stdout, done.stdout[-3000:]
    assert "as --expectations says: 1 test(s) met a known deviation (1 plugin deviation(s))" in done.stdout


def test_in_allure_and_the_matrix_a_known_deviation_is_its_own_outcome(tmp_path):
    """Allure's fifth status, "unknown" (known), labelled and categorised; the matrix's deviation column,
    per area and per implementation. Its twin: the test that passes in the same run stays passed."""
    results = tmp_path / "allure"
    done = spec_suite(tmp_path, "-k", "(error_objects or version_answers) and 1.1.0", "--expectations",
                      write(tmp_path, json.dumps({"deviations": [ENTRY]})), f"--alluredir={results}")
    assert done.returncode == 0 and "1 passed" in done.stdout and "1 known deviation" in done.stdout, done.stdout[-3000:]
    written = {}
    for path in results.glob("*-result.json"):
        result = json.loads(path.read_text())
        written[result["fullName"].split("#")[-1]] = result
    deviation = written["test_error_objects_carry_the_cni_version"]
    passed = written["test_version_answers_the_supported_versions"]
    assert deviation["status"] == "unknown" and deviation["statusDetails"]["known"] is True, deviation
    assert {"name": "known deviation", "value": "as --expectations says"} in deviation["labels"], deviation["labels"]
    assert passed["status"] == "passed" and "known" not in passed.get("statusDetails", {}), passed
    categories = json.loads((results / "categories.json").read_text())
    assert any(c["name"] == "known deviation" and c["matchedStatuses"] == ["unknown"] for c in categories)
    by_area, by_impl = matrix.matrix(str(results)), matrix.matrix(str(results), "implementation")
    assert by_area["CNI spec"]["deviation"] == 1 and by_area["CNI spec"]["passed"] == 1, by_area
    assert by_area["CNI spec"]["skipped"] == 0 and by_area["CNI spec"]["unknown"] == 0, by_area
    assert sum(row["deviation"] for row in by_impl.values()) == 1, by_impl
    text = matrix.matrices_text(str(results))
    assert "deviation" in text.splitlines()[0] and "implementation" in text, text


def test_a_listed_deviation_that_no_longer_happens_fails(tmp_path):
    """gc-demo answers VERSION as the spec says: a deviation listed there is 'fixed'."""
    fixed = dict(ENTRY, case="version", signature="cniVersion", does="it echoes the wrong cniVersion")
    path = write(tmp_path, json.dumps({"deviations": [fixed]}))
    done = spec_suite(tmp_path, "-k", "version_answers and 1.1.0", "--expectations", path)
    assert done.returncode == 1 and "1 failed" in done.stdout, done.stdout[-3000:]
    assert ("version at cniVersion 1.1.0: fixed: the known deviation no longer happens (it echoes the wrong "
            f"cniVersion); remove it from {path}") in done.stdout, done.stdout[-3000:]


def test_a_deviation_with_another_failure_still_fails(tmp_path):
    """A listed signature forgives only itself: any other claim of the same test fails as before."""
    other = dict(ENTRY, signature="something gc-demo does not print")
    done = spec_suite(tmp_path, "-k", "error_objects and 1.1.0", "--strict", "--expectations",  # SHOULD: as above
                      write(tmp_path, json.dumps({"deviations": [other]})))
    assert done.returncode == 1 and "1 failed" in done.stdout, done.stdout[-3000:]


def test_a_malformed_expectations_option_stops_the_run_in_one_line(tmp_path):
    done = spec_suite(tmp_path, "--expectations", write(tmp_path, "- not a mapping\n"))
    assert done.returncode == 4 and "--expectations: " in done.stderr and "Traceback" not in done.stderr, \
        done.stderr[-2000:]


def test_the_installed_build_is_the_catalogue_build_dpkg_names_and_a_copy_elsewhere_is_none(tmp_path):
    copy = tmp_path / "bridge"
    copy.write_bytes(b"#!/bin/sh\n")
    assert catalogue.installed(str(copy)) is None
    if not os.path.exists("/usr/lib/cni/bridge"):
        pytest.skip("containernetworking-plugins is not installed")
    done = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "containernetworking-plugins"],
                          capture_output=True, text=True, check=False)
    assert catalogue.installed("/usr/lib/cni/bridge") == f"cni-plugins@{catalogue.upstream_of(done.stdout.strip())}"
