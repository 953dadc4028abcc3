"""The spec suite's judgement of a delegated IPAM's ADD answer (harness.cni.schema.validate_ipam_result,
used by suites/cni/test_spec_ipam.py): an answer that is not the abbreviated result fails with the
statement it breaks, at the level the asked version gives it; the true answer has no problem.

The answers come from a plugin of ours (tests/cni_plugins/ipam-liar), exec'd as a runtime execs it
(harness.cni.runtime, no lab: it touches no network), and from hand-made results for the schema alone.
"""
import shutil
from pathlib import Path

import pytest

from harness.cni import spec
from harness.cni.conf import parse
from harness.cni.runtime import Here, Runtime
from harness.cni.schema import validate_ipam_result

PLUGINS = Path(__file__).parent / "cni_plugins"
# lie -> the statements the problem names: at 0.4.0 (SHOULD for the abbreviated form), from 1.0.0 (MUST)
LIES = {"interfaces": ("SPEC-192", "SPEC-121"), "index": ("SPEC-201", "SPEC-121"),
        "version": ("SPEC-193", "SPEC-121"), "noips": ("SPEC-104", "SPEC-104")}


@pytest.fixture
def runtime(tmp_path) -> Runtime:
    cni_path = tmp_path / "cni-bin"
    shutil.copytree(PLUGINS, cni_path)
    made = Runtime(Here(), path=[str(cni_path)], state_dir=str(tmp_path))
    yield made
    made.close()


def answer(runtime, version: str, lie: str) -> dict:
    network = parse({"cniVersion": version, "name": "ipam-twin",
                     "plugins": [{"type": "bridge", "ipam": {"type": "ipam-liar", "lie": lie}}]}, "<ipam-liar>")
    plugin = network.plugins[0]
    run = runtime.exec("ADD", "ipam-liar", runtime.prepare(network, plugin, None, None, version),
                       "ipam-twin", "/run/netns/ipam-twin", "eth0")
    assert run.returncode == 0 and run.result is not None, run.describe()
    return run.result


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0", "1.1.0"])
def test_the_abbreviated_result_has_no_problem(runtime, version):
    result = answer(runtime, version, "none")
    assert validate_ipam_result(result, version) == [], result


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0", "1.1.0"])
@pytest.mark.parametrize("lie", list(LIES))
def test_an_answer_that_is_not_the_abbreviated_result_names_its_statement(runtime, version, lie):
    result = answer(runtime, version, lie)
    problems = validate_ipam_result(result, version)
    named = LIES[lie][0 if version == "0.4.0" else 1]
    assert len(problems) == 1 and named in spec.ID.findall(problems[0]), (lie, version, problems, result)
    level = spec.governing([s for s in spec.lookup(spec.ID.findall(problems[0])) if version in s.versions])
    assert level.fails == (version != "0.4.0" or lie in ("version", "noips")), (problems, level)


def test_an_answer_the_schema_refuses_is_named_as_the_ipam_form():
    problems = validate_ipam_result({"cniVersion": "1.0.0", "ips": [{"address": "10.99.0.2"}]}, "1.0.0")
    assert problems == ["SPEC-121: ips[0].address: '10.99.0.2' is not a 'cidr'"], problems
    problems = validate_ipam_result({"cniVersion": "0.4.0", "ips": [{"address": "10.99.0.2/24"}]}, "0.4.0")
    assert problems == ["SPEC-191: ips[0]: 'version' is a required property"], problems
