"""Network configurations a user hands to --cni-conf: a bad one gets one line naming the
file and the field (or the line and column of broken JSON); a single-plugin ``.conf``
loads and attaches as a chain of one."""
import json

import pytest

from harness.lab.build import build
from harness.cni.backend import CniBackend, backend_for
from harness.cni.conf import ConfError, load
from harness.cni.reality import mismatches
from harness.cni.runtime import CniError, Runtime
from harness.errors import CapabilityMissing, NetconformError
from harness.lab.file import load_lab

BRIDGE = {"type": "bridge", "bridge": "cni0", "isGateway": True,
          "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.97.0.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}}
GOOD = {"cniVersion": "1.0.0", "name": "netconform-conf", "plugins": [BRIDGE]}


def write(tmp_path, name: str, content) -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content, indent=2))
    return str(path)


def one_line(exc: Exception) -> str:
    text = str(exc)
    assert "\n" not in text, f"not one line: {text!r}"
    return text


BAD = [  # (file, content, what the one line says after the file's name)
    ("broken.conflist", '{"cniVersion": "1.0.0",\n "name": "x", "plugins": [\n', "line 3, column 1: broken JSON: "),
    ("no-type.conflist", dict(GOOD, plugins=[BRIDGE, {"capabilities": {"portMappings": True}}]),
     "plugins[1].type: missing"),
    ("no-name.conflist", {k: v for k, v in GOOD.items() if k != "name"}, "name: missing or not a string"),
    ("no-version.conflist", {k: v for k, v in GOOD.items() if k != "cniVersion"},
     "cniVersion: missing or not a string"),
    ("plugins-object.conflist", dict(GOOD, plugins=BRIDGE), "plugins: must be a non-empty list"),
    ("plugins-empty.conflist", dict(GOOD, plugins=[]), "plugins: must be a non-empty list"),
    ("plugin-string.conflist", dict(GOOD, plugins=["bridge"]), "plugins[0]: a plugin configuration is a JSON object"),
    ("type-path.conflist", dict(GOOD, plugins=[dict(BRIDGE, type="/usr/lib/cni/bridge")]),
     "plugins[0].type: '/usr/lib/cni/bridge' is a path, not a plugin name"),
    ("no-type.conf", {"cniVersion": "1.0.0", "name": "x", "bridge": "cni0"}, "type: missing"),
    ("no-name.conf", dict(BRIDGE, cniVersion="1.0.0"), "name: missing or not a string"),
    ("array.conflist", [GOOD], "(top): a network configuration is a JSON object"),
]


@pytest.mark.parametrize("name,content,expected", BAD, ids=[case[0] for case in BAD])
def test_a_bad_configuration_is_one_line_naming_the_file_and_the_field(tmp_path, name, content, expected):
    path = write(tmp_path, name, content)
    with pytest.raises(ConfError) as loading:
        load(path)
    assert one_line(loading.value).startswith(f"{path}: ") and expected in str(loading.value), loading.value
    with pytest.raises(NetconformError) as choosing:  # what the cni fixture does with --cni-conf
        backend_for(path)
    assert one_line(choosing.value) == str(loading.value)


def test_an_unreadable_file_is_named(tmp_path):
    with pytest.raises(ConfError) as loading:
        load(str(tmp_path / "absent.conflist"))
    assert one_line(loading.value) == f"{tmp_path / 'absent.conflist'}: cannot read: No such file or directory"


def test_an_unknown_plugin_binary_is_named_by_file_and_field_before_anything_runs(tmp_path):
    path = write(tmp_path, "unknown.conflist", dict(GOOD, plugins=[BRIDGE, {"type": "no-such-plugin"}]))
    (tmp_path / "bin").mkdir()
    stub = tmp_path / "bin" / "bridge"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    runtime = Runtime(live=None, path=[str(tmp_path / "bin"), str(tmp_path / "more")], state_dir=str(tmp_path))
    for operation in (lambda net: runtime.add(net, "c1", "/run/netns/pod1"),
                      lambda net: runtime.check(net, "c1", "/run/netns/pod1", {}),
                      lambda net: runtime.delete(net, "c1", "/run/netns/pod1", None)):
        with pytest.raises(CapabilityMissing) as finding:
            operation(load(path))
        assert one_line(finding.value).startswith(
            f"{path}: plugins[1].type: CNI plugin 'no-such-plugin' not found in {tmp_path / 'bin'}:{tmp_path / 'more'}"), \
            finding.value
    assert runtime.log == [], "a plugin ran although the chain was incomplete"


def test_a_single_plugin_conf_loads_as_a_chain_of_one(tmp_path):
    conf = dict(BRIDGE, cniVersion="1.0.0", name="netconform-single")
    path = write(tmp_path, "single.conf", conf)
    network = load(path)
    assert (network.name, network.cni_version, network.plugins, network.profile) == \
        ("netconform-single", "1.0.0", [conf], "bridge")
    backend, chosen = backend_for(path)
    assert backend is CniBackend and chosen.plugins == [conf]


def test_a_single_plugin_conf_attaches_and_detaches(tmp_path):
    path = write(tmp_path, "single.conf", dict(BRIDGE, cniVersion="1.0.0", name="netconform-single"))
    (tmp_path / "state").mkdir()
    live = build(load_lab("cni-host"))
    try:
        live.add_node("pod1")
        backend = CniBackend(live, load(path), str(tmp_path / "state"))
        try:
            backend.runtime.binaries(backend.network)
        except CapabilityMissing as exc:
            pytest.skip(str(exc))
        try:
            attachment = backend.attach("pod1")
        except CniError as exc:
            pytest.fail(f"{exc}\n{[(r.plugin, r.stdout, r.stderr) for r in backend.runtime.log]}")
        assert attachment.addresses() and mismatches(live, attachment) == [], attachment.result
        assert [run.stdin["name"] for run in backend.runtime.log] == ["netconform-single"]
        backend.detach("pod1")
    finally:
        live.teardown()


# ---------------------------------------------------------------- a derived second network
PTP_OLD_FORM = {"cniVersion": "1.0.0", "name": "dev-ptp", "plugins": [
    {"type": "ptp", "ipMasq": True, "ipam": {"type": "host-local", "subnet": "10.78.0.0/24",
                                               "routes": [{"dst": "0.0.0.0/0"}]}}]}
STATIC = {"cniVersion": "1.0.0", "name": "dev-static", "plugins": [
    {"type": "bridge", "bridge": "cni0", "ipam": {"type": "static", "addresses": [
        {"address": "10.79.0.5/24", "gateway": "10.79.0.1"}]}}]}


@pytest.mark.parametrize("data,moved", [(PTP_OLD_FORM, "10.78.1.0/24"), (STATIC, "10.79.1.0/24")],
                         ids=["host-local-single-subnet", "static-addresses"])
def test_a_derived_second_network_never_overlaps_the_first(data, moved):
    from harness.cni import derived, expect
    from harness.cni.conf import parse
    network = parse(data, data["name"])
    sibling = derived.sibling(network)
    assert [str(subnet) for subnet, _ in expect.subnets(sibling)] == [moved]
    assert derived.overlaps(network, sibling) == []
    # The twin: the configuration against itself overlaps, and says where.
    assert derived.overlaps(network, network) == [str(expect.subnets(network)[0][0])]


DUAL = {"cniVersion": "1.0.0", "name": "dev-dual", "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": True, "ipam": {"type": "host-local", "ranges": [
        [{"subnet": "10.88.0.0/16"}], [{"subnet": "2001:db8:88::/64"}]],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]}}]}


def test_both_families_ranges_gateways_and_default_routes_are_read():
    from harness.cni import derived, expect
    from harness.cni.conf import parse
    network = parse(DUAL, DUAL["name"])
    assert expect.families(network) == [4, 6]
    assert [(str(n), str(g)) for n, g in expect.subnets(network, 6)] == [("2001:db8:88::/64", "2001:db8:88::1")]
    assert [(str(n), str(g)) for n, g in expect.subnets(network)] == [("10.88.0.0/16", "10.88.0.1")]
    assert expect.default_route(network, 4) and expect.default_route(network, 6)
    # The twins: a v4-only configuration has no IPv6 range and no IPv6 default route.
    v4_only = parse(PTP_OLD_FORM, PTP_OLD_FORM["name"])
    assert expect.families(v4_only) == [4] and not expect.default_route(v4_only, 6)
    sibling = derived.sibling(network)
    assert [str(n) for n, _ in expect.subnets(sibling, None)] == ["10.89.0.0/16", "2001:db8:88:1::/64"]
    assert derived.overlaps(network, sibling) == []
    assert derived.overlaps(network, network) == ["10.88.0.0/16", "2001:db8:88::/64"]


# ---------------------------------------------------------------- preconditions another component makes
KUBENET = {"cniVersion": "1.0.0", "name": "dev-kubenet", "plugins": [
    {"type": "bridge", "bridge": "cbr0", "isGateway": True, "isDefaultGateway": True, "ipMasq": True,
     "hairpinMode": True, "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.85.0.0/24"}]]}},
    {"type": "portmap", "capabilities": {"portMappings": True}, "externalSetMarkChain": "KUBE-MARK-MASQ"}]}


@pytest.mark.parametrize("chain", ["KUBE-MARK-MASQ", "DEV-NOT-THERE"])
def test_portmaps_external_mark_chain_is_made_as_kube_proxy_does_or_named_in_one_line(tmp_path, chain):
    from harness.cni.conf import parse
    data = json.loads(json.dumps(KUBENET).replace("KUBE-MARK-MASQ", chain))
    live = build(load_lab("cni-host"))
    try:
        live.add_node("pod1")
        backend = CniBackend(live, parse(data, "kubenet.conflist"), str(tmp_path))
        made = live.run("host", ["iptables", "-t", "nat", "-S", chain]).returncode == 0
        if chain == "KUBE-MARK-MASQ":
            assert made and backend.unavailable() is None
            # portmap marks through it: without the chain its ADD fails ("Chain 'KUBE-MARK-MASQ' does not exist")
            backend.attach("pod1", portMappings=[{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}])
            backend.close()
        else:
            assert not made, "the harness made a chain no component it knows owns"
            assert backend.unavailable() == (
                "kubenet.conflist: portmap's externalSetMarkChain 'DEV-NOT-THERE' is not in the host's nat table: "
                "whatever owns it must make it first (the harness makes only kube-proxy's KUBE-MARK-MASQ)")
    finally:
        live.teardown()
