"""The spec suite's CNI 1.1.0 tests (GC, STATUS) run against a plugin of ours that claims
1.1.0 (tests/cni_plugins/gc-demo; no installed plugin does): they pass on the correct one and
GC's test fails, saying what was released, when GC releases a valid attachment too."""
from __future__ import annotations

import json
import os
import subprocess
import sys

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def spec_suite(tmp_path, plugin: dict) -> subprocess.CompletedProcess:
    conflist = tmp_path / "gc-demo.conflist"
    conflist.write_text(json.dumps({"cniVersion": "1.1.0", "name": "netconform-gc-demo", "plugins": [plugin]}))
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA",
                           "suites/cni/test_spec.py", "-k", "test_gc or test_status", "--cni-conf", str(conflist),
                           "--cni-path", "tests/cni_plugins", "--basetemp", str(tmp_path / "run")],
                          cwd=PROJECT, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                          env=dict(os.environ, COLUMNS="300"))


def test_gc_and_status_pass_against_a_correct_1_1_0_plugin(tmp_path):
    done = spec_suite(tmp_path, {"type": "gc-demo"})
    assert done.returncode == 0, done.stdout[-3000:]
    assert "PASSED suites/cni/test_spec.py::test_gc_releases_only_what_is_not_a_valid_attachment[cni://gc-demo-1.1.0]" \
        in done.stdout and "PASSED suites/cni/test_spec.py::test_status_answers_ready_or_an_error_object" \
        in done.stdout, done.stdout[-3000:]


def test_a_gc_that_releases_a_valid_attachment_fails_naming_it(tmp_path):
    done = spec_suite(tmp_path, {"type": "gc-demo", "gcReleasesEverything": True})
    assert done.returncode == 1, done.stdout[-3000:]
    assert "FAILED suites/cni/test_spec.py::test_gc_releases_only_what_is_not_a_valid_attachment[cni://gc-demo-1.1.0]" \
        in done.stdout, done.stdout[-3000:]
    assert "GC released 10.97.0.2, the reservation of a valid attachment (netconform-pod1)" in done.stdout
