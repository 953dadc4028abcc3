"""harness.lab.script and harness.lab.topology: the shell reproducer builds what the harness builds; the diagrams name everything.

Each lab is built twice: by ``builder.build`` and by running ``script.shell_script``
with ``sh`` in a scratch "host" namespace. Both are read back over netlink (pyroute2),
plus sysctls, iptables-save and nft, and compared node by node.
"""
import os
import re
import shutil
import subprocess
import sys

import pytest

from harness.kernel import nsutil, state
from harness.kernel.constants import AF_INET, IPV6_QUIET_SYSCTLS
from harness.lab import script, topology
from harness.lab.build import build
from harness.errors import CapabilityMissing
from harness.lab.file import bundled_labs, lab_from_dict, load_lab
from harness.lab.live import BR_NETFILTER_SYSCTLS
from harness.lab.model import HOST
from harness.kernel.netops import safe_close_fd

SCRIPT_TIMEOUT = 60

# Labs beyond the bundled ones, for the commands those never use. A kind this kernel lacks skips its lab.
NFT = "table inet lab {\n  chain input {\n    type filter hook input priority 0; policy accept;\n" \
      "    tcp dport 22 counter accept\n  }\n}\n"
L3_LAB = {"lab": "render-l3", "nodes": {
    "host": {"links": [{"name": "h-r1", "kind": "veth", "addresses": ["10.1.0.1/24"], "mtu": 1400,
                        "peer": {"name": "r1-h", "node": "r1", "addresses": ["10.1.0.2/24"], "mtu": 1400,
                                 "mac": "02:00:00:00:01:02"}}],
             "sysctls": {"net.ipv4.ip_forward": 1, "net.ipv4.conf.all.rp_filter": 2},
             "routes": [{"dst": "10.2.0.0/24", "via": "10.1.0.2", "metric": 50}],
             "iptables": ["-N LAB", "-A LAB -m comment --comment lab-chain -j ACCEPT",
                          "-I FORWARD 1 -s 10.1.0.0/24 -j LAB", "-P FORWARD DROP",
                          "-t nat -A POSTROUTING -o h-r1 -j MASQUERADE"],
             "rules": [{"from": "10.1.0.0/24", "table": 100, "priority": 900}], "nftables": NFT},
    "r1": {"links": [{"name": "r1-r2", "kind": "veth", "addresses": ["10.2.0.1/24"], "up": True,
                      "peer": {"name": "r2-r1", "node": "r2", "addresses": ["10.2.0.2/24"], "up": False}}],
           "routes": [{"dst": "default", "via": "10.1.0.1", "metric": 100},
                      {"dst": "10.9.0.0/16", "type": "blackhole"}, {"dst": "10.8.0.0/16", "type": "unreachable"},
                      {"dst": "10.7.0.0/16", "type": "prohibit", "table": 200},
                      {"dst": "10.6.0.0/24", "dev": "r1-h", "scope": "link", "table": 100},
                      {"dst": "10.5.0.0/24", "via": "10.2.0.2", "src": "10.2.0.1", "table": "main"},
                      {"dst": "10.4.0.0/24", "via": "10.99.0.1", "dev": "r1-h", "onlink": True},
                      {"dst": "10.3.0.0/24", "nexthops": [{"via": "10.1.0.1", "dev": "r1-h", "weight": 2},
                                                          {"via": "10.2.0.2", "dev": "r1-r2"}]}],
           "rules": [{"from": "10.1.0.0/24", "to": "10.6.0.0/24", "table": 100, "priority": 1000},
                     {"iif": "r1-h", "table": 200, "priority": 1001}, {"oif": "r1-r2", "table": "main"}],
           "neighbours": [{"dst": "10.1.0.99", "lladdr": "02:00:00:00:00:99", "dev": "r1-h"},
                          {"dst": "10.1.0.77", "dev": "r1-h", "proxy": True}]},
    "r2": {"nftables": NFT}}}
L2_LAB = {"lab": "render-l2", "nodes": {
    "host": {"links": [
        {"name": "br-l2", "kind": "bridge", "bridge": {"stp": False, "ageing_time": 12.5, "forward_delay": 4}},
        {"name": "p1", "kind": "veth", "master": "br-l2",
         "port": {"learning": False, "flood": False, "hairpin": True, "isolated": True, "cost": 7},
         "peer": {"name": "eth0", "node": "c1", "mac": "02:00:00:00:0c:01"}},
        {"name": "up0", "kind": "veth", "peer": {"name": "up1", "master": "br-l2", "port": {"cost": 3}}},
        {"name": "mv-here", "kind": "macvlan", "parent": "up0", "mode": "private", "mac": "02:00:00:00:0d:01"},
        {"name": "vx0", "kind": "vxlan", "addresses": ["10.3.0.1/24"],
         "vxlan": {"id": 42, "port": 4789, "local": "10.3.0.1", "learning": False}},
        {"name": "tun0", "kind": "tun"}, {"name": "mv-back", "kind": "macvlan", "parent": "c2:trunk"}],
        "fdb": [{"mac": "02:00:00:00:0e:01", "dev": "p1", "master": True},
                {"mac": "00:00:00:00:00:00", "dev": "vx0", "dst": "10.3.0.9"}]},
    "c1": {"links": [{"name": "mv0", "kind": "macvlan", "parent": "host:up0"}, {"name": "tap0", "kind": "tap"}]},
    "c2": {"links": [{"name": "trunk", "kind": "veth", "peer": {"name": "trunk-c3", "node": "c3"}}]},
    "c3": {"links": [{"name": "mv-up", "kind": "macvlan", "parent": "c2:trunk", "mode": "bridge"}]}}}
KINDS_LAB = {"lab": "render-kinds", "nodes": {"host": {"links": [
    {"name": "vrf-blue", "kind": "vrf", "table": 10}, {"name": "d0", "kind": "dummy", "master": "vrf-blue"},
    {"name": "d0.7", "kind": "vlan", "parent": "d0", "id": 7, "addresses": ["10.7.0.1/24"]},
    {"name": "ipv0", "kind": "ipvlan", "parent": "d0", "mode": "l3"}]}}}
QUOTING_LAB = {"lab": "render-quoting", "nodes": {  # names a shell would expand if they were not quoted
    "it's-$HOME": {"links": [{"name": 'e"$x`y', "kind": "veth", "addresses": ["10.4.0.2/24"],
                              "peer": {"name": "v;ls&<#>", "node": "host", "addresses": ["10.4.0.1/24"]}}]}}}
EXTRA_LABS = {data["lab"]: data for data in (L3_LAB, L2_LAB, KINDS_LAB, QUOTING_LAB)}
ALL_LABS = bundled_labs() + sorted(EXTRA_LABS)


def lab_named(name):
    return lab_from_dict(EXTRA_LABS[name], source=f"<{name}>") if name in EXTRA_LABS else load_lab(name)


# ---------------------------------------------------------------- reading a node back

def _declared_macs(lab, node):
    return {name for owner, name in lab.interfaces() if owner == node and _link_spec(lab, owner, name).mac}


def _link_spec(lab, node, name):
    for owner in lab.nodes:
        for link in owner.links:
            if owner.name == node and link.name == name:
                return link
            if link.peer is not None and link.peer.name == name and (link.peer.node or owner.name) == node:
                return link.peer
    raise KeyError((node, name))


def _sysctl_keys(lab, node):
    return [*IPV6_QUIET_SYSCTLS,
            *(key for key in BR_NETFILTER_SYSCTLS if os.path.exists("/proc/sys/" + key.replace(".", "/"))),
            *lab.node(node).sysctls]


def snapshot(lab, node, fd):
    """Node ``node`` of ``lab`` as comparable data, read from the namespace ``fd`` (IPv4: IPv6's link-local addresses derive from random MACs)."""
    return state.snapshot(fd, (*state.NETLINK_SECTIONS, "iptables", "nft"), families=(AF_INET,),
                          macs=_declared_macs(lab, node), sysctls=_sysctl_keys(lab, node))


# ---------------------------------------------------------------- the two builds

def harness_build(lab):
    try:
        live = build(lab)
    except CapabilityMissing as exc:
        pytest.skip(f"lab {lab.name}: {exc}")
    try:
        return {node: snapshot(lab, node, live.fd(node)) for node in live.nodes}
    finally:
        live.teardown()  # frees the names in /run/netns for the script's `ip netns add`


def run_in_scratch_host(lab, scripts, tmp_path):
    """Run ``scripts`` one after the other in a scratch host namespace; {node: snapshot} of what they left.

    Every node the lab names is released afterwards, whatever happened.
    """
    host = nsutil.create_netns()
    fds = {HOST: host}
    try:
        for i, text in enumerate(scripts):
            path = tmp_path / f"{i}.sh"
            path.write_text(text, encoding="utf-8")
            with nsutil.entered(host):
                done = subprocess.run(["sh", "-e", str(path)], capture_output=True, text=True, timeout=SCRIPT_TIMEOUT)
            assert done.returncode == 0, f"{path} failed with exit {done.returncode}:\n{done.stderr}"
        for node in lab.node_names:
            path = os.path.join(nsutil.NETNS_RUN_DIR, node)
            if node != HOST and os.path.exists(path):
                fds[node] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        return {node: snapshot(lab, node, fd) for node, fd in fds.items()}
    finally:
        for node in lab.node_names:
            if node != HOST:
                nsutil.release_netns_name(node)
        for fd in fds.values():
            safe_close_fd(fd)


@pytest.mark.parametrize("name", ALL_LABS)
def test_script_builds_what_the_harness_builds(name, tmp_path):
    lab = lab_named(name)
    expected = harness_build(lab)
    for node, ifname in lab.interfaces():  # the snapshot really reads the lab
        assert ifname in expected[node]["links"], f"{node}/{ifname} missing from the harness build"
    got = run_in_scratch_host(lab, [script.shell_script(lab)], tmp_path)
    assert state.differences(got, expected) == []


GAP_TAP = {"lab": "gap-tap", "nodes": {"host": {"links": [
    {"name": "tap0", "kind": "tap", "mtu": 1400, "mac": "02:00:00:00:0f:01"}]}}}
GAP_QUOTE = {"lab": "gap-quote", "nodes": {"host": {"iptables": ["-A INPUT -m comment --comment 'two words'"]}}}


@pytest.mark.parametrize("data", [
    GAP_TAP,
    GAP_QUOTE,
], ids=["tap-mac-mtu", "iptables-quoted-arg"])
def test_builder_and_script_agree_where_they_once_differed(data, tmp_path):
    """A tap's MAC and MTU, and an iptables argument with a space in it."""
    lab = lab_from_dict(data, source=f"<{data['lab']}>")
    expected = harness_build(lab)
    assert state.differences(run_in_scratch_host(lab, [script.shell_script(lab)], tmp_path), expected) == []


MUTATIONS = [  # (what the twin script loses, the difference it must show)
    (r"^ip -n ns2 route add default", "ns2 routes"),
    (r"^ip link set dev veth-1-br master vbridge$", "host links veth-1-br"),
    (r"^ip link set dev vbridge up$", "host links vbridge"),
    (r"^sysctl -q -w net.ipv4.ip_forward=1$", "host sysctls net.ipv4.ip_forward"),
    (r"^iptables -t nat -A POSTROUTING", "host iptables"),
]


@pytest.mark.parametrize("pattern, expected", MUTATIONS, ids=[m[1] for m in MUTATIONS])
def test_comparison_sees_a_missing_command(pattern, expected, tmp_path):
    lab = load_lab("001-vbridge")
    baseline = harness_build(lab)
    lines = script.shell_script(lab).splitlines()
    twin = [line for line in lines if not re.search(pattern, line)]
    assert len(twin) == len(lines) - 1, f"{pattern!r} should match exactly one line of the script"
    found = state.differences(run_in_scratch_host(lab, ["\n".join(twin) + "\n"], tmp_path), baseline)
    assert any(line.startswith(expected) for line in found), found


@pytest.mark.parametrize("name", ALL_LABS)
def test_teardown_script_removes_the_lab(name, tmp_path):
    lab = lab_named(name)
    harness_build(lab)  # skips when the kernel lacks a kind
    left = run_in_scratch_host(lab, [script.shell_script(lab), script.teardown_script(lab)], tmp_path)
    assert set(left) == {HOST}, f"namespaces left behind: {sorted(set(left) - {HOST})}"
    assert left[HOST]["links"] == {}  # lo is never listed
    assert left[HOST]["routes"] == {}  # nor the local table
    assert left[HOST]["rules"] == {}  # nor a fresh namespace's rules
    assert not [line for line in left[HOST]["iptables"] or [] if line.startswith("-")]
    assert not [line for line in left[HOST]["nft"] or [] if line.strip().startswith("table inet")]


# ---------------------------------------------------------------- topology and scripts as text

@pytest.mark.parametrize("fmt", topology.FORMATS)
@pytest.mark.parametrize("name", ALL_LABS)
def test_topology_names_every_namespace_and_interface(name, fmt):
    lab = lab_named(name)
    text = topology.topology(lab, fmt)
    escape = topology._mermaid_text if fmt == "mermaid" else (lambda s: topology._dot_text(s)[1:-1])
    for node in lab.node_names:
        assert f"netns {escape(node)}" in text, f"namespace {node} missing"
    for node, ifname in lab.interfaces():
        assert escape(ifname) in text, f"interface {node}/{ifname} missing"
    assert text == topology.topology(lab_named(name), fmt), "output differs between two runs"
    if fmt == "mermaid":  # every label is one quoted string: no quote left inside it
        for label in re.findall(r'\["(.*)"\]', text):
            assert '"' not in label, label


@pytest.mark.parametrize("name", ALL_LABS)
def test_dot_output_is_valid_graphviz(name, tmp_path):
    dot = shutil.which("dot")
    if dot is None:
        pytest.skip("graphviz `dot` is not installed: the DOT syntax is not checked here")
    done = subprocess.run([dot, "-Tsvg"], input=topology.topology(lab_named(name), "dot"), capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0 and not done.stderr, done.stderr


def test_names_are_quoted_for_the_shell_and_escaped_for_diagrams():
    lab = lab_named("render-quoting")
    text = script.shell_script(lab)
    assert "ip netns add 'it'\"'\"'s-$HOME'" in text
    assert "'e\"$x`y'" in text and "'v;ls&<#>'" in text
    mermaid, dot = topology.topology(lab, "mermaid"), topology.topology(lab, "dot")
    assert '["e#quot;$x#96;y<br/>veth<br/>10.4.0.2/24"]' in mermaid and "v;ls#amp;#lt;#35;#gt;" in mermaid
    assert '[label="e\\"$x`y\\nveth\\n10.4.0.2/24"]' in dot and '"v;ls&amp;<#>\\nveth' in dot


def test_cli_check_names_the_file_and_field(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("lab: broken\nnodes:\n  ns1:\n    links:\n      - {name: veth-far-too-long0, kind: veth}\n")
    done = subprocess.run([sys.executable, "-m", "harness", "check", str(broken)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2, done
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and done.stdout == "", done
    assert lines[0].startswith(f"{broken}: nodes.ns1.links[0].name: ") and "Traceback" not in done.stderr


def test_cli_check_script_and_labs():
    run = lambda *args: subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True,  # noqa: E731
                                       text=True, timeout=60)
    good = load_lab("001-vbridge")
    done = run("check", good.source)
    assert done.returncode == 0 and done.stdout.startswith(f"{good.source}: OK"), done
    assert run("script", "001-vbridge").stdout == script.shell_script(good)
    assert run("topology", "001-vbridge", "--format", "dot").stdout == topology.topology(good, "dot")
    assert [line.split("\t")[0] for line in run("labs").stdout.splitlines()] == bundled_labs()
    missing = run("script", "no-such-lab")
    assert missing.returncode == 2 and len(missing.stderr.splitlines()) == 1, missing
