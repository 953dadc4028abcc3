"""The pytest side of a lab, in a pytest subprocess (a user's project that asks for netconform): the
lab-ready and attached hooks fire when and as often as they should, and the ``requires`` marker skips
with the kernel's own reason; capabilities agree with what a build meets."""
import json
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest
from test_builder import netns_state, nothing_left_behind, one_line  # noqa: F401 (autouse: no namespace outlives a test)

from harness.cni.conf import profile_dir
from harness.kernel import capabilities
from harness.lab.build import build
from harness.errors import CapabilityMissing
from harness.lab.file import lab_from_dict
from harness.lab.model import HOST

SUBPROCESS_TIMEOUT = 100  # seconds; the ini timeout of a test is 120


def run_pytest(tmp_path, files: dict[str, str], *args: str):
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    (tmp_path / "pytest.ini").write_text("[pytest]\nnetconform = true\n")  # a user's project that uses netconform
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    env["NC_HOOK_LOG"] = str(tmp_path / "events.jsonl")
    junit = tmp_path / "junit.xml"
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA",
                           f"--junitxml={junit}", *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=SUBPROCESS_TIMEOUT)
    outcomes = {}
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            kids = [kid for kid in case if kid.tag in ("skipped", "failure", "error")]
            outcomes[case.get("name")] = (kids[0].tag, kids[0].get("message")) if kids else ("passed", None)
    return done, outcomes


HOOK_PLUGIN = """\
    import json, os

    def log(entry):
        with open(os.environ["NC_HOOK_LOG"], "a") as handle:
            handle.write(json.dumps(entry) + "\\n")

    def pytest_netconform_lab_ready(lab):
        entry = {"event": "hook", "lab": lab.name, "nodes": lab.nodes,
                 "phase": os.environ.get("PYTEST_CURRENT_TEST", "")}
        if lab.name == "001-vbridge":
            done = lab.run("ns1", ["ip", "addr", "del", "192.168.28.1/24", "dev", "veth-1"])
            entry["rc"] = done.returncode
            entry["left"] = lab.run("ns1", ["ip", "-o", "-4", "addr", "show", "dev", "veth-1"]).stdout
        log(entry)
"""

HOOKED_TESTS = """\
    from pytest_netconform import lab_fixture
    from nc_hook_plugin import log

    vbridge = lab_fixture("001-vbridge")
    basics = lab_fixture("000-veth-basics")

    def test_altered(vbridge):
        log({"event": "body", "test": "test_altered"})
        assert vbridge.addresses("ns1", "veth-1") == []
        assert vbridge.addresses("ns2", "veth-2") == ["192.168.28.2/24"]

    def test_two_labs(vbridge, basics):
        log({"event": "body", "test": "test_two_labs"})
        assert vbridge.addresses("ns1", "veth-1") == []
        assert basics.addresses("my-namespace", "veth1") == ["10.0.0.2/24"]

    def test_no_lab():
        log({"event": "body", "test": "test_no_lab"})
"""


def test_lab_ready_hook_fires_once_per_lab_before_the_body(tmp_path):
    done, outcomes = run_pytest(tmp_path, {"nc_hook_plugin.py": HOOK_PLUGIN, "test_hooked.py": HOOKED_TESTS},
                                "-p", "nc_hook_plugin", "test_hooked.py")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert outcomes == {name: ("passed", None) for name in ("test_altered", "test_two_labs", "test_no_lab")}
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    vbridge_nodes = [HOST, "ns1", "ns2", "ns3", "upstream"]
    assert [(e["event"], e.get("lab") or e.get("test")) for e in events] == [
        ("hook", "001-vbridge"), ("body", "test_altered"),
        ("hook", "001-vbridge"), ("hook", "000-veth-basics"), ("body", "test_two_labs"),
        ("body", "test_no_lab")]
    hooks = [e for e in events if e["event"] == "hook"]
    assert [h["phase"] for h in hooks] == ["test_hooked.py::test_altered (setup)"] + \
        ["test_hooked.py::test_two_labs (setup)"] * 2
    assert [h["nodes"] for h in hooks] == [vbridge_nodes, vbridge_nodes, [HOST, "my-namespace"]]
    assert [(h["rc"], h["left"]) for h in hooks if h["lab"] == "001-vbridge"] == [(0, "")] * 2


ATTACH_PLUGIN = """\
    import json, os

    def pytest_netconform_attached(lab, backend, attachment):
        with open(os.environ["NC_HOOK_LOG"], "a") as handle:
            handle.write(json.dumps({"event": "attached", "pod": attachment.pod, "lab": lab.name,
                                     "network": backend.network.name,
                                     "addresses": lab.addresses(attachment.pod, attachment.ifname)}) + "\\n")
"""

ATTACHING_TESTS = """\
    import json, os

    def test_two_pods(cni, add_pod):
        for pod in ("pod1", "pod2"):
            add_pod(pod)
            attachment = cni.attach(pod)
            with open(os.environ["NC_HOOK_LOG"], "a") as handle:
                handle.write(json.dumps({"event": "returned", "pod": attachment.pod}) + "\\n")
"""


def test_attached_hook_fires_after_each_pod_the_implementation_attached(tmp_path):
    profile = os.path.join(profile_dir(), "bridge-host-local.conflist")
    done, outcomes = run_pytest(tmp_path, {"nc_attach_plugin.py": ATTACH_PLUGIN, "test_attaching.py": ATTACHING_TESTS},
                                "-p", "nc_attach_plugin", "--cni-conf", profile, "test_attaching.py")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [(e["event"], e["pod"]) for e in events] == [("attached", "pod1"), ("returned", "pod1"),
                                                          ("attached", "pod2"), ("returned", "pod2")], events
    hooks = [e for e in events if e["event"] == "attached"]
    assert {(h["lab"], h["network"]) for h in hooks} == {("cni-host", "netconform-bridge")}, hooks
    assert all(any(a.startswith("10.") for a in h["addresses"]) for h in hooks), \
        f"the hook fired before the plugins gave the pod its address: {hooks}"


CAPABILITY_TESTS = """\
    import pytest
    from harness.kernel import capabilities

    @pytest.mark.requires("ipvlan")
    def test_ipvlan():
        assert capabilities.missing("ipvlan") is None

    @pytest.mark.requires("bridge")
    def test_bridge():
        assert capabilities.missing("bridge") is None

    @pytest.mark.requires("bridge", "ipvlan")
    def test_bridge_and_ipvlan():
        assert capabilities.missing("ipvlan") is None
"""


def kernel_words(text: str) -> bool:
    return any(os.strerror(code) in text for code in range(1, 134))


def test_requires_marker_skips_with_the_kernels_reason(tmp_path):
    done, outcomes = run_pytest(tmp_path, {"test_caps.py": CAPABILITY_TESTS}, "test_caps.py")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert outcomes["test_bridge"] == ("passed", None)
    reason = capabilities.missing("ipvlan")
    for name in ("test_ipvlan", "test_bridge_and_ipvlan"):
        if reason is None:
            assert outcomes[name] == ("passed", None)
        else:
            kind, message = outcomes[name]
            assert kind == "skipped", outcomes
            assert message == f"requires ipvlan: {reason}", message
            assert "ipvlan" in reason and kernel_words(reason), reason
            assert f"requires ipvlan: {reason}" in done.stdout, done.stdout  # the -rs summary line


def test_capabilities_missing_directly():
    assert capabilities.missing("veth") is None
    assert capabilities.missing("bridge") is None
    reason = capabilities.missing("ipvlan")
    assert reason is None or ("ipvlan" in one_line(reason) and kernel_words(reason)), reason
    with pytest.raises(KeyError, match="unknown capability 'teleport'.*bridge"):
        capabilities.missing("teleport")


def test_build_agrees_with_capabilities_on_ipvlan():
    data = {"lab": "ipv", "nodes": {"ns1": {"links": [
        {"name": "low", "kind": "veth", "peer": {"name": "low-peer"}},
        {"name": "ipv0", "kind": "ipvlan", "parent": "low", "addresses": ["10.7.0.1/24"]}]}}}
    reason = capabilities.missing("ipvlan")
    if reason is None:
        with build(lab_from_dict(data)) as live:
            assert live.link("ns1", "ipv0").get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") == "ipvlan"
            assert live.addresses("ns1", "ipv0") == ["10.7.0.1/24"]
    else:
        with pytest.raises(CapabilityMissing) as info:
            build(lab_from_dict(data))
        message = one_line(str(info.value))
        assert "ipvlan" in message and kernel_words(message), message
        assert netns_state() == ([], [])
