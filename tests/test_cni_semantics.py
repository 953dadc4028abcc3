"""Config semantics as data (harness/cni/semantics.yaml): the datapath suite judges a configuration
by what its types' documented keys mean, and claims nothing of a type it does not know.

The reference bridge plugin under another type name (``mybridge``, a user's own plugin or a
wrapper) passes with the unknown-semantics skips; declared ``--cni-semantics mybridge=bridge``,
every bridge promise of its configuration is checked and holds; and a wrapper that deletes the
bridge's masquerade rules after ADD, declared the same, fails the masquerade test with what the
internet saw. Flannel (cni-plugins@0.9.0) is judged as the bridge it delegates to, with the
subnet.env the harness writes as flanneld would.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from harness.cni import expect
from harness.cni.conf import parse

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BRIDGE = "/usr/lib/cni/bridge"
MYBRIDGE = {"cniVersion": "1.0.0", "name": "dev-mybridge", "plugins": [
    {"type": "mybridge", "bridge": "cni0", "isGateway": True, "ipMasq": True,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.77.0.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}}]}
# A wrapper that runs the real bridge, then deletes the masquerade rules it made (a broken datapath).
UNMASQUERADING = f"""#!/bin/sh
out=$({BRIDGE}); rc=$?
if [ "$CNI_COMMAND" = ADD ]; then
  iptables -t nat -S POSTROUTING | grep -- '-j CNI-' | sed 's/^-A /-D /' | while read -r rule; do
    eval iptables -t nat "$rule"
  done
fi
printf '%s' "$out"
exit $rc
"""
# A k3s-like flannel conflist: flannel delegating to the bridge, portmap after it.
FLANNEL = {"cniVersion": "0.3.1", "name": "cbr0", "plugins": [
    {"type": "flannel", "delegate": {"hairpinMode": True, "forceAddress": True, "isDefaultGateway": True}},
    {"type": "portmap", "capabilities": {"portMappings": True}}]}
UNKNOWN = "config semantics of type 'mybridge' are unknown: declare them with --cni-semantics mybridge=KNOWN_TYPE"
SELECTED = "gateway_and_the_expected or reach_each_other or leaves_for_the_internet or keeps_only"  # IPv4's: MYBRIDGE has no IPv6 range


def network(data, **semantics):
    parsed = parse(data, "dev")
    parsed.semantics.update(semantics)
    return parsed


def test_every_known_type_cites_its_documentation_and_defaults_every_key():
    data = expect._data()
    assert expect.known_types() == sorted(["bridge", "ptp", "macvlan", "ipvlan", "host-device", "vlan", "flannel",
                                           "tuning", "bandwidth", "portmap", "firewall", "netavark"])
    interface = {"bridge", "gateway", "default_route", "masquerade", "uplink_attached", "pods_reach_each_other",
                 "pod_to_pod_hops", "isolated", "switched", "hairpin", "mtu"}
    for name, entry in data["types"].items():
        assert "cni.dev" in entry["doc"] or "containers/netavark" in entry["doc"], name
        assert all("default" in key and key.get("means") for key in entry["keys"].values()), name
        promises = entry.get("promises") or {}
        assert not promises.keys() - interface - {"port_mappings"}, name
        assert interface <= promises.keys() or not promises.keys() & interface, f"{name}: an interface answers all"
        read = json.dumps(promises)  # every key a promise reads is documented, with its default
        assert all(key in entry["keys"] for key in re.findall(r'"key": "([\w.]+)"', read)), name
        for rules in (v for v in [*promises.values(), *(promises.get("port_mappings") or {}).values()]
                      if isinstance(v, list)):
            assert "when" not in rules[-1] and all(k in entry["keys"] for r in rules for k in r.get("when", {})), name


@pytest.mark.parametrize("isolate,isolated", [("true", True), ("strict", True), ("false", False), (None, False)])
def test_a_keys_documented_values_decide_its_promise(isolate, isolated):
    """netavark's options.isolate: true, or strict (1.14), isolates; false or absent (its default) does not."""
    options = {} if isolate is None else {"isolate": isolate}
    data = {"cniVersion": "1.0.0", "name": "dev", "plugins": [{"type": "netavark", "options": options}]}
    assert expect.isolated(network(data)) is isolated


def test_an_unknown_type_answers_nothing_but_its_one_line():
    unknown = network(MYBRIDGE)
    for question in (expect.gateway_owner, expect.masquerades, expect.pods_reach_each_other, expect.kept):
        with pytest.raises(expect.UnknownSemantics) as caught:
            question(unknown)
        assert str(caught.value) == UNKNOWN
    assert not expect.declares(unknown, "portMappings") and not expect.port_mapping_capable(unknown)
    declared = network(MYBRIDGE, mybridge="bridge")
    assert expect.gateway_owner(declared) == "host" and expect.masquerades(declared)
    assert r"link cni0 bridge" in expect.kept(declared)


def test_an_unknown_chained_plugin_that_declares_port_mappings_claims_nothing():
    chained = network(dict(MYBRIDGE, plugins=[dict(MYBRIDGE["plugins"][0], type="bridge"),
                                              {"type": "myportmap", "capabilities": {"portMappings": True}}]))
    assert expect.masquerades(chained) and expect.declares(chained, "portMappings")
    with pytest.raises(expect.UnknownSemantics, match="'myportmap' are unknown"):
        expect.port_mapping_capable(chained)
    with pytest.raises(expect.UnknownSemantics, match="'myportmap' are unknown"):
        expect.kept(chained)


def test_flannel_is_judged_as_the_bridge_it_delegates_to():
    """flannel_linux.go doCmdAdd at v0.9.0: type bridge, name, ipMasq = !FLANNEL_IPMASQ, mtu = FLANNEL_MTU,
    isGateway for a bridge, ipam host-local on FLANNEL_SUBNET's network with a route to FLANNEL_NETWORK."""
    flannel = network(FLANNEL)
    assert expect.interface_plugin(flannel) == {
        "type": "bridge", "name": "cbr0", "hairpinMode": True, "forceAddress": True, "isDefaultGateway": True,
        "ipMasq": True, "mtu": 1450, "isGateway": True,
        "ipam": {"type": "host-local", "subnet": "10.244.1.0/24", "routes": [{"dst": "10.244.0.0/16"}]}}
    assert expect.provided_files(flannel) == {"/run/flannel/subnet.env": "FLANNEL_NETWORK=10.244.0.0/16\n"
                                              "FLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n"}
    assert [str(net) for net, _ in expect.subnets(flannel)] == ["10.244.1.0/24"]
    assert expect.gateway_owner(flannel) == "host" and expect.default_route(flannel) and expect.masquerades(flannel)
    assert expect.hairpin_port_mapping(flannel) and r"link cni0 bridge" in expect.kept(flannel)
    mine = network(dict(FLANNEL, plugins=[{"type": "flannel", "delegate": {"type": "mybridge"}}]))
    with pytest.raises(expect.UnknownSemantics, match="'mybridge' are unknown"):
        expect.gateway_owner(mine)  # the delegate's own type decides
    mine.semantics["mybridge"] = "bridge"  # flannel sets isGateway only for a delegate typed "bridge"
    assert expect.gateway_owner(mine) is None and expect.masquerades(mine)
    # The twin: a delegate that says otherwise wins over flannel's defaults.
    own = network(dict(FLANNEL, plugins=[{"type": "flannel", "delegate": {"ipMasq": False, "isGateway": False}}]))
    assert not expect.masquerades(own) and expect.gateway_owner(own) is None and not expect.default_route(own)


@pytest.fixture
def cni_path(tmp_path):
    """The installed plugins, and ``mybridge``: the reference bridge under another name."""
    if not os.access(BRIDGE, os.X_OK):
        pytest.skip(f"{BRIDGE} is not installed (apt-get install containernetworking-plugins)")
    directory = tmp_path / "cni-bin"
    directory.mkdir()
    for name in os.listdir("/usr/lib/cni"):
        os.symlink(os.path.join("/usr/lib/cni", name), directory / name)
    os.symlink(BRIDGE, directory / "mybridge")
    return directory


def datapath(tmp_path, cni_path, *args: str, selected: str = SELECTED) -> subprocess.CompletedProcess:
    conflist = tmp_path / "mybridge.conflist"
    conflist.write_text(json.dumps(MYBRIDGE))
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA",
                           "suites/cni/test_datapath.py", "suites/cni/test_datapath_del.py", "--cni-conf", str(conflist),
                           "--cni-path", str(cni_path),
                           "--basetemp", str(tmp_path / "run"), "-k", f"({selected}) and not ipv6", *args],
                          cwd=PROJECT, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                          env=dict(os.environ, COLUMNS="300"))


def test_an_unknown_type_is_held_only_to_its_result_and_says_so(tmp_path, cni_path):
    """What the result and the spec promise still runs: nothing answers an unassigned address of the
    result's subnet, and DEL leaves nothing that names the pods."""
    done = datapath(tmp_path, cni_path, selected=f"{SELECTED} or unassigned or for_the_pods")
    summary = done.stdout.strip().splitlines()[-1]
    assert done.returncode == 0 and "2 passed, 3 skipped" in summary, done.stdout[-4000:]
    assert f"SKIPPED [3] fixtures/cni.py:" in done.stdout and f": {UNKNOWN}\n" in done.stdout, done.stdout[-4000:]


def test_declared_semantics_check_every_bridge_promise(tmp_path, cni_path):
    done = datapath(tmp_path, cni_path, "--cni-semantics", "mybridge=bridge")
    summary = done.stdout.strip().splitlines()[-1]
    assert done.returncode == 0 and "4 passed" in summary and "skipped" not in summary, done.stdout[-4000:]


def test_a_declared_wrapper_that_drops_the_masquerade_fails_with_what_the_internet_saw(tmp_path, cni_path):
    os.unlink(cni_path / "mybridge")
    (cni_path / "mybridge").write_text(UNMASQUERADING)
    os.chmod(cni_path / "mybridge", 0o755)
    done = datapath(tmp_path, cni_path, "--cni-semantics", "mybridge=bridge")
    assert done.returncode == 1 and "1 failed" in done.stdout, done.stdout[-4000:]
    assert "FAILED suites/cni/test_datapath.py::test_pod_traffic_leaves_for_the_internet_as_the_configuration_says" \
        in done.stdout, done.stdout[-4000:]
    assert "pod1 (10.77.0.2) -> 8.8.8.8: " in done.stdout and "server_saw=('10.77.0.2', " in done.stdout, \
        done.stdout[-4000:]  # the internet saw the pod's own address, to which it has no route back


@pytest.mark.parametrize("value,says", [("mybridge", "expected TYPE=KNOWN_TYPE"),
                                        ("mybridge=nosuch", "'nosuch' is not a type the harness knows"),
                                        ("bridge=ptp", "'bridge' has config semantics of its own")])
def test_a_bad_declaration_stops_the_run_in_one_line(tmp_path, cni_path, value, says):
    done = datapath(tmp_path, cni_path, "--cni-semantics", value)
    assert done.returncode == 4 and f"ERROR: --cni-semantics {value}: {says}" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr


def test_flannel_with_the_subnet_env_flanneld_would_write_passes_the_datapath(tmp_path):
    """cni-plugins@0.9.0's flannel, k3s-like: the harness writes /run/flannel/subnet.env (its sandbox's),
    and every promise of the bridge flannel builds is checked and holds."""
    from harness.impl import catalogue, fetch
    if fetch.fetched(catalogue.build_named("cni-plugins@0.9.0")) is None:
        pytest.skip("cni-plugins@0.9.0 is not in the cache (python -m harness impl fetch cni-plugins@0.9.0)")
    conflist = tmp_path / "k3s-flannel.conflist"
    conflist.write_text(json.dumps(FLANNEL))
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA",
                           "suites/cni/test_datapath.py", "suites/cni/test_datapath_del.py", "--cni-conf", str(conflist),
                           "--impl", "cni-plugins@0.9.0",
                           "--basetemp", str(tmp_path / "run"), "-k", f"({SELECTED} or from_outside) and not ipv6"],
                          cwd=PROJECT, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                          env=dict(os.environ, COLUMNS="300"))
    summary = done.stdout.strip().splitlines()[-1]
    assert done.returncode == 0 and "5 passed" in summary and "skipped" not in summary, done.stdout[-4000:]
