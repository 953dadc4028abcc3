"""CNI plugins' files stay in the run: the sandbox's /var/lib is private (an overlay whose writes
land in the sandbox's /run), and each runtime gives its plugins a /var/lib/cni of its own. The
configuration reaches the plugins unchanged (no dataDir injected), as SPEC.md's runtime must pass
it; host-local's defaults and flannel's delegation keep their state where the run can read it, and
the machine's /var/lib/cni is byte-for-byte what it was.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from harness import build, load_lab
from harness.cni.conf import parse
from harness.cni.runtime import Runtime
from harness.kernel import sandbox

HOST_LOCAL_DEFAULTS = {"cniVersion": "0.4.0", "name": "dev-state", "plugins": [
    {"type": "bridge", "bridge": "dev-cni1", "isGateway": True,
     "ipam": {"type": "host-local", "subnet": "10.99.0.0/24"}}]}  # no dataDir: /var/lib/cni/networks
FLANNEL = {"cniVersion": "0.3.1", "name": "cbr0", "plugins": [
    {"type": "flannel", "delegate": {"hairpinMode": True, "isDefaultGateway": True}}]}
SUBNET_ENV = "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"
LIST_TREE = ("import hashlib, json, os, sys\nout = {}\nfor d, _, fs in os.walk(sys.argv[1]):\n"
             "    out[d] = 'dir'\n    for f in fs:\n        p = os.path.join(d, f)\n"
             "        out[p] = hashlib.sha256(open(p, 'rb').read()).hexdigest()\nprint(json.dumps(out, sort_keys=True))\n")


def machine_tree(path: str) -> dict:
    """The machine's own view of ``path`` (its mount namespace, not the sandbox's): root only."""
    done = subprocess.run([sys.executable, "-c", LIST_TREE, path], capture_output=True, text=True, timeout=60,
                          preexec_fn=sandbox.outside_preexec(cwd="/"), check=True)
    return json.loads(done.stdout)


@pytest.fixture
def host(tmp_path):
    live = build(load_lab("cni-host"))
    try:
        yield live
    finally:
        live.teardown()


def attach(live, state_dir, network, path, pod="pod1"):
    live.add_node(pod)
    runtime = Runtime(live, path=path, state_dir=str(state_dir))
    result = runtime.add(network, f"netconform-{pod}", f"/run/netns/{pod}")
    return runtime, result


def test_host_local_defaults_keep_reservations_in_the_runs_own_var_lib_cni(host, tmp_path):
    network = parse(HOST_LOCAL_DEFAULTS, "host-local-defaults")
    runtime, result = attach(host, tmp_path / "state", network, ["/usr/lib/cni"])
    ip = result["ips"][0]["address"].split("/")[0]
    reservations = tmp_path / "state" / "var-lib-cni" / "networks" / "dev-state"
    assert (reservations / ip).read_text().startswith("netconform-pod1"), sorted(os.listdir(reservations))
    assert "ipam" in runtime.log[0].stdin and "dataDir" not in runtime.log[0].stdin["ipam"], (
        "the runtime changed the plugin's configuration (SPEC.md: it passes it through)")
    # The twin: the sandbox's own /var/lib/cni (what a plugin run without the runtime's bind would use)
    # holds nothing of this run, so a write there would show.
    assert not os.path.exists(f"{sandbox.PLUGIN_STATE}/networks/dev-state"), os.listdir(sandbox.PLUGIN_STATE)


def test_a_plugin_run_without_the_runtimes_state_writes_only_the_sandboxes(host, tmp_path):
    """Negative twin of the above: host-local exec'd bare does write /var/lib/cni/networks (its
    default), and that lands in the sandbox's overlay, where this test sees it."""
    host.add_node("pod2")
    conf = dict(HOST_LOCAL_DEFAULTS["plugins"][0]["ipam"], cniVersion="0.4.0", name="dev-bare")
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "dev-bare", "CNI_NETNS": "/run/netns/pod2",
           "CNI_IFNAME": "eth0", "CNI_PATH": "/usr/lib/cni", "PATH": os.environ["PATH"]}
    done = subprocess.run(["/usr/lib/cni/host-local"], input=json.dumps({**conf, "ipam": conf}), env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert os.listdir(f"{sandbox.PLUGIN_STATE}/networks/dev-bare"), "host-local's default is not /var/lib/cni"


@pytest.mark.skipif(os.geteuid() != 0, reason="reading the machine's own /var/lib needs root (its mount namespace)")
def test_the_machines_var_lib_cni_is_untouched_by_host_local_and_flannel(host, tmp_path):
    from harness.impl import catalogue, fetch
    before = machine_tree("/var/lib/cni") if os.path.isdir("/proc/1/root/var/lib/cni") else {}
    attach(host, tmp_path / "state1", parse(HOST_LOCAL_DEFAULTS, "host-local-defaults"), ["/usr/lib/cni"])
    try:
        flannel = fetch.fetch(catalogue.build_named("cni-plugins@0.9.0"), preexec=sandbox.outside_preexec(cwd="/"))
    except fetch.FetchError as exc:
        pytest.fail(f"cannot fetch the flannel plugin: {exc}", pytrace=False)
    os.makedirs("/run/flannel", exist_ok=True)  # the sandbox's /run: flanneld's file, as flanneld writes it
    with open("/run/flannel/subnet.env", "w") as handle:
        handle.write(SUBNET_ENV)
    _, result = attach(host, tmp_path / "state2", parse(FLANNEL, "flannel"), [flannel.bin_dir], pod="pod2")
    assert result["ips"][0]["address"].startswith("10.244.1."), result
    state = tmp_path / "state2" / "var-lib-cni"
    assert (state / "flannel" / "netconform-pod2").exists(), "flannel keeps its delegate's config in /var/lib/cni/flannel"
    assert os.listdir(state / "networks" / "cbr0"), "the delegated host-local keeps its reservations there too"
    after = machine_tree("/var/lib/cni") if os.path.isdir("/proc/1/root/var/lib/cni") else {}
    assert after == before, "the machine's /var/lib/cni changed"
